"""Implementation of ``ciksim run``: culture the product, check it kills, run the trial."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from ciksim.cli import echo_json
from ciksim.trial.spec import TrialSpec

ASSAY_TARGETS = ("aml-blast", "normal-pbmc")
ASSAY_ET = (40, 20, 10, 5, 2.5)


def run_chain(*, spec_path: Path, out: Path, workers: int | None, scheduler: str | None,
              as_json: bool, console: Console) -> None:
    from ciksim.analysis.culture import run_culture
    from ciksim.analysis.killing import product_from_culture, product_from_folder, run_assay
    from ciksim.cli_trial import (
        _json_summary,
        _print_summary,
        _save_figure,
        _write_text_atomic,
        execute_trial,
        trial_report,
    )
    from ciksim.report.plots import plot_culture, plot_lysis_curve, pyplot

    spec = TrialSpec.load(spec_path)
    say = (lambda *a: None) if as_json else console.print
    culture = None
    if spec.product_folder:
        product = product_from_folder(spec.product_folder)
        say(f"[bold]1. product[/]: read from {spec.product_folder}")
    else:
        culture = run_culture(spec.product_protocol, donors=spec.product_donors,
                              seed=spec.seed, days=21)
        product = product_from_culture(culture)
        h = culture.summary().iloc[-1]
        say(f"[bold]1. culture[/] {spec.product_protocol}, {spec.product_donors} donors: "
            f"day-21 fold {h.total_fold:.0f} ({h.total_fold_p05:.0f}-{h.total_fold_p95:.0f}), "
            f"{h.cd3cd56_pct:.0f}% CD3+CD56+")
    assays = {t: run_assay(product, t, et=ASSAY_ET, donors=product.donors, seed=spec.seed)
              for t in ASSAY_TARGETS}
    kill = pd.concat([a.summary().assign(target=t) for t, a in assays.items()])
    at40 = {t: float(a.summary()["lysis_pct"].iloc[0]) for t, a in assays.items()}
    say(f"[bold]2. killing[/] (4-h assay, E:T 40:1): {at40['aml-blast']:.0f}% of AML blasts, "
        f"{at40['normal-pbmc']:.1f}% of normal PBMC")
    say(f"[bold]3. trial[/] {spec.name}")
    out.mkdir(parents=True, exist_ok=True)
    run, summary = execute_trial(spec, out=out / "trial", workers=workers,
                                 scheduler=scheduler, resume=True, chunk_size=None,
                                 show_progress=sys.stderr.isatty() and not as_json,
                                 composition=product.median_composition())

    def extra(rep: Any) -> None:
        if culture is not None:
            rep.heading(f"1. Product: {spec.product_protocol} culture, "
                        f"{spec.product_donors} donors")
            s = culture.summary()
            rep.table(s[s["day"].isin([0, 7, 14, 21])][
                ["day", "total_fold", "total_fold_p05", "total_fold_p95", "cd3cd56_pct",
                 "cd3_pct", "nk_pct", "il2_iu_ml"]])
            axes = plot_culture([culture])
            rep.figure(axes[0].figure, "Expansion and phenotype (median, 5-95% of donors)")
            _save_figure(axes[0].figure, out / "culture.png")
        rep.heading("2. Killing check (simulated 4-h assay)")
        rep.table(kill[["target", "et_ratio", "lysis_pct", "lysis_pct_p05", "lysis_pct_p95"]])
        ax = plot_lysis_curve(assays["aml-blast"])
        plot_lysis_curve(assays["normal-pbmc"], ax=ax)
        rep.figure(ax.figure, "% specific lysis of AML blasts and normal PBMC")
        _save_figure(ax.figure, out / "killing.png")
        rep.heading("3. Trial")

    _write_text_atomic(out / "report.html", trial_report(spec, run, summary, extra))
    result = {"product": product.median_composition(),
              "killing_at_40": at40, "trial": _json_summary(summary)}
    _write_text_atomic(out / "summary.json", json.dumps(result, indent=2) + "\n")
    pyplot()
    if as_json:
        echo_json(result)
        return
    _print_summary(spec, run, summary, console)
    console.print(f"wrote {out}/report.html, summary.json, culture.png, killing.png and "
                  f"{out}/trial/")

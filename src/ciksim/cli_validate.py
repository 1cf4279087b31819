"""Implementation of ``ciksim validate``: every target of the default models, and a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from ciksim.cli import echo_json, rich_table
from ciksim.io import staged_output


def _fmt(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _clean(value: Any) -> Any:
    return json.loads(json.dumps(value, default=float))


def run_validate(*, out: Path | None, as_json: bool, console: Console) -> None:
    from ciksim.targets.registry import target_functions

    checks = []
    for group, fn in target_functions():
        if not as_json:
            console.print(f"computing {group} targets ...")
        checks += [(group, c) for c in fn()]
    if out is not None:
        from ciksim.report.html import Report

        rep = Report("ciksim validation against the published targets")
        rep.paragraph("Each statistic is computed from the default models by "
                      "ciksim.targets (the same code the tests run); ranges and sources are "
                      "those of shared/reference/targets.md.", note=True)
        table = pd.DataFrame([{"id": c.id, "target": c.description, "model": _fmt(c.value),
                               "range": c.range, "source": c.source,
                               "pass": "pass" if c.passed else "FAIL"} for _, c in checks])
        rep.table(table)
        _figures(rep)
        with staged_output(out) as stage:
            (stage.path / "validation.html").write_text(rep.render(), encoding="utf-8")
            stage.json({"targets": [_clean(c.as_dict()) for _, c in checks]}, "validation")
    if as_json:
        echo_json({"targets": [{"id": c.id, "value": _clean(c.value), "range": c.range,
                                "pass": c.passed} for _, c in checks]})
        return
    rows = [[c.id, c.description[:60], _fmt(c.value)[:70], c.range,
             "[green]pass[/]" if c.passed else "[red]FAIL[/]"] for _, c in checks]
    console.print(rich_table("Targets", ["id", "target", "model", "range", ""], rows))
    failed = [c.id for _, c in checks if not c.passed]
    console.print(f"{len(checks) - len(failed)} of {len(checks)} targets met"
                  + (f"; failed: {', '.join(failed)}" if failed else ""))
    if out is not None:
        console.print(f"wrote {out}/validation.html, validation.json")


def _figures(rep: Any) -> None:
    from ciksim.analysis.killing import run_assay
    from ciksim.report.plots import plot_culture, plot_lysis_curve, plot_trial, pyplot
    from ciksim.targets.culture import culture_runs
    from ciksim.targets.killing import cik_product
    from ciksim.targets.patient import chemo_only
    from ciksim.targets.trial import control_arm

    rep.heading("Culture (C1-C9): cik-standard and LAK, 200 donors")
    axes = plot_culture([culture_runs("cik-standard"), culture_runs("lak")])
    rep.figure(axes[0].figure, "Expansion and phenotype, median and 5-95% of donors")
    pyplot().close(axes[0].figure)
    rep.heading("Killing (K1-K8): the cik-standard product, 4-h assays")
    ax = None
    for target in ("k562", "aml-blast", "b-all-blast", "normal-pbmc-allogeneic",
                   "normal-pbmc"):
        ax = plot_lysis_curve(run_assay(cik_product(), target, et=(60, 40, 20, 10, 5, 2.5)),
                              ax=ax)
    rep.figure(ax.figure, "% specific lysis vs E:T, median and 5-95% of donors")
    pyplot().close(ax.figure)
    rep.heading("Patient (P1-P8) and trial (T1-T2): chemotherapy alone, aml-cr1")
    patients = chemo_only("aml-cr1").outcomes().assign(arm="aml-cr1 (patient model)",
                                                        status="ok")
    trial = control_arm().patients.assign(arm="default trial, control arm")
    both = pd.concat([patients[["arm", "duration", "event", "status"]],
                      trial[["arm", "duration", "event", "status"]]])
    axes = plot_trial(both, ["aml-cr1 (patient model)", "default trial, control arm"])
    rep.figure(axes[0].figure, "Relapse-free survival and cumulative incidence of relapse")
    pyplot().close(axes[0].figure)

"""Implementation of ``ciksim trial``, ``ciksim trial power`` and ``ciksim run``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from ciksim.cli import echo_json, rich_table
from ciksim.errors import DataError
from ciksim.trial.analysis import power_from_pool, summarize
from ciksim.trial.runner import TrialRun, run_trial
from ciksim.trial.spec import TrialSpec


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr: patients done, rate and time left."""
    if not enabled:
        yield lambda done, total: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as prog:
        task = prog.add_task(label, total=None, rate="")

        def update(done: int, total: int) -> None:
            elapsed = prog.tasks[task].elapsed or 0.0
            rate = f"{done / elapsed:,.0f} patients/s" if elapsed > 0 and done else ""
            prog.update(task, completed=done, total=total, rate=rate)

        yield update


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _save_figure(fig: Any, path: Path) -> None:
    from ciksim.report.plots import pyplot

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=150, bbox_inches="tight")
    os.replace(tmp, path)
    pyplot().close(fig)


def _arm_rows(summary: dict[str, Any]) -> list[list[str]]:
    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.1f}%"

    return [[a["name"], str(a["n"]), pct(a["relapse_fraction"]), pct(a["cure_fraction"]),
             pct(a["rfs_1y"]), pct(a["rfs_2y"]), pct(a["rfs_3y"]), pct(a["rfs_4y"]),
             "not reached" if a["median_rfs_months"] is None
             else f"{a['median_rfs_months']:.1f}"] for a in summary["arms"]]


ARM_COLUMNS = ["arm", "n", "relapsed", "cured", "RFS 1y", "RFS 2y", "RFS 3y", "RFS 4y",
               "median RFS (months)"]


def _print_summary(spec: TrialSpec, run: TrialRun, summary: dict[str, Any],
                   console: Console) -> None:
    console.print(rich_table(f"{spec.name}: {spec.patients_per_arm} patients per arm, "
                             f"{spec.follow_up_years:g} years, seed {spec.seed}",
                             ARM_COLUMNS, _arm_rows(summary)))
    for c in summary["comparisons"]:
        hr = c["hazard_ratio"]
        hr_text = "–" if hr is None else (f"{hr:.3f} (95% CI {c['hazard_ratio_ci'][0]:.3f}-"
                                          f"{c['hazard_ratio_ci'][1]:.3f})")
        console.print(f"  {c['arm']} vs {c['versus']}: hazard ratio {hr_text}; log-rank "
                      f"p = {c['logrank_p']:.3g}")
    if summary["failed_patients"]:
        console.print(f"[yellow]warning:[/] {summary['failed_patients']} patient(s) failed; "
                      "see the status column")
    m = run.manifest
    if m["chunk_seconds"]:
        console.print(f"  {m['patients']} patients in {m['wall_seconds']:.1f} s "
                      f"({m['backend']})")
    else:
        console.print(f"  {m['patients']} patients reused from the finished run in --out "
                      "(same specification and ciksim version)")


def trial_report(spec: TrialSpec, run: TrialRun, summary: dict[str, Any],
                 extra: Callable[[Any], None] | None = None) -> str:
    """The HTML report of a trial (figures embedded, spec and provenance included)."""
    from ciksim.report.html import Report
    from ciksim.report.plots import plot_trial, pyplot

    rep = Report(f"ciksim virtual trial: {spec.name}")
    if spec.description:
        rep.paragraph(spec.description)
    if extra is not None:
        extra(rep)
    rep.heading("Relapse-free survival")
    rep.table(pd.DataFrame(_arm_rows(summary), columns=ARM_COLUMNS))
    comp = pd.DataFrame([{"arm": c["arm"], "versus": c["versus"],
                          "hazard ratio": c["hazard_ratio"],
                          "95% CI": "–" if c["hazard_ratio_ci"] is None else
                          f"{c['hazard_ratio_ci'][0]:.3f}–{c['hazard_ratio_ci'][1]:.3f}",
                          "log-rank p": c["logrank_p"]} for c in summary["comparisons"]])
    if not comp.empty:
        rep.table(comp)
    axes = plot_trial(run.patients, [a.name for a in spec.arms])
    rep.figure(axes[0].figure, "Kaplan-Meier relapse-free survival with 95% bands; "
               "cumulative incidence of relapse")
    pyplot().close(axes[0].figure)
    rep.paragraph("Relapse is the only event modelled (no deaths in remission), so the "
                  "cumulative incidence of relapse is 1 − relapse-free survival. Hazard "
                  "ratios: Cox model, arm vs the first arm.", note=True)
    rep.heading("Specification")
    rep.preformatted(json.dumps(spec.raw, indent=2))
    rep.heading("Provenance")
    m = run.manifest
    rep.table(pd.DataFrame([{"ciksim": m["ciksim_version"], "seed": m["seed"],
                             "digest": m["digest"], "backend": m["backend"],
                             "patients": m["patients"], "failed": m["failed_patients"],
                             "wall seconds": round(m["wall_seconds"], 1)}]))
    return rep.render()


def execute_trial(spec: TrialSpec, *, out: Path | None, workers: int | None,
                  scheduler: str | None, resume: bool, chunk_size: int | None,
                  show_progress: bool, composition: dict[str, float] | None = None
                  ) -> tuple[TrialRun, dict[str, Any]]:
    with progress_bar(f"trial {spec.name}", show_progress) as update:
        run = run_trial(spec, out=out, workers=workers, scheduler=scheduler, resume=resume,
                        chunk_size=chunk_size, progress=update, composition=composition)
    summary = summarize(run.patients, [a.name for a in spec.arms],
                        12 * spec.follow_up_years)
    return run, summary


def _json_summary(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "n", "relapse_fraction", "rfs_1y", "rfs_2y", "rfs_3y", "rfs_4y",
            "median_rfs_months", "cure_fraction")
    return {"arms": [{k: a[k] for k in keys} for a in summary["arms"]],
            "hazard_ratio": summary["hazard_ratio"],
            "hazard_ratio_ci": summary["hazard_ratio_ci"],
            "logrank_p": summary["logrank_p"]}


def run_trial_cli(*, spec_path: Path, n_per_arm: int | None, workers: int | None,
                  scheduler: str | None, out: Path | None, resume: bool,
                  chunk_size: int | None, as_json: bool, console: Console) -> None:
    spec = TrialSpec.load(spec_path)
    if n_per_arm is not None:
        if n_per_arm < 1:
            raise DataError("--n-per-arm must be >= 1")
        spec = spec.with_patients(n_per_arm)
    if resume and out is None:
        raise DataError("--resume needs the --out folder of the interrupted trial")
    run, summary = execute_trial(spec, out=out, workers=workers, scheduler=scheduler,
                                 resume=resume, chunk_size=chunk_size,
                                 show_progress=sys.stderr.isatty() or not as_json)
    if out is not None:
        from ciksim.report.plots import plot_trial

        out.mkdir(parents=True, exist_ok=True)
        _write_text_atomic(out / "summary.json",
                           json.dumps({**_json_summary(summary), "details": summary},
                                      indent=2) + "\n")
        _save_figure(plot_trial(run.patients, [a.name for a in spec.arms])[0].figure,
                     out / "km.png")
        _write_text_atomic(out / "report.html", trial_report(spec, run, summary))
    if as_json:
        echo_json(_json_summary(summary))
        return
    _print_summary(spec, run, summary, console)
    if out is not None:
        console.print(f"wrote {out}/patients.parquet, manifest.json, summary.json, km.png, "
                      "report.html")


def run_power_cli(*, spec_path: Path, ns: str, repeats: int, workers: int | None,
                  scheduler: str | None, out: Path | None, as_json: bool,
                  console: Console) -> None:
    try:
        sizes = sorted({int(x) for x in ns.split(",") if x.strip()})
    except ValueError:
        raise DataError(f"--n: {ns!r} must be comma-separated whole numbers") from None
    if not sizes or sizes[0] < 2:
        raise DataError("--n: sample sizes must be >= 2 patients per arm")
    if repeats < 1:
        raise DataError("--repeats must be >= 1")
    spec = TrialSpec.load(spec_path)
    if len(spec.arms) < 2:
        raise DataError("trial power needs at least two arms (the first is the control)")
    pool = spec.with_patients(max(sizes) * repeats)
    run, _ = execute_trial(pool, out=None, workers=workers, scheduler=scheduler, resume=False,
                           chunk_size=None, show_progress=not as_json)
    table = power_from_pool(run.patients, spec.arms[0].name, spec.arms[1].name, sizes,
                            repeats)
    if out is not None:
        from ciksim.io import table_and_figure
        from ciksim.report.plots import plot_power

        table_and_figure(out, table, "power", plot_power)
    if as_json:
        echo_json({"control": spec.arms[0].name, "treatment": spec.arms[1].name,
                   "rows": table.to_dict("records")})
        return
    rows = [[str(r.n_per_arm), f"{100 * r.power:.0f}%",
             f"{100 * r.power_ci_low:.0f}-{100 * r.power_ci_high:.0f}%"]
            for r in table.itertuples()]
    console.print(rich_table(f"Power: {spec.arms[1].name} vs {spec.arms[0].name}, log-rank "
                             f"p < 0.05, {repeats} trials per size",
                             ["patients per arm", "power", "95% CI"], rows))

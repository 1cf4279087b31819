"""Implementation of ``ciksim culture`` (kept apart so the CLI module stays thin)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from ciksim.analysis.culture import SUMMARY_UNITS, CultureRun, plan_harvest, run_culture
from ciksim.cli import echo_json, rich_table
from ciksim.errors import DataError
from ciksim.io import staged_output


def _row_dict(row: pd.Series) -> dict[str, float]:
    return {k: float(v) for k, v in row.items()}


def _summary_json(run: CultureRun) -> dict[str, object]:
    s = run.summary()
    return {
        "protocol": run.protocol.name,
        "donors": run.donors,
        "seed": run.seed,
        "units": SUMMARY_UNITS,
        "days": [float(d) for d in s["day"]],
        "rows": [_row_dict(r) for _, r in s.iterrows()],
    }


def _print_summary(run: CultureRun, console: Console) -> None:
    s = run.summary()
    rows = [
        [f"{r.day:g}", f"{r.total_cells:.3g}", f"{r.total_fold:.3g}",
         f"{r.cd3cd56_pct:.1f} ({r.cd3cd56_pct_p05:.0f}-{r.cd3cd56_pct_p95:.0f})",
         f"{r.cd3cd56_fold:.3g}", f"{r.cd3_pct:.1f}", f"{r.nk_pct:.1f}", f"{r.il2_iu_ml:.0f}"]
        for r in s.itertuples()
    ]
    cols = ["day", "total cells", "total fold", "% CD3+CD56+ (5-95%)", "CD3+CD56+ fold",
            "% CD3+", "% NK", "IL-2 IU/mL"]
    title = (f"{run.protocol.name}: donor medians, {run.donors} donors, seed {run.seed}, "
             f"{run.start_cells:.3g} PBMC seeded")
    console.print(rich_table(title, cols, rows))


def run_compare_or_single(*, protocols: list[str], days: float | None, donors: int, seed: int,
                          start_cells: float, out: Path | None, fmt: str, as_json: bool,
                          console: Console) -> None:
    if fmt not in ("csv", "parquet"):
        raise DataError(f"--format: use csv or parquet, not {fmt!r}")
    runs = [run_culture(p, days=days, donors=donors, seed=seed, start_cells=start_cells)
            for p in protocols]
    if out is not None:
        from ciksim.report.plots import plot_culture

        with staged_output(out) as stage:
            stage.table(pd.concat([r.summary().assign(protocol=r.protocol.name) for r in runs]),
                        "culture_summary", fmt)
            stage.table(pd.concat([r.donor_table() for r in runs]), "culture_donors", fmt)
            stage.json({"runs": [_summary_json(r) for r in runs],
                        "ciksim_version": runs[0].result.meta["ciksim_version"]},
                       "culture_run")
            stage.figure(plot_culture(runs)[0], "culture")
    if as_json:
        if len(runs) == 1:
            echo_json(_summary_json(runs[0]))
        else:
            echo_json({"protocols": [_summary_json(r) for r in runs]})
        return
    for r in runs:
        _print_summary(r, console)
    if out is not None:
        console.print(f"wrote {out}/culture_summary.{fmt}, culture_donors.{fmt}, "
                      "culture_run.json, culture.png")


def run_plan(*, protocol: str, days: float | None, donors: int, seed: int, start_cells: float,
             dose: float, per: str, weight: float, infusions: int, cells: str, as_json: bool,
             console: Console) -> None:
    run = run_culture(protocol, days=days, donors=donors, seed=seed, start_cells=start_cells)
    plan = plan_harvest(run, dose=dose, per=per, weight=weight, infusions=infusions,
                        cells=cells)
    if as_json:
        echo_json({"protocol": run.protocol.name, **plan.as_dict()})
        return

    def day(d: float | None) -> str:
        return f"reaches it on day {d:g}" if d is not None else (
            f"does not reach it by day {run.days[-1]:g}")

    kind = "CD3+CD56+" if cells == "cd3cd56" else "CD3+"
    console.print(f"[bold]{run.protocol.name}[/]: {plan.required_cells:.3g} {kind} cells needed "
                  f"({dose:.3g}/{per} x {infusions} infusion(s)"
                  + (f", {weight:g} kg" if per == "kg" else "") + ")")
    console.print(f"  median donor {day(plan.day_median)}")
    console.print(f"  5th-percentile donor {day(plan.day_p05)}")
    console.print(f"  PBMC to seed to have it by day {plan.by_day:g}: "
                  f"{plan.start_needed_median:.3g} (median donor), "
                  f"{plan.start_needed_p05:.3g} (5th-percentile donor); "
                  f"seeded here: {start_cells:.3g}")

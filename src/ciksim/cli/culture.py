"""``ciksim culture``: simulate, compare protocols, or plan a harvest (``culture plan``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ciksim.cli import options as opt
from ciksim.cli.common import JsonFlag, console, emit, parse_number, progress_bar, rich_table, verb

if TYPE_CHECKING:
    from ciksim.jobs.culture import CultureResult, HarvestPlanResult


@verb()
def culture(
    args: Annotated[
        list[str] | None,
        typer.Argument(help="'plan' for harvest planning, or more protocols after --compare."),
    ] = None,
    protocol: Annotated[str, typer.Option(help="Built-in protocol name or a TOML file.")] = (
        "cik-standard"
    ),
    days: Annotated[float | None, typer.Option(help="Days to simulate (default: harvest day).")]
    = None,
    donors: Annotated[int, typer.Option(help="Number of simulated donors.")] = 200,
    seed: opt.Seed = 0,
    start_cells: Annotated[str | None, typer.Option(
        help="PBMC seeded on day 0 (cells; default: the protocol's, else 1e8).")] = None,
    donor: Annotated[str, typer.Option(
        help="Starting material: healthy, patient-post-chemo or a TOML file.")] = "healthy",
    out: Annotated[Path | None, typer.Option(help="Folder for the data, figure and report.")]
    = None,
    fmt: opt.DataFormat = "csv",
    as_json: JsonFlag = False,
    compare: Annotated[
        str | None, typer.Option(help="Compare protocols: --compare cik-standard lak")
    ] = None,
    dose: Annotated[str | None, typer.Option(help="plan: cells per kg (or per infusion).")] = None,
    per: Annotated[str, typer.Option(help="plan: dose per 'kg' or per 'infusion'.")] = "kg",
    weight: Annotated[float, typer.Option(help="plan: body weight (kg).")] = 70.0,
    infusions: Annotated[int, typer.Option(help="plan: number of infusions.")] = 1,
    cells: Annotated[str, typer.Option(help="plan: count 'cd3cd56' or 'cd3' cells.")] = (
        "cd3cd56"
    ),
) -> None:
    """Simulate ex vivo CIK generation: a daily summary with donor bands, data and a figure.

    `ciksim culture plan --dose 5e7 --per kg --weight 70 --infusions 3` gives the earliest
    harvest day and the starting PBMC needed.
    """
    from ciksim.errors import DataError
    from ciksim.io import check_formats
    from ciksim.jobs.culture import culture_job, harvest_plan_job

    extra = list(args or [])
    start = parse_number(start_cells, "start-cells") if start_cells is not None else None
    if extra and extra[0] == "plan":
        if len(extra) > 1:
            raise DataError(f"plan: unexpected argument(s) {extra[1:]}")
        if dose is None:
            raise DataError("plan: give --dose (cells per kg, or per infusion with --per infusion)")
        with progress_bar("culture", sys.stderr.isatty() and not as_json,
                          unit="days") as update:
            plan = harvest_plan_job(protocol, dose=parse_number(dose, "dose"), per=per,
                                    weight=weight, infusions=infusions, cells=cells, days=days,
                                    donors=donors, seed=seed, start_cells=start, donor=donor,
                                    progress=update)
        emit(plan, out, as_json, lambda: _print_plan(plan, cells), fmt)
        return
    if dose is not None:
        raise DataError("--dose only applies to 'ciksim culture plan'")
    protocols = [protocol]
    if compare is not None:
        protocols = [p for p in compare.split(",") if p] + extra
    elif extra:
        raise DataError(f"unexpected argument(s) {extra}; did you mean --compare or plan?")
    check_formats(fmt)
    with progress_bar("culture", sys.stderr.isatty() and not as_json, unit="days") as update:
        result = culture_job(protocols, days=days, donors=donors, seed=seed,
                             start_cells=start, donor=donor, progress=update)
    emit(result, out, as_json, lambda: _print_runs(result), fmt)


def _print_runs(result: CultureResult) -> None:
    for run in result.runs:
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


def _print_plan(res: HarvestPlanResult, cells: str) -> None:
    run, plan = res.run, res.plan

    def day(d: float | None) -> str:
        return f"reaches it on day {d:g}" if d is not None else (
            f"does not reach it by day {run.days[-1]:g}")

    kind = "CD3+CD56+" if cells == "cd3cd56" else "CD3+"
    console.print(f"[bold]{run.protocol.name}[/]: {plan.required_cells:.3g} {kind} cells needed "
                  f"({res.dose:.3g}/{res.per} x {res.infusions} infusion(s)"
                  + (f", {res.weight:g} kg" if res.per == "kg" else "") + ")")
    console.print(f"  median donor {day(plan.day_median)}")
    console.print(f"  5th-percentile donor {day(plan.day_p05)}")
    console.print(f"  PBMC to seed to have it by day {plan.by_day:g}: "
                  f"{plan.start_needed_median:.3g} (median donor), "
                  f"{plan.start_needed_p05:.3g} (5th-percentile donor); "
                  f"seeded here: {run.start_cells:.3g}")

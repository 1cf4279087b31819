"""``ciksim killing`` (a simulated assay) and ``ciksim lysis`` (your plate's data)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ciksim.cli import options as opt
from ciksim.cli.common import JsonFlag, console, emit, num, progress_bar, rich_table, verb

if TYPE_CHECKING:
    from ciksim.jobs.killing import KillingResult, LysisResult


@verb()
def killing(
    effector: Annotated[str, typer.Option(help="cik, lak, nk, t, or a culture --out folder.")]
    = "cik",
    target: Annotated[str, typer.Option(
        help="k562, aml-blast, b-all-blast, normal-pbmc, normal-pbmc-allogeneic, cd34, or a "
             "TOML file.")] = "k562",
    et: Annotated[str, typer.Option(help="E:T ratios, comma-separated.")] = "40,20,10,5,2.5",
    hours: opt.AssayHours = 4.0,
    block: Annotated[str | None, typer.Option(help="Blocking antibody: nkg2d or hla.")] = None,
    donors: Annotated[int, typer.Option(help="Number of simulated effector donors.")] = 200,
    seed: opt.Seed = 0,
    out: Annotated[Path | None, typer.Option(help="Folder for the curve table, figure and "
                                                  "report.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Simulate a cytotoxicity assay: % specific lysis per E:T with the spread over donors."""
    from ciksim.jobs.killing import killing_job, parse_ratios

    ratios = parse_ratios(et, "--et")
    # simulated hours: the product's culture (built-in cik/lak), then the assay
    with progress_bar("killing (simulated hours)", sys.stderr.isatty() and not as_json,
                      unit="h") as update:
        res = killing_job(effector, target, et=ratios, hours=hours, block=block,
                          donors=donors, seed=seed, progress=update)
    emit(res, out, as_json, lambda: _print_assay(res, hours, block, seed))


def _print_assay(res: KillingResult, hours: float, block: str | None, seed: int) -> None:
    a = res.assay
    title = (f"{a.effector} vs {a.target}, {hours:g} h"
             + (f", anti-{block.upper()} block" if block else "")
             + f": % specific lysis over {a.donors} donors (seed {seed})")
    rows = [[f"{r.et_ratio:g}", f"{r.lysis_pct:.1f}", f"{r.lysis_pct_p05:.1f}",
             f"{r.lysis_pct_p95:.1f}"] for r in res.table.itertuples()]
    console.print(rich_table(title, ["E:T", "median %", "5th pct", "95th pct"], rows))


@verb()
def lysis(
    path: Annotated[Path, typer.Argument(help="Tidy CSV: effector,target,et_ratio,kind,"
                                              "replicate,value.")],
    out: Annotated[Path | None, typer.Option(help="Folder for tables, the figure and the "
                                                  "report.")] = None,
    targets_per_well: opt.TargetsPerWell = 1e4,
    hours: opt.AssayHours = 4.0,
    as_json: JsonFlag = False,
) -> None:
    """Analyse release-assay data: % specific lysis, lytic units, killing-rate fit."""
    from ciksim.jobs.killing import lysis_job

    res = lysis_job(path, targets_per_well=targets_per_well, hours=hours)
    emit(res, out, as_json, lambda: _print_plate(res, targets_per_well, hours))


def _print_plate(res: LysisResult, targets_per_well: float, hours: float) -> None:
    from ciksim.assays.lysis import LU_METHOD

    an = res.analysis
    rows = [[r.effector, r.target, f"{r.et_ratio:g}", f"{r.lysis_pct_mean:.1f}",
             num(r.lysis_pct_sd, ".1f"), str(r.n)] for r in an.groups.itertuples()]
    console.print(rich_table("% specific lysis", ["effector", "target", "E:T", "mean", "SD",
                                                  "n"], rows))
    rows = [[r.effector, r.target, num(r.lu20_per_1e7), num(r.lu30_per_1e7),
             f"{r.plateau_pct:.0f}"] for r in an.lytic.itertuples()]
    console.print(rich_table(f"Lytic units per 1e7 effectors ({targets_per_well:g} targets "
                             "per well)", ["effector", "target", "LU20", "LU30", "plateau %"],
                             rows))
    console.print(f"method: {LU_METHOD}")
    rows = [[r.effector, r.target, num(r.k_kill_per_h),
             f"{num(r.k_kill_ci_low)}-{num(r.k_kill_ci_high)}", num(r.susceptible_fraction)]
            for r in an.fits.itertuples()]
    console.print(rich_table(f"Killing-model fit ({hours:g} h assay)",
                             ["effector", "target", "k_kill 1/h", "95% CI",
                              "susceptible fraction"], rows))
    for w in an.warnings:
        console.print(f"[yellow]warning:[/] {w}")

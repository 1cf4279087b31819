"""Implementation of ``ciksim killing`` and ``ciksim lysis``."""

from __future__ import annotations

import warnings
from pathlib import Path

from rich.console import Console

from ciksim.cli import echo_json, rich_table
from ciksim.errors import DataError
from ciksim.io import staged_output, table_and_figure


def parse_et(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DataError(f"--et: {text!r} must be comma-separated numbers, e.g. 40,20,10") from None
    if not values or any(v <= 0 for v in values):
        raise DataError("--et: E:T ratios must be > 0, e.g. 40,20,10,5,2.5")
    return values


def run_killing(*, effector: str, target: str, et: str, hours: float, block: str | None,
                donors: int, seed: int, out: Path | None, as_json: bool,
                console: Console) -> None:
    from ciksim.analysis.killing import run_assay

    assay = run_assay(effector, target, et=parse_et(et), hours=hours, block=block,
                      donors=donors, seed=seed)
    table = assay.summary()
    if out is not None:
        from ciksim.report.plots import plot_lysis_curve

        table_and_figure(out, table, "killing_curve", lambda _: plot_lysis_curve(assay))
    if as_json:
        echo_json({"effector": assay.effector, "target": assay.target, "hours": hours,
                   "block": block, "donors": donors, "seed": seed,
                   "rows": table.to_dict("records")})
        return
    title = (f"{assay.effector} vs {assay.target}, {hours:g} h"
             + (f", anti-{block.upper()} block" if block else "")
             + f": % specific lysis over {donors} donors (seed {seed})")
    rows = [[f"{r.et_ratio:g}", f"{r.lysis_pct:.1f}", f"{r.lysis_pct_p05:.1f}",
             f"{r.lysis_pct_p95:.1f}"] for r in table.itertuples()]
    console.print(rich_table(title, ["E:T", "median %", "5th pct", "95th pct"], rows))
    if out is not None:
        console.print(f"wrote {out}/killing_curve.csv, killing_curve.png")


def run_lysis(*, path: Path, out: Path | None, targets_per_well: float, hours: float,
              as_json: bool, console: Console) -> None:
    from ciksim.assays.lysis import LU_METHOD, AssayWarning, LysisData, analyse, plot_lysis

    data = LysisData.read_csv(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AssayWarning)  # reported below instead
        result = analyse(data, targets_per_well=targets_per_well, hours=hours)
    if out is not None:
        with staged_output(out) as stage:
            stage.table(result.groups, "lysis_groups", "csv")
            stage.table(result.lytic, "lytic_units", "csv")
            stage.table(result.fits, "killing_fits", "csv")
            stage.json(result.as_json(), "lysis")
            stage.figure(plot_lysis(result), "lysis")
    if as_json:
        echo_json(result.as_json())
        return
    rows = [[r.effector, r.target, f"{r.et_ratio:g}", f"{r.lysis_pct_mean:.1f}",
             "-" if r.lysis_pct_sd != r.lysis_pct_sd else f"{r.lysis_pct_sd:.1f}", str(r.n)]
            for r in result.groups.itertuples()]
    console.print(rich_table("% specific lysis", ["effector", "target", "E:T", "mean", "SD",
                                                  "n"], rows))

    def num(v: object, fmt: str = ".3g") -> str:
        return "-" if v is None or v != v else format(v, fmt)

    rows = [[r.effector, r.target, num(r.lu20_per_1e7), num(r.lu30_per_1e7),
             f"{r.plateau_pct:.0f}"] for r in result.lytic.itertuples()]
    console.print(rich_table(f"Lytic units per 1e7 effectors ({targets_per_well:g} targets "
                             "per well)", ["effector", "target", "LU20", "LU30", "plateau %"],
                             rows))
    console.print(f"method: {LU_METHOD}")
    rows = [[r.effector, r.target, num(r.k_kill_per_h),
             f"{num(r.k_kill_ci_low)}-{num(r.k_kill_ci_high)}", num(r.susceptible_fraction)]
            for r in result.fits.itertuples()]
    console.print(rich_table(f"Killing-model fit ({hours:g} h assay)",
                             ["effector", "target", "k_kill 1/h", "95% CI",
                              "susceptible fraction"], rows))
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    if out is not None:
        console.print(f"wrote {out}/lysis_groups.csv, lytic_units.csv, killing_fits.csv, "
                      "lysis.json, lysis.png")

"""``ciksim fit culture`` and ``ciksim fit killing``: fit the models to your own data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ciksim.cli import options as opt
from ciksim.cli.common import JsonFlag, app, console, emit, num, progress_bar, rich_table, verb
from ciksim.inference import FIT_STEPS, FIT_WALKERS

if TYPE_CHECKING:
    from ciksim.jobs.fit import CultureFitResult, KillingFitResult

fit_app = typer.Typer(help="Fit models to your own data.", no_args_is_help=True)
app.add_typer(fit_app, name="fit")


@verb(fit_app, "culture")
def fit_culture(
    path: Annotated[Path, typer.Argument(help="CSV: donor,day,quantity,value[,sd].")],
    protocol: Annotated[str, typer.Option(help="Culture protocol name or TOML file.")]
    = "cik-standard",
    free: Annotated[str | None, typer.Option(help="Parameters to fit (default phi_max,"
                                                  "phi_min,k_conv).")] = None,
    dose: Annotated[float | None, typer.Option(help="Forecast the day this many cells are "
                                                    "reached.")] = None,
    cells: Annotated[str, typer.Option(help="cd3cd56, cd3 or total.")] = "cd3cd56",
    steps: Annotated[int, typer.Option(help="MCMC steps per walker (the first quarter "
                                            "discarded as burn-in).")] = FIT_STEPS,
    walkers: Annotated[int, typer.Option(help="MCMC walkers (at least twice the fitted + "
                                              "marginalised parameters).")] = FIT_WALKERS,
    seed: opt.Seed = 0,
    out: Annotated[Path | None, typer.Option(help="Folder for tables, the figure and the "
                                                  "report.")] = None,
    petab: Annotated[Path | None, typer.Option(help="Also write the problem as PEtab here.")]
    = None,
    petab_mode: Annotated[str, typer.Option(help="PEtab donors' parameters: per-donor (as "
                                                 "ciksim fits), pooled (one set), or "
                                                 "hierarchical (per donor with normal priors "
                                                 "at the population mean and spread of "
                                                 "ciksim's fits: empirical Bayes).")]
    = "per-donor",
    as_json: JsonFlag = False,
) -> None:
    """Fit the culture model to your donors' counts; forecast the harvest day."""
    from ciksim.jobs.fit import culture_fit_job

    names = [x.strip() for x in free.split(",") if x.strip()] if free else None
    with progress_bar("fit (MCMC steps, all donors)", sys.stderr.isatty() and not as_json,
                      unit="steps") as update:
        res = culture_fit_job(path, protocol=protocol, free=names, dose=dose, cells=cells,
                              steps=steps, walkers=walkers, seed=seed, petab=petab,
                              petab_mode=petab_mode, progress=update)
    emit(res, out, as_json, lambda: _print_culture_fit(res))


def _print_culture_fit(res: CultureFitResult) -> None:
    from ciksim.inference.culture import FIT_METHOD

    rows = [[r.donor, r.parameter, f"{r.estimate:.3g}", f"{r.ci_low:.3g}-{r.ci_high:.3g}",
             r.unit, f"{r.default:.3g}"] for r in res.estimates.itertuples()]
    console.print(rich_table("Culture fit", ["donor", "parameter", "estimate", "95% interval",
                                             "unit", "default"], rows))
    for f in res.forecast:
        if f["day_median"] is None:
            console.print(f"  {f['donor']}: {f['dose']:.3g} {f['cells']} cells not reached by "
                          f"day 28 (probability {f['probability_by_day_28']:.2f})")
        else:
            console.print(f"  {f['donor']}: {f['dose']:.3g} {f['cells']} cells on day "
                          f"{f['day_median']:g} (95% prediction interval {f['day_low']:g}-"
                          + ("after 28" if f["day_high"] is None else f"{f['day_high']:g}")
                          + ")")
    short = [d for d in (f.diagnostics() for f in res.fits) if not d["long_enough"]]
    if short:
        console.print("[yellow]chains short for donor(s) "
                      + ", ".join(f"{d['donor']} ({d['steps_kept']} steps kept, "
                                  f"autocorrelation {num(d['autocorrelation_steps'], '.0f')})"
                                  for d in short)
                      + ": the intervals may be too narrow; give more --steps[/]")
    console.print(f"[dim]{FIT_METHOD}[/]")


@verb(fit_app, "killing")
def fit_killing(
    path: Annotated[Path, typer.Argument(help="Lysis CSV (as for ciksim lysis).")],
    targets_per_well: opt.TargetsPerWell = 1e4,
    hours: opt.AssayHours = 4.0,
    out: Annotated[Path | None, typer.Option(help="Folder for the table and the report.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Fit the killing model's rate to lysis data (95% intervals)."""
    from ciksim.jobs.fit import killing_fit_job

    res = killing_fit_job(path, targets_per_well=targets_per_well, hours=hours)
    emit(res, out, as_json, lambda: _print_killing_fit(res))


def _print_killing_fit(res: KillingFitResult) -> None:
    console.print(rich_table("Killing-model fit", ["effector vs target", "parameter",
                                                   "estimate", "95% interval", "unit"],
                             [[r["donor"], r["parameter"], num(r["estimate"]),
                               f"{num(r['ci_low'])}-{num(r['ci_high'])}", r["unit"]]
                              for r in res.estimates]))

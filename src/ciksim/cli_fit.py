"""Implementation of ``ciksim fit culture`` and ``ciksim fit killing``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from ciksim.cli import echo_json, rich_table
from ciksim.errors import DataError
from ciksim.io import staged_output

METHOD = ("Bayesian fit per donor: emcee ensemble sampler, uniform priors "
          "over the declared ranges (log scale where wide); log counts with 15% CV, percentages "
          "with 3-point SD unless the data give sd; 95% credible intervals.")


def _plot_fits(fits: list[Any], data: Any) -> Any:
    from ciksim.report.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for k, fit in enumerate(fits):
        color = f"C{k % 10}"
        rows = data.rows[data.rows["donor"] == fit.donor]
        days = np.arange(0.0, 29.0)
        pred = fit.predictive(days, draws=100)
        for ax, q in ((axes[0], "total_cells"), (axes[1], "cd3cd56_pct")):
            lo, med, hi = np.quantile(pred[q], [0.025, 0.5, 0.975], axis=1)
            ax.plot(days, med, color=color, label=fit.donor)
            ax.fill_between(days, lo, hi, color=color, alpha=0.15, lw=0)
            obs = rows[rows["quantity"] == q]
            ax.plot(obs["day"], obs["value"], "o", color=color)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("cells")
    axes[1].set_ylabel("% CD3+CD56+")
    for ax in axes:
        ax.set_xlabel("culture day")
    axes[0].set_title("Fit and forecast (posterior median, 95% band; dots: data)")
    axes[0].legend(fontsize=7)
    return fig


def run_fit_culture(*, path: Path, protocol: str, free: str | None, dose: float | None,
                    cells: str, steps: int, walkers: int, seed: int, out: Path | None,
                    petab: Path | None, as_json: bool, console: Console) -> None:
    from ciksim.inference.culture import DEFAULT_FREE, CultureData, fit_culture
    from ciksim.protocol import Protocol

    data = CultureData.read_csv(path)
    names = tuple(x.strip() for x in free.split(",") if x.strip()) if free else DEFAULT_FREE
    proto = Protocol.load(protocol)
    if dose is not None and (not np.isfinite(dose) or dose <= 0):
        raise DataError("--dose must be a number of cells > 0")
    fits = fit_culture(data, protocol=proto, free=names, steps=steps, walkers=walkers,
                       burn=steps // 2, seed=seed)
    est = pd.concat([f.estimates() for f in fits], ignore_index=True)
    forecast = [f.forecast(dose, cells) for f in fits] if dose is not None else []
    if petab is not None:
        from ciksim.inference.petab_export import lint, write_petab

        lint(write_petab(data, petab, protocol=proto, free=names))
    if out is not None:
        with staged_output(out) as stage:
            stage.table(est, "estimates", "csv")
            if forecast:
                stage.table(pd.DataFrame(forecast), "forecast", "csv")
            stage.json({"method": METHOD, "estimates": est.to_dict("records"),
                        "forecast": forecast}, "fit")
            stage.figure(_plot_fits(fits, data), "fit")
    if as_json:
        echo_json({"method": METHOD, "estimates": est.to_dict("records"),
                   "forecast": forecast})
        return
    rows = [[r.donor, r.parameter, f"{r.estimate:.3g}", f"{r.ci_low:.3g}-{r.ci_high:.3g}",
             r.unit, f"{r.default:.3g}"] for r in est.itertuples()]
    console.print(rich_table("Culture fit", ["donor", "parameter", "estimate", "95% interval",
                                             "unit", "default"], rows))
    for f in forecast:
        if f["day_median"] is None:
            console.print(f"  {f['donor']}: {f['dose']:.3g} {f['cells']} cells not reached by "
                          f"day 28 (probability {f['probability_by_day_28']:.2f})")
        else:
            console.print(f"  {f['donor']}: {f['dose']:.3g} {f['cells']} cells on day "
                          f"{f['day_median']:g} (95% prediction interval {f['day_low']:g}-"
                          + ("after 28" if f["day_high"] is None else f"{f['day_high']:g}")
                          + ")")
    console.print(f"[dim]{METHOD}[/]")


def run_fit_killing(*, path: Path, targets_per_well: float, hours: float, as_json: bool,
                    console: Console) -> None:
    """The same seam for lysis data: the killing model's rate per effector and target."""
    import warnings

    from ciksim.assays.lysis import AssayWarning, LysisData, analyse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AssayWarning)
        res = analyse(LysisData.read_csv(path), targets_per_well=targets_per_well, hours=hours)
    rows = []
    for r in res.fits.itertuples():
        rows.append({"donor": f"{r.effector} vs {r.target}", "parameter": "k_kill",
                     "estimate": r.k_kill_per_h, "ci_low": r.k_kill_ci_low,
                     "ci_high": r.k_kill_ci_high, "unit": "1/hour"})
        rows.append({"donor": f"{r.effector} vs {r.target}", "parameter": "susceptible_fraction",
                     "estimate": r.susceptible_fraction, "ci_low": r.susceptible_ci_low,
                     "ci_high": r.susceptible_ci_high, "unit": "1"})
    if as_json:
        echo_json({"estimates": rows, "warnings": res.warnings})
        return

    def num(v: Any) -> str:
        return "-" if v is None or v != v else f"{v:.3g}"

    console.print(rich_table("Killing-model fit", ["effector vs target", "parameter",
                                                   "estimate", "95% interval", "unit"],
                             [[r["donor"], r["parameter"], num(r["estimate"]),
                               f"{num(r['ci_low'])}-{num(r['ci_high'])}", r["unit"]]
                              for r in rows]))

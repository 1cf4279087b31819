"""Fitting jobs: the culture model to a donor's counts (and a harvest forecast), the killing
model's rate to lysis data."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ciksim.errors import DataError
from ciksim.inference import FIT_STEPS, FIT_WALKERS
from ciksim.io import Staging
from ciksim.jobs.base import JobResult, jsonable

if TYPE_CHECKING:
    import pandas as pd

    from ciksim.inference.culture import CultureData

@dataclass(frozen=True)
class CultureFitResult(JobResult):
    """Posterior estimates per donor and, when a dose was given, the harvest-day forecast."""

    fits: tuple[Any, ...]
    data: CultureData
    estimates: pd.DataFrame
    forecast: tuple[dict[str, Any], ...]

    def summary(self) -> dict[str, Any]:
        from ciksim.inference.culture import FIT_METHOD

        return jsonable({"method": FIT_METHOD, "estimates": self.estimates.to_dict("records"),
                         "forecast": list(self.forecast),
                         "sampler": [f.diagnostics() for f in self.fits]})

    def report_html(self) -> str:
        from ciksim.report.pages import culture_fit_report

        return culture_fit_report(self.fits, self.data, self.estimates, self.forecast)

    def stage(self, stage: Staging) -> None:
        import pandas as pd

        from ciksim.report.plots import plot_culture_fits

        stage.table(self.estimates, "estimates")
        if self.forecast:
            stage.table(pd.DataFrame(list(self.forecast)), "forecast")
        stage.json(self.summary(), "fit")
        stage.figure(plot_culture_fits(self.fits, self.data), "fit")


def culture_fit_job(path: str | Path, *, protocol: str = "cik-standard",
                    free: Sequence[str] | None = None, dose: float | None = None,
                    cells: str = "cd3cd56", steps: int = FIT_STEPS, walkers: int = FIT_WALKERS,
                    seed: int = 0,
                    petab: str | Path | None = None, petab_mode: str = "per-donor",
                    origin: str | None = None,
                    progress: Callable[[int, int], None] | None = None) -> CultureFitResult:
    """Fit the culture model to the counts in ``path`` (CSV donor,day,quantity,value[,sd]).

    ``free``: parameters to fit (default phi_max, phi_min, k_conv); ``dose``: forecast the
    day each donor reaches this many ``cells`` (cd3cd56, cd3 or total); ``petab``: also write
    the problem as PEtab into that folder, with the donors' parameters ``petab_mode``
    (per-donor, pooled or hierarchical: see :mod:`ciksim.inference.petab_export`);
    ``origin`` names the file in error messages; ``progress(done, total)``: MCMC steps.
    """
    from ciksim.inference.culture import DEFAULT_FREE, CultureData, fit_culture
    from ciksim.inference.petab_export import MODES
    from ciksim.protocol import Protocol

    if petab_mode not in MODES:
        raise DataError(f"petab_mode: {petab_mode!r} is not one of {', '.join(MODES)}")
    data = CultureData.read_csv(path, origin=origin)
    if petab is not None and petab_mode == "hierarchical" and len(data.donors) < 2:
        raise DataError(f"petab_mode hierarchical: needs at least 2 donors to estimate a "
                        f"between-donor spread; {path} has {len(data.donors)}; use per-donor")
    names = tuple(free) if free else DEFAULT_FREE
    proto = Protocol.load(protocol)
    if dose is not None and (not math.isfinite(dose) or dose <= 0):
        raise DataError("dose: must be a number of cells > 0")
    fits = fit_culture(data, protocol=proto, free=names, steps=steps, walkers=walkers,
                       burn=steps // 4, seed=seed, progress=progress)
    import pandas as pd

    est = pd.concat([f.estimates() for f in fits], ignore_index=True)
    forecast = tuple(f.forecast(dose, cells) for f in fits) if dose is not None else ()
    if petab is not None:
        from ciksim.inference.petab_export import lint, write_petab

        lint(write_petab(data, petab, protocol=proto, free=names, mode=petab_mode,
                         fits=fits))
    return CultureFitResult(tuple(fits), data, est, forecast)


@dataclass(frozen=True)
class KillingFitResult(JobResult):
    """The killing model's rate and susceptible fraction per effector and target."""

    estimates: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...]
    hours: float

    def summary(self) -> dict[str, Any]:
        return jsonable({"estimates": list(self.estimates), "warnings": list(self.warnings)})

    def report_html(self) -> str:
        from ciksim.report.pages import killing_fit_report

        return killing_fit_report(self.estimates, self.warnings, self.hours)

    def stage(self, stage: Staging) -> None:
        import pandas as pd

        stage.table(pd.DataFrame(list(self.estimates)), "killing_fit")
        stage.json(self.summary(), "killing_fit")


def killing_fit_job(path: str | Path, *, targets_per_well: float = 1e4, hours: float = 4.0,
                    origin: str | None = None) -> KillingFitResult:
    """Fit the killing model's rate (1/hour) and susceptible fraction to a lysis CSV."""
    from ciksim.assays.lysis import AssayWarning, LysisData, analyse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AssayWarning)
        res = analyse(LysisData.read_csv(path, origin=origin),
                      targets_per_well=targets_per_well, hours=hours)
    rows: list[dict[str, Any]] = []
    for r in res.fits.itertuples():
        rows.append({"donor": f"{r.effector} vs {r.target}", "parameter": "k_kill",
                     "estimate": r.k_kill_per_h, "ci_low": r.k_kill_ci_low,
                     "ci_high": r.k_kill_ci_high, "unit": "1/hour"})
        rows.append({"donor": f"{r.effector} vs {r.target}", "parameter": "susceptible_fraction",
                     "estimate": r.susceptible_fraction, "ci_low": r.susceptible_ci_low,
                     "ci_high": r.susceptible_ci_high, "unit": "1"})
    return KillingFitResult(tuple(rows), tuple(res.warnings), hours)

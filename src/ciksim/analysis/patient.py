"""Virtual patients: residual AML after chemotherapy, with or without CIK infusions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ciksim.analysis.killing import Product, product_from_culture, product_from_folder
from ciksim.engines.stochastic import StochasticResult, StochasticSettings, simulate_stochastic
from ciksim.errors import DataError
from ciksim.model.variability import sample_parameters
from ciksim.models.patient import STOCHASTIC, Scenario, patient_model
from ciksim.protocol import Event, Protocol
from ciksim.schemas.options import check_count, check_horizon
from ciksim.schemas.scenario import RELAPSE_DEFINITIONS

DAYS_PER_MONTH = 365.25 / 12
#: Parameters reported per patient in the outcome table.
REPORTED = ("weight", "start_burden", "T_double", "logkill_L", "lig_frac")


@dataclass(frozen=True)
class CikSchedule:
    """CIK infusions: CD3+ cells per kg per infusion, number, interval and first day."""

    dose_per_kg: float = 5e7
    infusions: int = 3
    interval_days: float = 21.0
    first_day: float = 30.0
    il2_support: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.dose_per_kg) or self.dose_per_kg <= 0:
            raise DataError(f"cik-dose: must be > 0 CD3+ cells/kg, got {self.dose_per_kg!r}")
        if isinstance(self.infusions, bool) or not isinstance(self.infusions, int) \
                or self.infusions < 1:
            raise DataError(f"infusions: need a whole number >= 1, got {self.infusions!r}")
        if not math.isfinite(self.interval_days) or self.interval_days <= 0:
            raise DataError(f"interval: must be > 0 days, got {self.interval_days!r}")
        if not math.isfinite(self.first_day) or self.first_day < 0:
            raise DataError(f"first-infusion-day: {self.first_day!r} is before day 0 of the "
                            "scenario (remission); give a day >= 0")

    @property
    def days(self) -> list[float]:
        return [self.first_day + k * self.interval_days for k in range(self.infusions)]

    def events(self) -> list[Event]:
        return [Event(day=d, action="dose", dose="cik", amount=self.dose_per_kg)
                for d in self.days]


def default_product() -> Product:
    """The typical donor's day-21 ``cik-gmp`` harvest (culture model)."""
    from ciksim.analysis.culture import run_culture

    return product_from_culture(run_culture("cik-gmp", donors=1, days=21))


def resolve_product(product: str | Path | Product | None) -> Product:
    if product is None:
        return default_product()
    if isinstance(product, Product):
        return product
    return product_from_folder(product)


@dataclass(frozen=True)
class PatientRun:
    """Outcomes of ``replicates`` virtual patients (one row each) and their settings."""

    scenario: Scenario
    cik: CikSchedule | None
    years: float
    threshold: float
    result: StochasticResult
    product: Product | None

    @property
    def replicates(self) -> int:
        return int(self.result.indices.size)

    def outcomes(self) -> pd.DataFrame:
        """One row per patient: relapse, duration (months), cure, extinction, nadir."""
        r = self.result
        follow = self.years * 365.25
        relapse_day = r.crossing_time
        relapsed = ~np.isnan(relapse_day)
        cured = ~np.isnan(r.extinction_time) & ~relapsed
        duration = np.where(relapsed, relapse_day, follow) / DAYS_PER_MONTH
        model = r.model
        data: dict[str, Any] = {
            "patient": r.indices, "event": relapsed.astype(int), "duration": duration,
            "relapse_day": relapse_day, "cured": cured,
            "extinction_day": np.where(cured, r.extinction_time, np.nan),
            "normal_nadir_fraction": r.minimum,
        }
        for name in REPORTED:
            data[name] = r.parameters[model.parameter_names.index(name)]
        df = pd.DataFrame(data)
        df.attrs["units"] = {"duration": "month", "relapse_day": "day",
                             "extinction_day": "day", "normal_nadir_fraction": "1",
                             "weight": "kg", "T_double": "day"}
        return df

    def summary(self) -> dict[str, Any]:
        """Fractions with 95% binomial (Clopper-Pearson) intervals and the KM median RFS."""
        from lifelines import KaplanMeierFitter
        from scipy import stats

        df = self.outcomes()
        n = len(df)

        def frac(k: int) -> dict[str, float]:
            ci = stats.binomtest(int(k), n).proportion_ci(0.95) if n else None
            return {"value": k / n, "ci_low": ci.low, "ci_high": ci.high}

        relapse_3y = int(((df["event"] == 1) & (df["relapse_day"] <= 3 * 365.25)).sum())
        km = KaplanMeierFitter().fit(df["duration"], df["event"])
        median = float(km.median_survival_time_)
        return {
            "replicates": n,
            "cure": frac(int(df["cured"].sum())),
            "relapse": frac(int(df["event"].sum())),
            "relapse_3y": frac(relapse_3y) if self.years >= 3 else None,
            "median_rfs_months": median if math.isfinite(median) else None,
            "normal_nadir_fraction": float(np.nanmedian(df["normal_nadir_fraction"])),
        }


def patient_protocol(scenario: Scenario, cik: CikSchedule | None) -> Protocol:
    events = list(scenario.protocol.events) + (cik.events() if cik else [])
    return Protocol(scenario.name + ("+cik" if cik else ""), tuple(events))


def stochastic_settings() -> StochasticSettings:
    """Steps from the model's fastest time scales: a step changes rates by <= ~10%.

    Within 40 days of an event, effectors decay (ln 2/4 d) and normal cells regrow (0.2/d):
    dt = 0.1 / 0.2 = 0.5 d. Elsewhere the per-cell rates change only through the slowly
    growing burden: dt = 2 d.
    """
    return StochasticSettings(dt_max=2.0, dt_event=0.5, window=40.0)


def run_patients(
    scenario: str | Path | Scenario = "aml-cr1",
    *,
    subtype: str | None = None,
    cik: CikSchedule | None = None,
    product: str | Path | Product | None = None,
    start_burden: float | None = None,
    replicates: int = 1,
    years: float = 3.0,
    seed: int = 0,
    relapse: str | float = "haematologic",
    parameters: Mapping[str, Any] | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
    record: bool = False,
    settings: StochasticSettings | None = None,
    engine: str = "compiled",
) -> PatientRun:
    """Simulate ``replicates`` patients of a scenario (each its own parameters and fate).

    ``relapse`` is ``haematologic`` (>= 5% marrow blasts), ``molecular`` (MRD >= 1e-4) or a
    blast fraction. ``start_burden`` fixes leukemic cells at day 0 as a fraction of nucleated
    marrow cells for every patient. Patient ``i`` (``indices``) has the same parameters and
    random numbers whatever else is simulated with it. ``engine``: ``compiled`` (default)
    or ``reference`` (the numpy engine); both give the same outcomes.
    """
    scen = (scenario if isinstance(scenario, Scenario) else Scenario.load(scenario))
    scen = scen.with_subtype(subtype)
    check_count("max_patients", replicates, field="replicates")
    check_horizon("max_years", years, field="years")
    if isinstance(relapse, str):
        if relapse not in RELAPSE_DEFINITIONS:
            raise DataError(f"relapse: use {' or '.join(RELAPSE_DEFINITIONS)} or a fraction")
        threshold = RELAPSE_DEFINITIONS[relapse]
    else:
        threshold = float(relapse)
    if not 0 < threshold <= 1:
        raise DataError(f"relapse threshold must be a fraction in (0, 1], got {threshold!r}")
    if start_burden is not None and not (0 < start_burden <= 1):
        raise DataError(f"start-burden: {start_burden!r} must be a fraction in (0, 1] of "
                        "nucleated marrow cells (1e-4: molecular disease; 0.2: overt relapse)")
    model = patient_model()
    n = int(replicates)
    draws = sample_parameters(model, n, seed, medians=scen.parameters,
                              variability=scen.variability, indices=indices)
    pars: dict[str, Any] = dict(draws)
    prod = None
    if cik is not None:
        prod = resolve_product(product)
        comp = prod.median_composition()
        if comp["f_cik"] + comp["f_t"] <= 0:
            raise DataError(f"product {prod.name!r} has no CD3+ cells to dose by")
        pars.update({"prod_cik": comp["f_cik"], "prod_t": comp["f_t"],
                     "prod_nk": comp["f_nk"], "il2_support": float(cik.il2_support)})
    if start_burden is not None:
        pars["start_burden"] = float(start_burden)
    pars.update(parameters or {})
    result = simulate_stochastic(
        model, patient_protocol(scen, cik), years * 365.25, stochastic=STOCHASTIC,
        parameters=pars, seed=seed, indices=indices, settings=settings or stochastic_settings(),
        watch="blast_fraction", threshold=threshold, track_min="normal_fraction",
        record=record, engine=engine)
    return PatientRun(scen, cik, float(years), threshold, result, prod)

"""Virtual patients: residual AML after chemotherapy, with or without CIK infusions.

Each patient's outcome is one of three competing events (DESIGN "Competing events"): the
``event`` column says ``relapse`` (the watched blast fraction reached the threshold),
``death`` (death in remission, drawn from the declared non-relapse mortality) or
``censored`` (neither by the end of follow-up); ``duration`` is the time to that event.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ciksim.analysis.killing import Product, product_from_culture, product_from_folder
from ciksim.analysis.mrd import MRD_FIELDS, MrdMeasurement, measure_mrd
from ciksim.engines.stochastic import StochasticResult, StochasticSettings, simulate_stochastic
from ciksim.errors import DataError
from ciksim.model.variability import sample_parameters
from ciksim.models.patient import STOCHASTIC, Scenario, check_in_range, patient_model
from ciksim.protocol import Event, Protocol
from ciksim.schemas.options import check_count, check_horizon
from ciksim.schemas.scenario import RELAPSE_DEFINITIONS

DAYS_PER_MONTH = 365.25 / 12
#: Parameters whose per-patient overrides are checked against their plausible range (the
#: leukemia hierarchy, MRD mapping and non-relapse mortality; effect parameters such as
#: ``t_half_E`` may be set outside the population range by a calibration on purpose).
CHECKED = ("f_LIC", "lam_L", "T_double", "k_aq", "k_qa", "d_B", "K_L", "logkill_L",
           "logkill_Q", "kappa_npm1", "mrd_cells", "mrd_log10_sd", "flow_events",
           "nrm_course", "nrm_window", "nrm_late")
#: Parameters reported per patient in the outcome table.
REPORTED = ("weight", "start_burden", "f_LIC", "T_double", "logkill_L", "lig_frac",
            "t_half_E")


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

    def death_day(self) -> np.ndarray:
        """Day of death in remission per patient, had it come first (NaN: none in follow-up).

        Each chemotherapy course kills with probability ``nrm_course`` (per unit amount),
        uniformly within ``nrm_window`` days after it; after the last course's window, death
        comes at the constant hazard ``nrm_late``. Streams: ``SeedSequence([seed,
        crc32("nrm")], spawn_key=(patient,))``.
        """
        r = self.result
        names = r.model.parameter_names
        p_course, window, late = (r.parameters[names.index(k)]
                                  for k in ("nrm_course", "nrm_window", "nrm_late"))
        late_per_day = late / 365.25
        courses = sorted((e.day, e.amount) for e in self.scenario.protocol.events
                         if e.action == "dose" and e.dose == "chemo")
        follow = self.years * 365.25
        key = [int(r.meta["seed"]), zlib.crc32(b"nrm")]
        out = np.full(self.replicates, np.nan)
        for row, i in enumerate(r.indices):
            rng = np.random.default_rng(np.random.SeedSequence(key, spawn_key=(int(i),)))
            u = rng.random((len(courses), 2))
            day = np.inf
            for (d, amount), (a, b) in zip(courses, u, strict=True):
                if a < 1 - (1 - p_course[row]) ** amount:
                    day = min(day, d + b * window[row])
            start = (courses[-1][0] if courses else 0.0) + window[row]
            if late_per_day[row] > 0:
                day = min(day, start + rng.exponential(1 / late_per_day[row]))
            if day <= follow:
                out[row] = day
        return out

    def mrd(self) -> MrdMeasurement:
        """Measured MRD at day 0 (after induction): NPM1mut/ABL1 ratio and flow MRD."""
        r = self.result
        names = r.model.parameter_names
        y0 = r.model.compiled.initial(r.parameters)
        y0[[r.model.species_names.index(s) for s in STOCHASTIC]] = np.round(
            y0[[r.model.species_names.index(s) for s in STOCHASTIC]])
        share = r.model.compiled.assignments(0.0, y0, r.parameters)["leukemic_share"]
        assay = {f: r.parameters[names.index(f)] for f in MRD_FIELDS}
        return measure_mrd(np.clip(share, 0.0, 1.0), assay, int(r.meta["seed"]), r.indices)

    def outcomes(self) -> pd.DataFrame:
        """One row per patient: event (relapse / death / censored) and duration (months),
        relapse and death days, cure, extinction, nadir, day-0 MRD and parameters."""
        r = self.result
        follow = self.years * 365.25
        death = self.death_day()
        crossing = r.crossing_time
        relapsed = ~np.isnan(crossing) & ~(death < crossing)
        died = ~np.isnan(death) & ~relapsed
        event = np.where(relapsed, "relapse", np.where(died, "death", "censored"))
        day = np.where(relapsed, crossing, np.where(died, death, follow))
        extinct = ~np.isnan(r.extinction_time) & ~relapsed
        cured = extinct & ~(death < r.extinction_time)
        mrd = self.mrd()
        model = r.model
        data: dict[str, Any] = {
            "patient": r.indices, "event": event, "duration": day / DAYS_PER_MONTH,
            "relapse_day": np.where(relapsed, crossing, np.nan),
            "death_day": np.where(died, death, np.nan), "cured": cured,
            "extinction_day": np.where(cured, r.extinction_time, np.nan),
            "normal_nadir_fraction": r.minimum,
            "npm1_ratio_day0": mrd.npm1_ratio, "flow_mrd_day0": mrd.flow_mrd,
        }
        for name in REPORTED:
            data[name] = r.parameters[model.parameter_names.index(name)]
        df = pd.DataFrame(data)
        df.attrs["units"] = {"duration": "month", "relapse_day": "day", "death_day": "day",
                             "extinction_day": "day", "normal_nadir_fraction": "1",
                             "npm1_ratio_day0": "1", "flow_mrd_day0": "1",
                             "weight": "kg", "T_double": "day", "t_half_E": "day"}
        return df

    def summary(self) -> dict[str, Any]:
        """Fractions with 95% binomial (Clopper-Pearson) intervals and the KM median
        relapse-free survival (relapse and death in remission are both RFS events)."""
        from lifelines import KaplanMeierFitter
        from scipy import stats

        df = self.outcomes()
        n = len(df)

        def frac(k: int) -> dict[str, float]:
            ci = stats.binomtest(int(k), n).proportion_ci(0.95) if n else None
            return {"value": k / n, "ci_low": ci.low, "ci_high": ci.high}

        relapse = df["event"] == "relapse"
        relapse_3y = int((relapse & (df["relapse_day"] <= 3 * 365.25)).sum())
        km = KaplanMeierFitter().fit(df["duration"], df["event"] != "censored")
        median = float(km.median_survival_time_)
        return {
            "replicates": n,
            "cure": frac(int(df["cured"].sum())),
            "relapse": frac(int(relapse.sum())),
            "death_in_remission": frac(int((df["event"] == "death").sum())),
            "relapse_3y": frac(relapse_3y) if self.years >= 3 else None,
            "median_rfs_months": median if math.isfinite(median) else None,
            "normal_nadir_fraction": float(np.nanmedian(df["normal_nadir_fraction"])),
        }


def patient_protocol(scenario: Scenario, cik: CikSchedule | None) -> Protocol:
    events = list(scenario.protocol.events) + (cik.events() if cik else [])
    return Protocol(scenario.name + ("+cik" if cik else ""), tuple(events),
                    triggers=scenario.protocol.triggers)


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
    check_in_range(model, {k: v for k, v in (parameters or {}).items() if k in CHECKED},
                   "parameters.")
    pars.update(parameters or {})
    result = simulate_stochastic(
        model, patient_protocol(scen, cik), years * 365.25, stochastic=STOCHASTIC,
        parameters=pars, seed=seed, indices=indices, settings=settings or stochastic_settings(),
        watch="blast_fraction", threshold=threshold, track_min="normal_fraction",
        record=record, engine=engine)
    return PatientRun(scen, cik, float(years), threshold, result, prod)

"""Virtual post-transplant patients: the per-patient endpoint table of the allo model.

Each patient of an :class:`~ciksim.models.allo.AlloScenario` gets its own parameters and
random streams for a given seed (the same whatever the batch) and is simulated with the
stochastic engine (exact leukemia-initiating cells). From the recorded course:

- ``relapse_day``: the blast fraction reaches the scenario's threshold (the engine's
  interpolated crossing); ``remission_day``: after a relapse, the first day it is back below
  the threshold (complete remission, A4);
- ``gvhd_any_day`` / ``agvhd_day`` / ``agvhd34_day``: the overall GvHD grade (from
  host-tissue damage) reaches I / II / III (linear interpolation on the step grid);
  ``peak_grade`` by the end of follow-up;
- ``cgvhd_day``, and deaths: each is an event with a hazard declared in the model
  (``cgvhd_hazard``, ``nrm_hazard``, ``leuk_death_hazard``) whose cumulative hazard the
  engine integrates (``Lam_cgvhd``, ``Lam_nrm``, ``Lam_leuk``); the event happens when it
  reaches the patient's own unit-exponential draw (the inverse-transform form of a
  time-varying hazard). The draws come from one stream per patient and event kind,
  ``SeedSequence([seed, crc32(kind)], spawn_key=(patient,))``, the convention of the patient
  model's death in remission (``ciksim.analysis.patient``);
- ``death_day`` is the first of the two deaths; ``nrm_day`` is a death with no relapse before
  it (non-relapse mortality). A death from leukemia is by construction preceded by a relapse
  (its hazard grows with the blast fraction); should it come first, the relapse is dated to
  the death;
- ``<trigger>_day``: the day each trigger of the scenario's protocol fired (NaN: never, or
  after death);
- ``infusion_day``: the first donor-cell infusion (DLI or CIK: a fixed dose, or a trigger's
  day plus its first infusion's offset; NaN: none before death or the horizon), and
  ``gvhd_after_infusion_day``: the first onset of acute GvHD grade I-IV after it, from below
  grade I (an episode of the graft's own GvHD that resolved before does not hide a new one,
  and one still at grade I or above at the infusion does not count until it has resolved);
- after death nothing happens: later events are NaN, ``peak_grade`` and ``donor_chimerism``
  are taken up to death, ``cured`` means no leukemia-initiating cell left at death or at the
  horizon (and no relapse before).

Trial statistics (cumulative incidences, GRFS, OS) are computed from these columns by the
trial layer, not here.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ciksim.engines.stochastic import StochasticResult, simulate_stochastic
from ciksim.errors import DataError
from ciksim.model import Model
from ciksim.model.variability import sample_parameters
from ciksim.models.allo import HAZARDS, STOCHASTIC, AlloScenario, allo_model
from ciksim.protocol import Protocol

#: Overall grade from which GvHD counts as clinically significant (grade II-IV).
AGVHD_GRADE = 2.0
#: Overall grade of any acute GvHD (grade I-IV).
ANY_GRADE = 1.0
#: Overall grade of severe acute GvHD (grade III-IV; GRFS counts it).
SEVERE_GRADE = 3.0
#: Columns of the cohort table (days after the stem-cell infusion; NaN: not by the horizon).
COLUMNS = ("relapse_day", "remission_day", "gvhd_any_day", "agvhd_day", "agvhd34_day",
           "cgvhd_day", "nrm_day", "death_day", "peak_grade", "donor_chimerism", "cured",
           "infusion_day", "gvhd_after_infusion_day")
#: Doses of donor cells (CD3+ cells/kg).
INFUSIONS = ("dli", "cik")
#: Patients simulated at once (recorded courses are kept for one chunk at a time only).
CHUNK = 200
#: Quantities kept per patient and day when courses are asked for (``courses=True``).
COURSE = ("LIC", "B", "blast_fraction", "mrd", "donor_chimerism", "P_t", "P_cik", "X_t",
          "X_cik", "M", "X_m", "E_tot", "Dmg", "gvhd_grade", "Fib", "IS", "Infl")


@dataclass(frozen=True)
class AlloCohort:
    """Per-patient outcomes (days after the stem-cell infusion; NaN: did not happen by
    ``horizon_days``) and the seed that reproduces them."""

    table: pd.DataFrame
    seed: int
    horizon_days: float
    courses: pd.DataFrame | None = None

    def share(self, column: str) -> float:
        """Share of patients in whom the event in ``column`` happened by the horizon."""
        return float(np.isfinite(self.table[column].to_numpy()).mean())


def event_draws(seed: int, kind: str, indices: np.ndarray) -> np.ndarray:
    """One unit-exponential draw per patient for the event ``kind`` from the patient's own
    stream ``SeedSequence([seed, crc32(kind)], spawn_key=(patient,))``."""
    key = [int(seed), zlib.crc32(kind.encode())]
    return np.array([np.random.default_rng(np.random.SeedSequence(key, spawn_key=(int(i),)))
                     .exponential() for i in indices])


def first_reach(grid: np.ndarray, series: np.ndarray, level: np.ndarray | float
                ) -> np.ndarray:
    """Per column, the first time ``series`` (n_grid, n) reaches ``level`` (a number or one
    per column), interpolated linearly between grid points; NaN if never."""
    level = np.broadcast_to(np.asarray(level, dtype=float), series.shape[1:])
    reached = series >= level
    k = np.argmax(reached, axis=0)
    hit = reached.any(axis=0)
    cols = np.arange(series.shape[1])
    prev = np.maximum(k - 1, 0)
    y0, y1 = series[prev, cols], series[k, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(y1 > y0, (level - y0) / (y1 - y0), 1.0)
    t = np.where(k > 0, grid[prev] + np.clip(frac, 0.0, 1.0) * (grid[k] - grid[prev]), grid[0])
    return np.where(hit, t, np.nan)


def _at(grid: np.ndarray, series: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Per column, the value of ``series`` at the last grid point not after ``day``."""
    k = np.searchsorted(grid, day, side="right") - 1
    return series[np.clip(k, 0, grid.size - 1), np.arange(series.shape[1])]


def recorded(res: StochasticResult, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Recorded species and derived quantities ``names``, each (n_grid, n), with the
    model's assignments evaluated once over the whole course (``res.series`` evaluates
    them once per name)."""
    model, traj = res.model, res.trajectory
    if traj is None:
        raise DataError("no course recorded; simulate with record=True")
    out = {q: traj[:, model.species_names.index(q), :] for q in names
           if q in model.species_names}
    derived = [q for q in names if q not in out]
    if derived:
        nt, ns, n = traj.shape
        y = np.moveaxis(traj, 0, 1).reshape(ns, nt * n)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = model.compiled.assignments(np.repeat(res.grid, n), y,
                                                np.tile(res.parameters, (1, nt)))
        out.update({q: np.asarray(values[q]).reshape(nt, n) for q in derived})
    return out


def first_infusion(protocol: Protocol, res: StochasticResult) -> np.ndarray:
    """Per patient of ``res`` (simulated under ``protocol``), the day of the first
    donor-cell infusion (a fixed dose, or a trigger's day plus its earliest infusion
    offset); NaN if none."""
    fixed = [ev.day for ev in protocol.events if ev.action == "dose" and ev.dose in INFUSIONS]
    day = np.full(res.indices.size, min(fixed) if fixed else np.nan)
    for trig in protocol.triggers:
        offsets = [d.offset for d in trig.doses if d.dose in INFUSIONS]
        if offsets:
            day = np.fmin(day, res.trigger_day[trig.name] + min(offsets))
    return day


def onset_after(grid: np.ndarray, series: np.ndarray, level: float, start: np.ndarray, *,
                strict: bool = False) -> np.ndarray:
    """Per column, the first time after ``start`` that ``series`` rises to ``level`` from a
    recorded point below it, not before ``start`` (``strict``: rises above ``level`` from
    a point at or below it), interpolated linearly; NaN if never or if ``start`` is NaN.
    A remission is ``onset_after(grid, -blast_fraction, -threshold, relapse, strict=True)``:
    back below the threshold after a recorded point at or above it."""
    nt = grid.size
    steps = np.arange(nt)[:, None]
    below = (grid[:, None] >= np.nan_to_num(start, nan=np.inf)[None, :]) & (
        series <= level if strict else series < level)
    r = np.argmax(below, axis=0)
    rising = (steps > r[None, :]) & (series > level if strict else series >= level)
    k = np.argmax(rising, axis=0)
    hit = below.any(axis=0) & rising.any(axis=0)
    cols = np.arange(series.shape[1])
    prev = np.maximum(k - 1, 0)
    y0, y1 = series[prev, cols], series[k, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(y1 > y0, (level - y0) / (y1 - y0), 1.0)
    t = grid[prev] + np.clip(frac, 0.0, 1.0) * (grid[k] - grid[prev])
    return np.where(hit, t, np.nan)


def _outcomes(res: StochasticResult, protocol: Protocol, threshold: float, horizon: float
              ) -> dict[str, np.ndarray]:
    grid, idx, seed = res.grid, res.indices, int(res.meta["seed"])
    s = recorded(res, (*HAZARDS.values(), "blast_fraction", "gvhd_grade", "LIC",
                       "donor_chimerism"))
    draws = {kind: event_draws(seed, kind, idx) for kind in HAZARDS}
    t = {kind: first_reach(grid, s[state], draws[kind]) for kind, state in HAZARDS.items()}
    death = np.fmin(t["nrm"], t["leukemic_death"])
    end = np.where(np.isnan(death), horizon, death)
    alive = grid[:, None] <= end[None, :]

    def before_death(day: np.ndarray) -> np.ndarray:
        return np.where(day <= end, day, np.nan)

    relapse = before_death(res.crossing_time)
    leuk_first = ~np.isnan(death) & (t["leukemic_death"] == death)
    relapse = np.where(leuk_first & np.isnan(relapse), death, relapse)
    bf = s["blast_fraction"]
    remission = before_death(onset_after(grid, -bf, -threshold, relapse, strict=True))
    grade, lic = s["gvhd_grade"], s["LIC"]
    infusion = first_infusion(protocol, res)
    nrm = np.where(~np.isnan(death) & ~(relapse <= death), death, np.nan)
    cured = (_at(grid, lic, end) == 0) & ~(relapse <= end)
    return {
        "relapse_day": relapse,
        "remission_day": remission,
        "gvhd_any_day": before_death(first_reach(grid, grade, ANY_GRADE)),
        "agvhd_day": before_death(first_reach(grid, grade, AGVHD_GRADE)),
        "agvhd34_day": before_death(first_reach(grid, grade, SEVERE_GRADE)),
        "cgvhd_day": before_death(t["cgvhd"]),
        "nrm_day": nrm,
        "death_day": death,
        "peak_grade": np.where(alive, grade, 0.0).max(axis=0),
        "donor_chimerism": _at(grid, s["donor_chimerism"], end),
        "cured": cured,
        "infusion_day": before_death(infusion),
        "gvhd_after_infusion_day": before_death(onset_after(grid, grade, ANY_GRADE, infusion)),
    }


def simulate_allo_cohort(scenario: AlloScenario, n: int, seed: int, *,
                         horizon_days: float = 365.0, indices: np.ndarray | None = None,
                         parameters: Mapping[str, float | np.ndarray] | None = None,
                         engine: str = "compiled", chunk: int = CHUNK,
                         courses: bool = False) -> AlloCohort:
    """Simulate ``n`` patients of ``scenario`` and return their endpoint table (columns
    :data:`COLUMNS`, days after the stem-cell infusion; see the module docstring).

    Patient ``i`` (``indices``, default 0..n-1) gets the same draws, random streams and row
    for a given ``seed`` whatever the batch and ``chunk`` (patients simulated at once).
    ``parameters`` override the scenario's draws (a number for everyone, or one value per
    patient, e.g. a posterior draw). ``engine``: ``compiled`` or ``reference`` (the same
    outcomes). ``courses``: also keep :data:`COURSE` per patient and step up to death or
    the horizon (long table: ``patient``, ``day`` and one column each; for a few
    patients)."""
    if not np.isfinite(horizon_days) or horizon_days <= 0:
        raise DataError(f"horizon_days: give the follow-up in days (> 0), got {horizon_days!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"n: give the number of patients, a whole number >= 1, got {n!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise DataError(f"chunk: give a whole number of patients >= 1, got {chunk!r}")
    model = allo_model()
    clash = [t.name for t in scenario.protocol.triggers if f"{t.name}_day" in COLUMNS]
    if clash:
        raise DataError(f"triggers: the name {clash[0]!r} gives the column "
                        f"{clash[0]}_day of the cohort table; rename the trigger")
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    pars: dict[str, np.ndarray] = dict(sample_parameters(
        model, n, seed, medians=scenario.parameters, variability=scenario.variability,
        indices=idx))
    for name, value in (parameters or {}).items():
        if name not in model.parameter_by_name:
            raise DataError(f"parameters: unknown parameter {name!r} of the allo model; see "
                            "docs/models/allo.md")
        arr = np.asarray(value, dtype=float)
        if arr.ndim > 1 or arr.size not in (1, n):
            raise DataError(f"parameters: {name} needs one number or {n} values (one per "
                            f"patient), got shape {arr.shape}")
        pars[name] = np.broadcast_to(arr.reshape(-1) if arr.ndim else arr, (n,)).copy()
    parts, kept = [], []
    for lo in range(0, n, chunk):
        sel = slice(lo, min(lo + chunk, n))
        res = simulate_stochastic(
            model, scenario.protocol, horizon_days, stochastic=STOCHASTIC,
            parameters={k: v[sel] for k, v in pars.items()}, seed=seed, indices=idx[sel],
            watch="blast_fraction", threshold=scenario.relapse_threshold,
            stop_after_crossing=False, record=True, engine=engine)
        out = _outcomes(res, scenario.protocol, scenario.relapse_threshold, float(horizon_days))
        alive_until = np.nan_to_num(out["death_day"], nan=np.inf)
        fired = {f"{name}_day": np.where(day <= alive_until, day, np.nan)
                 for name, day in res.trigger_day.items()}
        parts.append(pd.DataFrame({"patient": res.indices, **out, **fired}))
        if courses:  # up to death or the horizon
            m = res.indices.size
            course = recorded(res, COURSE)
            alive = (res.grid[:, None] <= np.nan_to_num(out["death_day"], nan=np.inf)).ravel()
            kept.append(pd.DataFrame({"patient": np.tile(res.indices, res.grid.size),
                                      "day": np.repeat(res.grid, m),
                                      **{q: course[q].ravel() for q in COURSE}})[alive])
    table = pd.concat(parts, ignore_index=True)
    table.attrs.update({"seed": seed, "horizon_days": float(horizon_days),
                        "scenario": scenario.name, "donor": scenario.donor,
                        "conditioning": scenario.conditioning})
    table.attrs["units"] = {c: ("day" if c.endswith("_day") else "1") for c in table.columns
                            if c != "patient"}
    kept_courses = None
    if courses:
        kept_courses = (pd.concat(kept, ignore_index=True)
                        .sort_values(["patient", "day"], kind="stable").reset_index(drop=True))
        kept_courses.attrs.update(_course_attrs(model))
    return AlloCohort(table, seed, float(horizon_days), kept_courses)


def _course_attrs(model: Model) -> dict[str, dict[str, str]]:
    """Units and descriptions of the course columns, from the model's declarations."""
    described = {**model.species_by_name, **model.assignment_by_name}
    return {"units": {"day": "day", **{q: model.unit_of(q) for q in COURSE}},
            "descriptions": {"day": "days after the stem-cell infusion",
                             **{q: described[q].description for q in COURSE}}}

"""Simulating an allo trial: per-patient event table, chunks, and draws of allo parameters.

Each patient of an arm is simulated by :func:`ciksim.analysis.allo.simulate_allo_cohort`
(days after the stem-cell infusion; NaN = did not happen by the horizon) and turned into one
row of the trial table (times in months, as the autologous trial tables):

* ``duration``/``event``: relapse-free survival with its competing events, ``relapse`` or
  ``death`` (non-relapse mortality, NRM) whichever comes first, else ``censored`` at the
  end of follow-up (so :mod:`ciksim.trial.estimands` gives RFS, and Aalen-Johansen CIR and
  NRM, exactly as for autologous trials);
* ``os_duration``/``os_event``: death from any cause;
* ``grfs_duration``/``grfs_event``/``grfs_first``: GvHD-free, relapse-free survival, ended
  by the first of acute GvHD of the spec's grades (III-IV by default, or II-IV), chronic
  GvHD, relapse or death (Holtan et al., Blood 2015 — the conventional definition; not in the
  reference pack; chronic GvHD "requiring systemic treatment" is every modelled chronic
  GvHD: the model has no chronic GvHD severity);
* ``agvhd_duration``/``agvhd_event`` (acute GvHD II-IV) and ``cgvhd_duration``/
  ``cgvhd_event`` (chronic GvHD), coded 1 = the GvHD, 2 = relapse or death first
  (competing), 0 = censored, for Aalen-Johansen cumulative incidences.

Donor cells (fixed or triggered) are withheld from a patient once acute GvHD grade II-IV
or chronic GvHD has begun (:func:`withheld_cohort`), as in clinical practice and in the
allo evidence layer's eligibility.

An event column the allo model does not produce (an older model version) is reported as
not modelled (:func:`not_modelled`) and never happens in the table.

Patient ``i`` of arm ``a`` gets its parameters and random stream from (arm seed, ``i``)
only, so the table is the same for any chunk size or worker count. Over draws (``
simulate_allo_draws``) both arms of a draw simulate the same virtual patients (one seed),
differing only in the arm's donor cells (common random numbers).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ciksim.errors import DataError
from ciksim.models.allo import WITHDRAWAL
from ciksim.trial.allo import DONOR_CELLS, GRFS_AGVHD, AlloTrialSpec, allo_scenarios

DAYS_PER_MONTH = 365.25 / 12
#: Event columns of the allo cohort table used here (ciksim.analysis.allo).
EVENT_COLUMNS = ("relapse_day", "agvhd_day", "agvhd34_day", "cgvhd_day", "nrm_day",
                 "death_day")
#: Plain names of the events (reports).
EVENT_NAMES = {"relapse_day": "relapse", "agvhd_day": "acute GvHD grade II-IV",
               "agvhd34_day": "acute GvHD grade III-IV", "cgvhd_day": "chronic GvHD",
               "nrm_day": "non-relapse mortality", "death_day": "death"}
ALLO_COLUMNS = ("arm", "patient", "duration", "event", "os_duration", "os_event",
                "grfs_duration", "grfs_event", "grfs_first", "agvhd_duration", "agvhd_event",
                "cgvhd_duration", "cgvhd_event", *EVENT_COLUMNS, "peak_grade",
                "donor_chimerism", "cured", "first_infusion_day", "status")
#: Descriptions that differ from the autologous trial tables' (data dictionary).
ALLO_DESCRIPTIONS = {
    "duration": "relapse-free time: months (30.4375 days) from the stem-cell infusion to "
                "relapse or death without relapse, or to the end of follow-up",
    "event": "the patient's first event: relapse, death (non-relapse mortality, competing) "
             "or censored (neither during follow-up)",
    "os_duration": "overall survival time: months from the stem-cell infusion to death or "
                   "to the end of follow-up",
    "relapse_day": "day after the stem-cell infusion the blast fraction reached the relapse "
                   "threshold (empty: no relapse)",
    "death_day": "day after the stem-cell infusion of death from any cause (empty: alive at "
                 "the end of follow-up)",
    "cured": "true if no recipient leukemia-initiating cell was left at the end of "
             "follow-up",
}
#: Bits of a patient's index that hold the patient; the draw sits above them.
DRAW_SHIFT = 20


@cache
def not_modelled() -> tuple[str, ...]:
    """Event columns of ``EVENT_COLUMNS`` this version of the allo model does not produce
    (found from one simulated patient over one day)."""
    from ciksim.analysis.allo import simulate_allo_cohort
    from ciksim.models.allo import AlloScenario

    scen = AlloScenario.load(allo_scenarios()[0])
    cols = simulate_allo_cohort(scen, 1, 0, horizon_days=1.0).table.columns
    return tuple(c for c in EVENT_COLUMNS if c not in cols)


def _column(t: pd.DataFrame, name: str) -> np.ndarray:
    if name not in t:
        return np.full(len(t), np.nan)
    return t[name].to_numpy(float)


def _first(*cols: np.ndarray) -> np.ndarray:
    out = cols[0]
    for c in cols[1:]:
        out = np.fmin(out, c)
    return out


def _competing(own: np.ndarray, others: np.ndarray, horizon: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Months to the first of ``own`` and ``others`` (days) and the code: 1 own first (ties
    go to own), 2 a competing event first, 0 neither by ``horizon``."""
    first = np.fmin(own, others)
    code = np.where(np.isnan(first), 0,
                    np.where(own <= np.where(np.isnan(others), np.inf, others), 1, 2))
    return np.where(np.isnan(first), horizon, first) / DAYS_PER_MONTH, code.astype(int)


def outcome_table(cohort: pd.DataFrame, spec: AlloTrialSpec, arm: int) -> pd.DataFrame:
    """The trial rows of one arm's simulated patients (module docstring)."""
    h = spec.horizon_days
    day = {c: _column(cohort, c) for c in EVENT_COLUMNS}
    rel, nrm, death = day["relapse_day"], day["nrm_day"], day["death_day"]
    death = np.fmin(death, nrm)  # a death without relapse is a death
    rfs_first = np.fmin(rel, nrm)
    event = np.where(np.isnan(rfs_first), "censored",
                     np.where(rel == rfs_first, "relapse", "death")).astype(object)
    grade_col = GRFS_AGVHD[spec.grfs_agvhd]
    parts = {EVENT_NAMES[grade_col]: day[grade_col], "chronic GvHD": day["cgvhd_day"],
             "relapse": rel, "death": death}
    g_first = _first(*parts.values())
    label = np.full(len(cohort), "", dtype=object)
    for name in reversed(list(parts)):  # the first listed wins a tie
        label = np.where(parts[name] == g_first, name, label)
    label = np.where(np.isnan(g_first), "censored", label)
    a_t, a_e = _competing(day["agvhd_day"], np.fmin(rel, death), h)
    c_t, c_e = _competing(day["cgvhd_day"], np.fmin(rel, death), h)
    out = pd.DataFrame({
        "arm": spec.arms[arm].name,
        "patient": cohort["patient"].to_numpy(),
        "duration": np.where(np.isnan(rfs_first), h, rfs_first) / DAYS_PER_MONTH,
        "event": event,
        "os_duration": np.where(np.isnan(death), h, death) / DAYS_PER_MONTH,
        "os_event": np.isfinite(death).astype(int),
        "grfs_duration": np.where(np.isnan(g_first), h, g_first) / DAYS_PER_MONTH,
        "grfs_event": np.isfinite(g_first).astype(int),
        "grfs_first": label,
        "agvhd_duration": a_t, "agvhd_event": a_e,
        "cgvhd_duration": c_t, "cgvhd_event": c_e,
        **day,
        "peak_grade": _column(cohort, "peak_grade"),
        "donor_chimerism": _column(cohort, "donor_chimerism"),
        "cured": cohort["cured"].to_numpy(bool) if "cured" in cohort
        else np.zeros(len(cohort), bool),
        "first_infusion_day": first_infusion_day(cohort, spec.arms[arm]),
        "status": "ok",
    })
    out["death_day"] = death
    out = out[list(ALLO_COLUMNS)]
    out.attrs["descriptions"] = dict(ALLO_DESCRIPTIONS)
    return out


def first_infusion_day(cohort: pd.DataFrame, arm: Any) -> np.ndarray:
    """Day of each patient's first donor-cell infusion (fixed or triggered), NaN if none by
    the horizon."""
    from ciksim.schemas.protocol import EventSchema

    days = [EventSchema.model_validate(e).expanded_days()[0] for e in arm.events
            if e.get("dose") in DONOR_CELLS]
    out = np.full(len(cohort), float(min(days)) if days else np.nan)
    for t in arm.triggers:
        offs = [float(d.get("offset", 0)) for d in t.get("doses", [])
                if isinstance(d, Mapping) and d.get("dose") in DONOR_CELLS]
        col = f"{t['name']}_day"
        if offs and col in cohort:
            out = np.fmin(out, cohort[col].to_numpy(float) + min(offs))
    return out


#: The doses of a donor-cell course: the infusions and the withdrawal of immunosuppression
#: that goes with them (given, or withheld, on the same rule).
COURSE_DOSES = frozenset((*DONOR_CELLS, WITHDRAWAL))


def donor_cell_doses(scen: Any, cohort: pd.DataFrame) -> list[list[tuple[float, str, Any]]]:
    """Per patient of ``cohort`` (simulated with ``scen``): the (day, dose, amount) of every
    dose of its donor-cell course (infusions and withdrawals of immunosuppression,
    :data:`COURSE_DOSES`) its protocol gave, fixed or triggered, in the order of the
    days."""
    fixed = [(float(e.day), str(e.dose), e.amount) for e in scen.protocol.events
             if e.action == "dose" and e.dose in COURSE_DOSES]
    out = [list(fixed) for _ in range(len(cohort))]
    for t in scen.protocol.triggers:
        col = f"{t.name}_day"
        if col not in cohort:
            continue
        fired = cohort[col].to_numpy(float)
        for i in np.flatnonzero(np.isfinite(fired)):
            out[i] += [(float(fired[i]) + d.offset, d.dose, d.amount) for d in t.doses
                       if d.dose in COURSE_DOSES]
    return [sorted(d, key=lambda x: x[0]) for d in out]


def allowed_doses(row: pd.DataFrame, doses: list[tuple[float, str, Any]]) -> np.ndarray:
    """Which of one patient's donor-cell course ``doses`` may be given: none once acute
    GvHD grade II-IV or chronic GvHD has begun (nor after death): the eligibility rule of
    the allo evidence layer (:func:`ciksim.evidence.allo.arm_outcome`), applied to each
    dose day (so a withdrawal of immunosuppression goes with the infusion of its day)."""
    from ciksim.evidence.allo import arm_outcome

    if not doses:
        return np.zeros(0, bool)
    rows = row.iloc[np.zeros(len(doses), dtype=int)].reset_index(drop=True)
    eligible, _ = arm_outcome("agvhd", rows, np.array([d[0] for d in doses]), 0.0)
    return eligible


def _without_doses(scen: Any, doses: list[tuple[float, str, Any]], keep: np.ndarray) -> Any:
    """``scen`` with its triggers and donor-cell course events replaced by the kept
    ``doses`` as fixed events (the other fixed events unchanged)."""
    from ciksim.protocol import Event

    events = [e for e in scen.protocol.events
              if not (e.action == "dose" and e.dose in COURSE_DOSES)]
    events += [Event(day=d, action="dose", dose=name, amount=amount)
               for (d, name, amount), k in zip(doses, keep, strict=True) if k]
    proto = dataclasses.replace(scen.protocol, events=tuple(events), triggers=())
    return dataclasses.replace(scen, protocol=proto)


#: Re-simulations of a patient whose donor cells fall on or after the GvHD onset.
WITHHOLD_PASSES = 3


def withheld_cohort(scen: Any, n_days: float, seed: int, idx: np.ndarray
                    ) -> tuple[pd.DataFrame, list[list[tuple[float, str, Any]]], np.ndarray]:
    """The cohort table of patients ``idx`` of ``scen`` over ``n_days``, with donor cells
    withheld from a patient once acute GvHD grade II-IV or chronic GvHD has begun (clinical
    practice; :func:`allowed_doses`): such a patient is simulated again with the same random
    stream and only the doses before the onset (its course up to the first withheld dose
    is unchanged; doses after death are dropped). Returns the table, each patient's given
    donor-cell course doses (:func:`donor_cell_doses`), and whether the patient was
    simulated again."""
    from ciksim.analysis.allo import simulate_allo_cohort

    table = simulate_allo_cohort(scen, idx.size, seed, horizon_days=n_days,
                                 indices=idx).table.reset_index(drop=True)
    given = donor_cell_doses(scen, table)
    redone = np.zeros(len(table), bool)
    for i, doses in enumerate(given):
        own = scen
        for _ in range(WITHHOLD_PASSES):
            keep = allowed_doses(table.iloc[[i]], doses)
            if keep.all():
                break
            withheld = doses[int(np.argmin(keep))][0]
            dead = float(table.loc[i, "death_day"]) <= withheld
            own = _without_doses(own, doses, keep)
            doses = [d for d, k in zip(doses, keep, strict=True) if k]
            if dead:  # nothing withheld before death: the course is unchanged
                break
            new = simulate_allo_cohort(own, 1, seed, horizon_days=n_days,
                                       indices=idx[i:i + 1]).table
            cols = [c for c in new.columns if c in table.columns]
            table.loc[i, cols] = new[cols].to_numpy()[0]
            redone[i] = True
        given[i] = doses
    return table, given, redone


def _simulate(spec: AlloTrialSpec, scen: Any, arm: int, seed: int, idx: np.ndarray
              ) -> pd.DataFrame:
    table, given, _ = withheld_cohort(scen, spec.horizon_days, seed, idx)
    out = outcome_table(table, spec, arm)
    out["first_infusion_day"] = [next((day for day, dose, _ in d if dose in DONOR_CELLS),
                                      np.nan) for d in given]
    return out


def simulate_allo_chunk(spec: AlloTrialSpec, arm: int, start: int, stop: int, *,
                        indices: np.ndarray | None = None, seed: int | None = None,
                        scenario: Any = None) -> pd.DataFrame:
    """Trial rows of patients ``start … stop-1`` of arm ``arm`` (or the given ``indices``,
    ``seed`` and ``scenario``); a patient whose simulation fails is recorded with its
    status and the others go on."""
    idx = np.arange(start, stop) if indices is None else np.asarray(indices, dtype=np.int64)
    seed = spec.arm_seed(arm) if seed is None else seed
    scen = spec.arm_scenario(arm) if scenario is None else scenario
    try:
        return _simulate(spec, scen, arm, seed, idx)
    except Exception:  # one bad patient must not stop the trial: retry one by one
        rows = []
        for i in idx:
            try:
                rows.append(_simulate(spec, scen, arm, seed, np.array([i])))
            except Exception as exc:
                row = {c: np.nan for c in ALLO_COLUMNS}
                row.update({"arm": spec.arms[arm].name, "patient": int(i),
                            "event": "censored", "grfs_first": "", "cured": False,
                            "status": f"failed: {type(exc).__name__}: {exc}"})
                rows.append(pd.DataFrame([row]))
        return pd.concat(rows, ignore_index=True)[list(ALLO_COLUMNS)]


# ---- parameter draws ------------------------------------------------------------------------
def prior_dimensions() -> tuple[Any, ...]:
    """The allo calibration's priors of its parameters (``ciksim.evidence.allo``: declared
    ranges, log-uniform where positive and wider than a factor 10), bias terms left out."""
    from ciksim.evidence.allo import DEFAULT_PARAMETERS, allo_dimensions, load_allo_evidence

    dims = allo_dimensions(load_allo_evidence(), DEFAULT_PARAMETERS)
    return tuple(d for d in dims if d.kind == "effect")


def allo_prior_source() -> Any:
    """Draws of the alloreactivity parameters from their declared ranges (the prior)."""
    from ciksim.trial.sources import DrawSource, PriorSampler

    dims = prior_dimensions()
    return DrawSource(PriorSampler(dims), "prior",
                      "prior of the allo calibration's parameters (declared ranges)",
                      {"effects": [d.name for d in dims]})


#: The shipped allo posterior (allocalib: ``make calibrate`` / ``ciksim calibrate allo``).
SHIPPED_POSTERIOR = ("posterior", "allo.parquet")


def allo_source(posterior: Any = None, prior: bool = False) -> Any:
    """The draws an allo trial runs over: ``prior`` → :func:`allo_prior_source`;
    ``posterior`` a path → that saved allo posterior; an object with ``sample`` → itself;
    None → the shipped allo posterior (``DataError`` when this installation has none)."""
    from importlib import resources

    from ciksim.evidence.posterior import Posterior
    from ciksim.trial.sources import DrawSource, file_hash, provenance_of

    if prior:
        if posterior is not None:
            raise DataError("give either --posterior or --prior, not both")
        return allo_prior_source()
    if posterior is not None and hasattr(posterior, "sample"):
        return DrawSource(posterior, "posterior" if isinstance(posterior, Posterior)
                          else "sampler", "allo posterior given in the call",
                          provenance_of(dict(getattr(posterior, "manifest", {}) or {})))
    if posterior is None:
        post = Posterior.load(model="allo")  # DataError when none is shipped
        res = resources.files("ciksim.data").joinpath(*SHIPPED_POSTERIOR)
        with resources.as_file(res) as path:
            digest = file_hash(Path(path))
        label = "shipped calibrated allo posterior"
    else:
        path = Path(posterior)
        post = Posterior.load(path)
        digest = file_hash(path / "posterior.parquet" if path.is_dir() else path)
        label = f"allo posterior {path.name}"
    check_draw_columns(post.samples)
    return DrawSource(post, "posterior", label,
                      {**provenance_of(post.manifest), "file_sha256": digest})


def draw_scenario(scen: Any, reference: Mapping[str, float], row: Mapping[str, float]
                  ) -> Any:
    """The arm's scenario with one draw's parameter medians. Draws describe the reference
    donor and conditioning (as the allo calibration's): a drawn parameter that the
    population's options change from the reference (e.g. ``f_allo_t`` of an unrelated donor)
    keeps that option's ratio, clipped to the declared range
    (:func:`ciksim.evidence.allo.calibrated_medians`, the calibration's own rule)."""
    from ciksim.evidence.allo import calibrated_medians

    pars = {**scen.parameters, **calibrated_medians(scen, row, reference)}
    return dataclasses.replace(scen, parameters=pars)


def check_draw_columns(draws: pd.DataFrame) -> None:
    """Draw columns must be allo-model parameters (study terms are skipped)."""
    from ciksim.models.allo import allo_model

    names = set(allo_model().parameter_by_name)
    bad = [c for c in draws.columns if c not in names and not c.startswith(("bias:",
                                                                             "offset:"))]
    if bad:
        raise DataError(f"draws: column(s) {', '.join(map(str, bad))} are not allo-model "
                        "parameters; an allo trial runs over draws of allo parameters "
                        "(data/posterior/allo.parquet or the prior)")


def reference_parameters(spec: AlloTrialSpec) -> dict[str, float]:
    """Parameter medians of the scenario with its default donor and conditioning."""
    from ciksim.models.allo import AlloScenario

    return dict(AlloScenario.load(spec.population["scenario"]).parameters)


def cohort_seed(spec: AlloTrialSpec) -> int:
    """The virtual cohorts' seed: one for both arms (each patient simulated in both)."""
    return int(np.random.SeedSequence([spec.seed, zlib.crc32(b"allo-draw-cohort")])
               .generate_state(1)[0])


def simulate_allo_draws(spec: AlloTrialSpec, draws: pd.DataFrame, first: int,
                        control: str, treated: str, cohort: int) -> pd.DataFrame:
    """Per-patient table of draws ``first … first + len(draws) - 1``: both arms of each
    draw's virtual cohort of ``cohort`` patients (a ``draw`` column added)."""
    check_draw_columns(draws)
    names = [a.name for a in spec.arms]
    ref = reference_parameters(spec)
    seed = cohort_seed(spec)
    frames = []
    for k in range(len(draws)):
        d = first + k
        idx = (np.int64(d) << DRAW_SHIFT) + np.arange(cohort, dtype=np.int64)
        row = draws.iloc[k].to_dict()
        for arm in (names.index(control), names.index(treated)):
            scen = draw_scenario(spec.arm_scenario(arm), ref, row)
            df = simulate_allo_chunk(spec, arm, 0, 0, indices=idx, seed=seed, scenario=scen)
            df.insert(0, "draw", d)
            df["patient"] = df["patient"].to_numpy() & ((1 << DRAW_SHIFT) - 1)
            frames.append(df)
    return pd.concat(frames, ignore_index=True)

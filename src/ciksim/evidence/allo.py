"""Evidence after allogeneic stem-cell transplantation: DLI, donor-CIK and control cohorts.

The allo model's alloreactivity (:mod:`ciksim.models.allo`) is calibrated with the machinery
of the in vivo CIK effect (:func:`ciksim.evidence.calibrate`, ``model = "allo"``). An allo
evidence file (shipped: ``data/evidence/allo.toml``) holds :class:`AlloStudy` records: an
allo scenario (donor, conditioning, parameter overrides) as the population; arms of donor
cells (``dli``, ``cik``: CD3+ cells/kg as a bulk dose, equal repeated doses, an escalating
list or dose levels) or none (a control arm), from a fixed day after the stem-cell infusion
or when a trigger fires, later infusions withheld at a stop (:data:`STOPS`); an endpoint
(:data:`ALLO_ENDPOINTS`) counted from the first infusion. Patients alive and without grade
II-IV or chronic GvHD at the first infusion are eligible for the GvHD endpoints (a resolved
grade I is no bar), those in overt relapse for ``cr``; a study's landmark and an arm's
``in_remission`` narrow that further (:func:`design_mask`). Everything is computed from the
columns of :func:`ciksim.analysis.allo.simulate_allo_cohort` (days after the stem-cell
infusion); an arm's patients are the first ``n`` eligible of ``n × screen`` simulated
recipients.

The calibrated coordinates are allo-model parameters (priors: their declared ranges,
log-uniform where positive and wider than a factor 10), the bias terms of
:mod:`ciksim.evidence.effect` (non-randomised designs) and a population offset for studies
with two or more arms. A calibrated value is the parameter's median in the reference
scenario (``allo-aml-cr``: sibling donor, myeloablative conditioning); a study whose donor
or conditioning declares another median keeps its ratio to the reference.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from ciksim.errors import DataError
from ciksim.evidence.allo_records import (
    ALLO_ENDPOINTS as ALLO_ENDPOINTS,
)
from ciksim.evidence.allo_records import (
    ARM_SHIFT,
    KEY_SHIFT,
    MAX_SIMULATED,
    MAX_STUDIES,
    PROPORTIONS,
    REFERENCE_SCENARIO,
    STUDY_SHIFT,
    AlloEvidence,
    AlloStudy,
    study_scenario,
)
from ciksim.evidence.allo_records import (
    STOPS as STOPS,
)
from ciksim.evidence.allo_records import (
    load_allo_evidence as load_allo_evidence,
)
from ciksim.evidence.allo_records import (
    parse_allo_evidence as parse_allo_evidence,
)
from ciksim.evidence.effect import (
    BIAS_SD,
    OFFSET_SD,
    Dimension,
    proposal_to_natural,
    range_dimension,
    with_study_terms,
)
from ciksim.evidence.simulate import DAYS_PER_MONTH, Observed, proportion, shift_count

DAYS_PER_YEAR = 365.25
#: Calibrated by default: the alloreactive precursor share of T cells (A1), the host-tissue
#: damage rate (A1-A2), the host antigen presentation left at full donor chimerism (A1: what
#: primes a DLI given in remission, apart from the GvL that clears host haematopoiesis), the
#: CIK precursor share relative to T cells (A3-A4), the damage per activated CIK cell (A3,
#: confounded with the share there, told apart by A4's GvL), the GvL killing rate (A4) and
#: the residual leukemia at transplant (A6, jointly: the graft's GvL shapes the same relapse
#: hazard).
DEFAULT_PARAMETERS = ("f_allo_t", "k_dmg", "apc_floor", "cik_allo_rel", "cik_tox_rel",
                      "k_gvl", "start_burden")
#: The summary of a simulated arm without eligible patients (e.g. nobody relapses, or all
#: have severe GvHD before the infusion): an impossible proportion, far from every observed
#: one (many standard errors) but finite, so the tolerance schedule keeps working.
NO_PATIENTS = -1.0


def recipient_indices(key: int, study: int, arm: int, n: int) -> np.ndarray:
    """Stream indices of the ``n`` simulated recipients of ``arm`` of ``study`` for draw
    ``key``: disjoint for every (key, study, arm), so no two arms share a recipient."""
    if not (0 <= study < MAX_STUDIES and 0 <= arm < 1 << (STUDY_SHIFT - ARM_SHIFT)
            and 0 <= n <= MAX_SIMULATED):
        raise DataError(f"allo evidence: at most {MAX_STUDIES} studies, 4 arms and "
                        f"{MAX_SIMULATED} simulated recipients per arm; got study {study}, "
                        f"arm {arm}, {n} recipients")
    return ((int(key) << KEY_SHIFT) + (study << STUDY_SHIFT) + (arm << ARM_SHIFT)
            + np.arange(n, dtype=np.int64))


@dataclass(frozen=True)
class PreparedAlloArm:
    """An arm (or one dose level of it) ready to simulate: its scenario (infusions as
    protocol events), the first infusion day and the simulated follow-up; ``stops`` and
    ``shorter`` (the scenario with only the first k infusions, k = 1, 2, ...) withhold a
    patient's later infusions."""

    name: str
    n: int
    screen: int
    scenario: Any  # models.allo.AlloScenario
    start: float | str  # the first infusion day, or the cohort column of the trigger day
    horizon: float
    days: tuple[float, ...] = ()  # infusion days after the first one
    stops: tuple[str, ...] = ()
    shorter: tuple[Any, ...] = ()
    in_remission: bool = False


@dataclass(frozen=True)
class PreparedAlloStudy:
    study: AlloStudy
    arms: tuple[PreparedAlloArm, ...]
    window: float
    observed: tuple[Observed, ...]

    @property
    def rate(self) -> bool:
        """A relapse-rate endpoint (else a proportion)."""
        return self.study.endpoint.kind not in PROPORTIONS


def observed_rate(rate: float, n: int, years: float) -> tuple[float, float]:
    """An observed rate per 100 patient-years and its Poisson SE, the reported cohort of
    ``n`` taken as all at risk over the ``years`` of the interval (an upper bound of the
    patient-years, so the SE is a lower bound: derived, since registries report the rate,
    not its events)."""
    events = rate / 100.0 * n * years
    return rate, rate / math.sqrt(max(events, 1.0))


def prepare(evidence: AlloEvidence) -> tuple[PreparedAlloStudy, ...]:
    """Every used study ready to simulate, with its observed summaries."""
    return prepare_studies(evidence.used)


def prepare_studies(studies: Sequence[AlloStudy]) -> tuple[PreparedAlloStudy, ...]:
    """``studies`` (used in the fit or not, e.g. a prediction check) ready to simulate."""
    out = []
    for study in studies:
        ep = study.endpoint
        window = ep.at_months * DAYS_PER_MONTH
        arms = []
        for arm in study.arms:
            for level in arm.level_arms():
                scen = study_scenario(study, "allo evidence", level)
                if level.trigger is not None:
                    start: float | str = f"{level.trigger.name}_day"
                    latest = level.trigger.last_day
                else:
                    start = latest = float(level.first_day)
                doses = level.doses
                step = float(level.interval_days or 0.0)
                stops = level.stop if len(doses) > 1 else ()
                shorter = tuple(study_scenario(study, "allo evidence", level, doses[:k])
                                for k in range(1, len(doses))) if stops else ()
                arms.append(PreparedAlloArm(
                    arm.name, level.n, level.screen, scen, start, latest + window + 1.0,
                    tuple(k * step for k in range(1, len(doses))), stops, shorter,
                    level.in_remission))
        observed = []
        for arm in study.arms:
            if arm.rate_per_100py is not None:
                years = (ep.at_months - ep.from_months) / 12.0
                v, se = observed_rate(arm.rate_per_100py, arm.n, years)
            else:
                v, se = proportion(int(arm.events), arm.n)
            observed.append(Observed(f"{study.id}/{arm.name}", v, se))
        out.append(PreparedAlloStudy(study, tuple(arms), window, tuple(observed)))
    return tuple(out)


def _column(table: Any, name: str) -> np.ndarray:
    if name not in table:
        raise DataError(f"the allo cohort table has no column {name!r} (needed by the allo "
                        "evidence endpoints); update ciksim.analysis.allo")
    return table[name].to_numpy(float)


def arm_outcome(kind: str, table: Any, start: np.ndarray | float, window: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per simulated recipient: eligible for the arm, and the endpoint (see the module
    docstring), from the cohort table's columns and each recipient's first infusion day.
    (A relapse-rate endpoint: :func:`arm_exposure`.)"""
    start = np.broadcast_to(np.asarray(start, float), (len(table),))
    death = _column(table, "death_day")
    with np.errstate(invalid="ignore"):
        alive = ~(death <= start)
        given = np.isfinite(start) & alive
        if kind in ("gvhd", "agvhd"):
            severe = np.fmin(_column(table, "agvhd_day"), _column(table, "cgvhd_day"))
            eligible = given & ~(severe <= start)
            onsets = [gvhd_onset(table), _column(table, "agvhd_day")]
            if kind == "gvhd":
                onsets.append(_column(table, "cgvhd_day"))
            hit = np.zeros(len(table), bool)
            for day in onsets:
                hit |= (day > start) & (day <= start + window)
        elif kind == "cr":
            eligible = given & (_column(table, "relapse_day") <= start)
            back = _column(table, "remission_day")
            hit = (back > start) & (back <= start + window)
        elif kind == "os":
            eligible = given
            hit = ~(death <= start + window)
        else:
            raise DataError(f"endpoint {kind!r}: not a proportion; see arm_exposure")
    return eligible, hit & eligible


def design_mask(study: AlloStudy, arm: PreparedAlloArm, table: Any,
                start: np.ndarray | float) -> np.ndarray:
    """Per simulated recipient, whether the study's design admits it: its landmark (alive on
    ``population.alive_on_day``, not relapsed by ``population.relapse_free_on_day``) and,
    for an ``in_remission`` (pre-emptive) arm, no overt relapse at the first infusion."""
    start = np.broadcast_to(np.asarray(start, float), (len(table),))
    pop = study.population
    ok = np.ones(len(table), bool)
    relapse = _column(table, "relapse_day")
    with np.errstate(invalid="ignore"):
        if pop.alive_on_day is not None:
            ok &= ~(_column(table, "death_day") <= pop.alive_on_day)
        if pop.relapse_free_on_day is not None:
            ok &= ~(relapse <= pop.relapse_free_on_day)
        if arm.in_remission:
            ok &= ~(relapse <= start)
    return ok


def gvhd_onset(table: Any) -> np.ndarray:
    """Per recipient, the onset of acute GvHD of any grade that counts: the first one after
    the first donor-cell infusion, from below grade I (``gvhd_after_infusion_day``: a
    resolved episode of the graft's own GvHD does not hide it); with no infusion (a control
    arm), the first one ever (``gvhd_any_day``)."""
    infused = np.isfinite(_column(table, "infusion_day"))
    return np.where(infused, _column(table, "gvhd_after_infusion_day"),
                    _column(table, "gvhd_any_day"))


def arm_exposure(table: Any, start: np.ndarray | float, begin: float, end: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per simulated recipient, for a relapse rate over days ``(start + begin, start +
    end]``: relapsed within it, and the days at risk in it (alive and relapse-free at its
    beginning; up to the relapse, death or its end)."""
    start = np.broadcast_to(np.asarray(start, float), (len(table),))
    death, relapse = _column(table, "death_day"), _column(table, "relapse_day")
    lo, hi = start + begin, start + end
    with np.errstate(invalid="ignore"):
        at_risk = np.isfinite(start) & ~(death <= lo) & ~(relapse <= lo)
        hit = at_risk & (relapse > lo) & (relapse <= hi)
        until = np.fmin(np.fmin(np.nan_to_num(relapse, nan=np.inf),
                                np.nan_to_num(death, nan=np.inf)), hi)
        days = np.where(at_risk, np.clip(until - lo, 0.0, None), 0.0)
    return hit, days


def stop_days(stops: Sequence[str], table: Any, start: np.ndarray | float = -np.inf
              ) -> np.ndarray:
    """Per recipient, the first day after ``start`` (the first infusion) on which something
    in ``stops`` (:data:`STOPS`) happened (NaN: never)."""
    start = np.broadcast_to(np.asarray(start, float), (len(table),))
    day = np.full(len(table), np.nan)
    for stop in stops:
        if stop == "significant-gvhd":
            cols = [_column(table, "agvhd_day"), _column(table, "cgvhd_day")]
        elif stop == "gvhd":
            cols = [gvhd_onset(table), _column(table, "agvhd_day"), _column(table, "cgvhd_day")]
        else:
            cols = [_column(table, "remission_day")]
        for values in cols:
            with np.errstate(invalid="ignore"):
                day = np.fmin(day, np.where(values > start, values, np.nan))
    return day


def _withhold(arm: PreparedAlloArm, table: Any, start: np.ndarray, seed: int,
              idx: np.ndarray, medians: Mapping[str, np.ndarray]) -> Any:
    """``table`` with the later infusions of each recipient withheld from the first one on
    or after a stop (``arm.stops``; the first infusion is always given): such recipients are
    simulated again, with the same random streams and only the infusions before it (their
    courses up to the first withheld infusion are unchanged, so one pass is exact), grouped
    by how many infusions they keep."""
    from ciksim.analysis.allo import simulate_allo_cohort

    stop = stop_days(arm.stops, table, start)
    given = 1 + sum(((start + d) < np.nan_to_num(stop, nan=np.inf)).astype(int)
                    for d in arm.days)
    table = table.copy()
    for k, scen in enumerate(arm.shorter, start=1):
        rows = np.flatnonzero(np.isfinite(start) & (given == k))
        if not rows.size:
            continue
        sub = dataclasses.replace(scen, parameters={
            **scen.parameters, **{name: v[rows] for name, v in medians.items()}})
        again = simulate_allo_cohort(sub, rows.size, int(seed), horizon_days=arm.horizon,
                                     indices=idx[rows]).table
        cols = [c for c in again.columns if c in table.columns]
        table.iloc[rows, [table.columns.get_loc(c) for c in cols]] = again[cols].to_numpy()
    return table


@cache
def _reference_parameters() -> tuple[tuple[str, float], ...]:
    from ciksim.models.allo import AlloScenario

    return tuple(AlloScenario.load(REFERENCE_SCENARIO).parameters.items())


def _reference_medians() -> dict[str, float]:
    """The reference scenario's parameter medians (a fresh dict; the scenario is read once)."""
    return dict(_reference_parameters())


def calibrated_medians(scenario: Any, theta: Mapping[str, float], ref: Mapping[str, float]
                       ) -> dict[str, float]:
    """The scenario's medians under calibrated reference values ``theta`` (a scenario
    that declares another median than the reference keeps its ratio; clipped to the
    declared range)."""
    from ciksim.models.allo import allo_model

    pars = allo_model().parameter_by_name
    out = {}
    for name, value in theta.items():
        if name not in pars:
            continue  # bias and offset terms
        p = pars[name]
        base = float(scenario.parameters.get(name, p.value))
        reference = float(ref.get(name, p.value))
        v = float(value) * base / reference if reference > 0 else float(value)
        out[name] = min(max(v, p.low), p.high)
    return out


def arm_table(ps: PreparedAlloStudy, study: int, arm: int,
              thetas: Sequence[Mapping[str, float]], keys: Sequence[int], seed: int
              ) -> tuple[Any, np.ndarray]:
    """The cohort table of arm ``arm`` (a prepared arm or dose level) of study number
    ``study`` for every draw (``n × screen`` rows per draw, in the order of ``thetas``),
    later infusions withheld at the arm's stops, and each row's first infusion day.
    Recipient ``j`` of draw ``i`` has the random stream (seed, keys[i], study, arm, j). The
    study's own population parameters (``population.parameters``) stay as declared, not
    calibrated."""
    from ciksim.analysis.allo import simulate_allo_cohort

    pa = ps.arms[arm]
    fixed = ps.study.population.parameters
    m = pa.n * pa.screen
    idx = np.concatenate([recipient_indices(k, study, arm, m) for k in keys])
    ref = _reference_medians()
    per_draw = [{k: v for k, v in calibrated_medians(pa.scenario, th, ref).items()
                 if k not in fixed} for th in thetas]
    arrays = {name: np.repeat([d[name] for d in per_draw], m) for name in per_draw[0]}
    scen = dataclasses.replace(pa.scenario, parameters={**pa.scenario.parameters, **arrays})
    table = simulate_allo_cohort(scen, len(thetas) * m, int(seed), horizon_days=pa.horizon,
                                 indices=idx).table
    start = _column(table, pa.start) if isinstance(pa.start, str) \
        else np.full(len(table), float(pa.start))
    if pa.stops:
        table = _withhold(pa, table, start, seed, idx, arrays)
    return table, start


def simulate_batch(prepared: Sequence[PreparedAlloStudy],
                   thetas: Sequence[Mapping[str, float]], keys: Sequence[int], seed: int,
                   streams: Sequence[int] | None = None
                   ) -> list[dict[str, dict[str, tuple[float, float]]]]:
    """Simulate every study for each draw ``thetas[i]`` (natural scale) with key
    ``keys[i]``: per draw, ``{study id: {arm: (patients with the endpoint, patients)}}``
    (a relapse-rate endpoint: ``(relapses, patient-years at risk)``; the dose levels of an
    arm added up). One cohort simulation per arm (and level) for the whole batch
    (:func:`arm_table`), so a draw's result does not depend on the batch. ``streams``: the
    study number of each study's random streams (default its position; a counterfactual
    copy of a study given the original's number simulates the same recipients)."""
    if len(thetas) != len(keys):
        raise DataError("thetas and keys must have the same length")
    if streams is not None and len(streams) != len(prepared):
        raise DataError("streams must give one study number per prepared study")
    out: list[dict[str, Any]] = [{} for _ in thetas]
    if not thetas:
        return out
    for s, ps in enumerate(prepared):
        ep = ps.study.endpoint
        number = s if streams is None else int(streams[s])
        for a, pa in enumerate(ps.arms):
            m = pa.n * pa.screen
            table, start = arm_table(ps, number, a, thetas, keys, seed)
            if ps.rate:
                hit, days = arm_exposure(table, start, ep.from_months * DAYS_PER_MONTH,
                                         ps.window)
                eligible = np.isfinite(start)
            else:
                eligible, hit = arm_outcome(ep.kind, table, start, ps.window)
            eligible = eligible & design_mask(ps.study, pa, table, start)
            for i in range(len(thetas)):
                rows = np.flatnonzero(eligible[i * m:(i + 1) * m])[:pa.n] + i * m
                if ps.rate:
                    got = (float(hit[rows].sum()), float(days[rows].sum()) / DAYS_PER_YEAR)
                else:
                    got = (float(hit[rows].sum()), float(rows.size))
                arms = out[i].setdefault(ps.study.id, {})
                old = arms.get(pa.name, (0.0, 0.0))
                arms[pa.name] = (old[0] + got[0], old[1] + got[1])
    return out


def summaries(prepared: Sequence[PreparedAlloStudy], raw: Mapping[str, Any],
              theta: Mapping[str, float], *, bias: bool = True) -> dict[str, float]:
    """Simulated summaries of one draw with its bias and offset terms (``bias`` False:
    the model's own prediction); keys match the observed summaries (a rate: per 100
    patient-years, never shifted)."""
    out = {}
    for ps in prepared:
        sid = ps.study.id
        b = float(theta.get(f"bias:{sid}", 0.0)) if bias else 0.0
        off = float(theta.get(f"offset:{sid}", 0.0)) if bias else 0.0
        for j, arm in enumerate(ps.study.arms):
            k, m = raw[sid][arm.name]
            delta = off + (b if j == 0 else 0.0)
            if not m:
                out[f"{sid}/{arm.name}"] = NO_PATIENTS
            elif ps.rate:
                out[f"{sid}/{arm.name}"] = 100.0 * k / m
            else:
                out[f"{sid}/{arm.name}"] = shift_count(k, m, delta)
    return out


def term_shifts(prepared: Sequence[PreparedAlloStudy]
                ) -> tuple[list[str], dict[str, list[str]], list[bool]]:
    """How :func:`summaries` applies the study terms (for integrating them out of the
    acceptance, :mod:`ciksim.evidence.marginal`): the observed summaries in order, the terms
    shifting each (``offset:<id>`` every arm, ``bias:<id>`` the first), and whether on the
    log-odds scale (a rate has no terms)."""
    names: list[str] = []
    shifts: dict[str, list[str]] = {}
    logodds: list[bool] = []
    for ps in prepared:
        sid = ps.study.id
        for j, o in enumerate(ps.observed):
            names.append(o.name)
            shifts[o.name] = [f"offset:{sid}"] + ([f"bias:{sid}"] if j == 0 else [])
            logodds.append(not ps.rate)
    return names, shifts, logodds


def simulate_chunk(payload: tuple[tuple[PreparedAlloStudy, ...], list[Dimension], int],
                   thetas: Sequence[Mapping[str, float]], keys: Sequence[int]
                   ) -> list[dict[str, float]]:
    """Summaries of proposals on the sampling scale (a worker's unit of work)."""
    prepared, dims, seed = payload
    natural = [proposal_to_natural(dims, th) for th in thetas]
    raw = simulate_batch(prepared, natural, keys, seed)
    return [summaries(prepared, r, th) for r, th in zip(raw, natural, strict=True)]


def allo_study_terms(study: AlloStudy) -> list[Dimension]:
    """Bias (non-randomised designs: the first arm's log-odds, or the single arm's) and,
    for two or more arms, a population offset (every arm's log-odds), with the priors of
    :mod:`ciksim.evidence.effect`."""
    out = []
    if study.bias_term:
        sd = BIAS_SD[study.design]
        what = "log-odds of the single arm" if len(study.arms) == 1 else \
            f"log-odds of arm {study.arms[0].name} against the others"
        out.append(Dimension(
            f"bias:{study.id}", "bias", "normal", 0.0, sd, "1",
            f"design bias of {study.id} ({study.design.value}): shift of the {what}",
            f"assumed: informative prior for {study.design.value} designs, SD {sd} on the "
            "log scale (widths grow as the comparison weakens)"))
    if len(study.arms) > 1:
        out.append(Dimension(
            f"offset:{study.id}", "offset", "normal", 0.0, OFFSET_SD, "1",
            f"population of {study.id} vs its model scenario: shift of every arm's log-odds",
            f"assumed: SD {OFFSET_SD} (the population's odds within ×/÷ 5 of the scenario's, "
            "90%)"))
    return out


def allo_dimensions(evidence: AlloEvidence, names: Sequence[str] | None = None,
                    priors: Mapping[str, tuple[float, float]] | None = None
                    ) -> list[Dimension]:
    """The calibration's coordinates: allo parameters (``names``; default
    :data:`DEFAULT_PARAMETERS`), then each used study's bias and offset terms. Priors are
    the declared ranges (log-uniform where positive and wider than a factor 10) unless
    ``priors`` gives ``(low, high)`` (or a bias term's ``(mean, sd)``)."""
    from ciksim.models.allo import allo_model

    names = DEFAULT_PARAMETERS if names is None else tuple(names)
    declared = allo_model().parameter_by_name
    priors = dict(priors or {})
    unknown = [n for n in names if n not in declared]
    if unknown or not names:
        raise DataError(f"parameters: unknown {', '.join(unknown) or '(none given)'}; give "
                        "allo-model parameters (docs/models/allo.md), e.g. "
                        f"{', '.join(DEFAULT_PARAMETERS)}")
    dims = []
    for name in names:
        p = declared[name]
        lo, hi = priors.pop(name, (p.low, p.high))
        if not lo < hi or not p.low <= lo or not hi <= p.high:
            raise DataError(f"prior for {name}: need {p.low:g} <= low < high <= {p.high:g} "
                            f"(its declared range), got ({lo}, {hi})")
        dims.append(range_dimension(name, lo, hi, lo > 0 and hi / lo > 10, p.unit,
                                    p.description, p.source))
    return with_study_terms(dims, [allo_study_terms(s) for s in evidence.used], priors)


def allo_model_hash() -> str:
    """Fingerprint of the allo model (parameters, processes with their changes,
    assignments, doses with what they add and scale) and its reference scenario: a
    posterior made on another version must be regenerated."""
    from ciksim.models.allo import AlloScenario, allo_model

    m = allo_model()
    scen = AlloScenario.load(REFERENCE_SCENARIO)
    text = json.dumps({
        "parameters": [(p.name, p.value, p.low, p.high, p.variability) for p in m.parameters],
        "processes": [(p.name, p.rate, sorted(p.changes.items())) for p in m.processes],
        "assignments": [(a.name, a.expr) for a in m.assignments],
        "doses": [(d.name, sorted(d.adds.items()), sorted(d.scales.items()))
                  for d in m.doses],
        "scenario": [sorted(scen.parameters.items()), sorted(scen.variability.items()),
                     scen.engraftment_day, scen.relapse_threshold],
    }, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def allo_problem() -> Any:
    """The ``allo`` calibration problem for :func:`ciksim.evidence.calibrate`."""
    from ciksim.evidence.calibration import Problem

    return Problem("allo", load_allo_evidence, allo_dimensions, prepare, simulate_chunk,
                   allo_model_hash, term_shifts)

"""Simulating a study with its own design, for many parameter draws at once.

A study is prepared once (:func:`prepare`: scenario, products, schedules, follow-up and the
observed summaries with their standard errors). :func:`simulate_batch` then simulates every
arm of every study for a batch of parameter draws in one vectorised patient simulation per
arm: draw ``i`` has key ``keys[i]`` and its patients have their own random streams keyed by
(seed, key, study, arm, patient), so a draw's simulated study is the same whatever batch or
worker it is simulated in. :func:`summaries` applies the bias terms and gives the simulated
summaries, which :func:`distance` compares with the observed ones.

Control arms (no product) do not depend on the calibrated parameters: their patients are
simulated once per study and seed, a *pool* of :func:`pool_size` patients (its own key
space), and each draw's control arm is ``n`` patients drawn from the pool with replacement
by the draw's own stream. The pool's empirical outcome distribution stands in for the
control arm's (its error is under a third of the observed SE for pools of 16 x n or more),
which halves the cost of a simulated study set.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from scipy.special import expit, logit

from ciksim.errors import DataError
from ciksim.evidence.effect import model_parameters, persistence_uniforms
from ciksim.evidence.studies import CR_THRESHOLD, MRD_THRESHOLD, Evidence, Setting, Study

DAYS_PER_MONTH = 365.25 / 12
Z90 = 1.6448536269514722
_KEY_SHIFT = 20  # patients of one draw: study << 14 | arm << 13 | patient (< 8192)
MAX_ARM = 1 << 13
POOL_KEY = (1 << 42) - 1  # the key of control-arm pools (above every proposal's key)
POOL_MIN = 2048  # patients in a control-arm pool, at least; 16 x n for larger arms


@dataclass(frozen=True)
class PreparedArm:
    """An arm ready to simulate: schedule (None for controls), product, extra parameters."""

    name: str
    n: int
    schedule: Any  # CikSchedule | None
    product: Any  # analysis.killing.Product | None
    extra: Mapping[str, float]
    censor_months: np.ndarray | None = None


@dataclass(frozen=True)
class Observed:
    """One observed summary: its name, value and standard error (the distance's scale)."""

    name: str
    value: float
    se: float


@dataclass(frozen=True)
class PreparedStudy:
    study: Study
    scenario: Any  # models.patient.Scenario
    arms: tuple[PreparedArm, ...]
    years: float
    threshold: float
    observed: tuple[Observed, ...]
    landmarks: tuple[float, ...] = ()


@cache
def _culture_composition(protocol: str, days: float) -> tuple[float, float, float]:
    from ciksim.analysis.culture import run_culture
    from ciksim.analysis.killing import product_from_culture

    comp = product_from_culture(run_culture(protocol, donors=1, days=days)).median_composition()
    return comp["f_cik"], comp["f_t"], comp["f_nk"]


def _product(arm: Any) -> Any:
    from ciksim.analysis.killing import Product

    p = arm.product
    if p.composition is not None:
        cik, t, nk = p.composition.cik, p.composition.t, p.composition.nk
        name = "composition"
    else:
        cik, t, nk = _culture_composition(p.culture_protocol, p.days)
        name = p.culture_protocol
    return Product(name, np.array([cik]), np.array([t]), np.array([nk]))


def proportion(k: int, n: int) -> tuple[float, float]:
    """Observed proportion and its SE, both with a half-count ((k + 0.5) / (n + 1), as the
    simulated proportions) so that 0/n and n/n keep a finite log-odds and a scale."""
    pt = (k + 0.5) / (n + 1)
    return pt, math.sqrt(pt * (1 - pt) / n)


def _km_relapse(times: np.ndarray, relapsed: np.ndarray, at: Sequence[float]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier (lifelines) relapse probability at ``at`` months and Greenwood SEs."""
    from lifelines import KaplanMeierFitter

    km = KaplanMeierFitter().fit(times, relapsed.astype(int))
    surv = km.survival_function_at_times(list(at)).to_numpy()
    table = km.event_table
    se = []
    for t, s in zip(at, surv, strict=True):
        rows = table[table.index <= t]
        d, r = rows["observed"].to_numpy(float), rows["at_risk"].to_numpy(float)
        ok = (r - d) > 0
        var = float(np.sum(d[ok] / (r[ok] * (r[ok] - d[ok]))))
        se.append(max(s * math.sqrt(var), 0.5 / len(times)))
    return 1 - surv, np.array(se)


def prepare(evidence: Evidence) -> tuple[PreparedStudy, ...]:
    """Every used study ready to simulate, with its observed summaries."""
    from ciksim.analysis.patient import CikSchedule
    from ciksim.models.patient import Scenario, patient_model

    model_pars = patient_model().parameter_by_name
    out = []
    for study in evidence.used:
        scen = Scenario.load(study.population.scenario)
        if study.population.parameters:
            scen = dataclasses.replace(
                scen, parameters={**scen.parameters, **study.population.parameters})
        if study.population.start_burden is not None:
            scen = dataclasses.replace(
                scen, parameters={**scen.parameters,
                                  "start_burden": study.population.start_burden},
                variability={**scen.variability, "start_burden": 0.0})
        kind = study.endpoint.kind
        months = study.endpoint.at_months
        arms = []
        for arm in study.arms:
            if arm.n > MAX_ARM:
                raise DataError(f"study {study.id!r}: field arms.{arm.name}.n: at most "
                                f"{MAX_ARM} patients per arm can be simulated")
            schedule = product = None
            extra: dict[str, float] = {}
            if arm.product is not None:
                schedule = CikSchedule(arm.dose_per_kg, arm.infusions, arm.interval_days,
                                       arm.first_day)
                product = _product(arm)
                if arm.product.origin == "donor":
                    extra = {"hla_mm": 1.0, "hla_mm_norm": 0.0 if study.setting is
                             Setting.donor_after_allo_hsct else 1.0}
                    missing = [k for k in extra if k not in model_pars]
                    if missing:
                        raise DataError(f"study {study.id!r}: a donor product needs the "
                                        f"patient-model parameter(s) {missing}")
            censor = None if arm.times_months is None else np.array(arm.times_months)
            arms.append(PreparedArm(arm.name, arm.n, schedule, product, extra, censor))
        observed: list[Observed] = []
        landmarks: tuple[float, ...] = ()
        if kind == "hazard_ratio":
            lo, hi = study.endpoint.ci90
            observed.append(Observed(f"{study.id}/log_hr", math.log(study.endpoint.estimate),
                                     (math.log(hi) - math.log(lo)) / (2 * Z90)))
        elif kind == "survival":
            landmarks = study.endpoint.landmarks_months or tuple(
                float(q) for q in np.quantile(np.concatenate(
                    [a.times_months for a in study.arms]), [0.25, 0.5, 0.75]))
            for arm in study.arms:
                p, se = _km_relapse(np.array(arm.times_months), np.array(arm.relapsed),
                                    landmarks)
                for m, v, s in zip(landmarks, p, se, strict=True):
                    observed.append(Observed(f"{study.id}/{arm.name}/m{m:g}",
                                             (float(v) * arm.n + 0.5) / (arm.n + 1), float(s)))
            months = max(max(a.times_months) for a in study.arms)
        else:
            for arm in study.arms:
                v, se = proportion(arm.events, arm.n)
                observed.append(Observed(f"{study.id}/{arm.name}", v, se))
        threshold = 1.0 if kind in ("mrd_negative", "cr") else 0.05
        out.append(PreparedStudy(study, scen, tuple(arms), max(months, 1e-3) / 12,
                                 threshold, tuple(observed), landmarks))
    return tuple(out)


def _patient_indices(key: int, s: int, a: int, n: int) -> np.ndarray:
    return (int(key) << _KEY_SHIFT) + (s << 14) + (a << 13) + np.arange(n, dtype=np.int64)


def _arm_outcomes(ps: PreparedStudy, arm: PreparedArm, run: Any) -> dict[str, np.ndarray]:
    """Per patient: the endpoint flag, or (time in months, relapsed) for time endpoints."""
    r = run.result
    kind = ps.study.endpoint.kind
    if kind in ("mrd_negative", "cr"):
        model = r.model
        burden_name = model.the("leukemic_burden")
        t = np.full(r.final.shape[1], ps.years * 365.25)
        with np.errstate(divide="ignore", invalid="ignore"):
            burden = np.asarray(model.compiled.assignments(t, r.final, r.parameters)
                                [burden_name])
        limit = MRD_THRESHOLD if kind == "mrd_negative" else CR_THRESHOLD
        return {"flag": burden < limit}
    # The patient analysis decides what a relapse is (competing deaths in remission end a
    # patient's time at risk); its event column is 1/0 or relapse/death/censored labels.
    df = run.outcomes()
    event = df["event"].to_numpy()
    relapsed = event == "relapse" if event.dtype == object else event.astype(int) == 1
    return {"time": df["duration"].to_numpy(float), "relapsed": np.asarray(relapsed, bool)}


def pool_size(n: int) -> int:
    """Patients in the pool a control arm of ``n`` patients is drawn from."""
    return min(MAX_ARM, max(POOL_MIN, 16 * int(n)))


_POOLS: dict[tuple[str, int, int, int], dict[str, np.ndarray]] = {}


def _control_pool(ps: PreparedStudy, s: int, a: int, seed: int) -> dict[str, np.ndarray]:
    """Outcomes of a control arm's pool (cached per process; the same in every process)."""
    from ciksim.analysis.patient import run_patients

    arm = ps.arms[a]
    size = pool_size(arm.n)
    cache_key = (ps.study.model_dump_json(), s, a, int(seed))
    if cache_key not in _POOLS:
        if len(_POOLS) > 64:
            _POOLS.clear()
        run = run_patients(ps.scenario, replicates=size, years=ps.years, seed=int(seed),
                           relapse=ps.threshold, parameters=dict(arm.extra) or None,
                           indices=_patient_indices(POOL_KEY, s, a, size))
        _POOLS[cache_key] = _arm_outcomes(ps, arm, run)
    return _POOLS[cache_key]


def simulate_batch(prepared: Sequence[PreparedStudy], thetas: Sequence[Mapping[str, float]],
                   keys: Sequence[int], seed: int) -> list[dict[str, Any]]:
    """Simulate every study for each draw ``thetas[i]`` (natural scale) with key
    ``keys[i]``: one list entry per draw, ``{study id: {arm: outcomes}}``."""
    from ciksim.analysis.patient import run_patients

    if len(thetas) != len(keys):
        raise DataError("thetas and keys must have the same length")
    out: list[dict[str, Any]] = [{} for _ in thetas]
    if not thetas:
        return out
    for s, ps in enumerate(prepared):
        for a, arm in enumerate(ps.arms):
            if arm.schedule is None:
                pool = _control_pool(ps, s, a, seed)
                size = next(iter(pool.values())).shape[0]
                for i, key in enumerate(keys):
                    rng = np.random.default_rng(
                        np.random.SeedSequence([int(seed), int(key), s, a]))
                    pick = rng.integers(0, size, arm.n)
                    part = {k: v[pick] for k, v in pool.items()}
                    out[i].setdefault(ps.study.id, {})[arm.name] = _censor(arm, part)
                continue
            idx, pars = [], []
            for theta, key in zip(thetas, keys, strict=True):
                rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(key), s, a]))
                idx.append(_patient_indices(key, s, a, arm.n))
                pars.append(model_parameters(theta, persistence_uniforms(rng, arm.n)))
            merged = {k: np.concatenate([p[k] for p in pars]) for k in pars[0]}
            merged.update(arm.extra)
            run = run_patients(ps.scenario, cik=arm.schedule, product=arm.product,
                               replicates=len(thetas) * arm.n, years=ps.years, seed=int(seed),
                               relapse=ps.threshold, parameters=merged,
                               indices=np.concatenate(idx))
            res = _arm_outcomes(ps, arm, run)
            for i in range(len(thetas)):
                part = {k: v[i * arm.n:(i + 1) * arm.n] for k, v in res.items()}
                out[i].setdefault(ps.study.id, {})[arm.name] = _censor(arm, part)
    return out


def _censor(arm: PreparedArm, part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A cohort arm's simulated patients censored at their real counterparts' follow-up."""
    if arm.censor_months is not None:
        cens = arm.censor_months
        part["relapsed"] = part["relapsed"] & (part["time"] <= cens)
        part["time"] = np.minimum(part["time"], cens)
    return part


def shift_count(k: float, n: float, delta: float) -> float:
    """A simulated proportion of ``k`` in ``n`` (half-count, as observed ones: ``(k + 0.5) /
    (n + 1)``) moved by ``delta`` on the log-odds scale."""
    return float(expit(logit((k + 0.5) / (n + 1)) + delta))


def _shift(p: float, n: int, delta: float) -> float:
    """A simulated proportion ``p`` of ``n`` moved by ``delta`` (:func:`shift_count`)."""
    return shift_count(p * n, n, delta)


def summaries(prepared: Sequence[PreparedStudy], raw: Mapping[str, Any],
              theta: Mapping[str, float]) -> dict[str, float]:
    """Simulated summaries of one draw (``raw`` from :func:`simulate_batch`), with the
    draw's bias and offset terms applied; keys match :func:`observed`."""
    out: dict[str, float] = {}
    for ps in prepared:
        sid = ps.study.id
        arms = raw[sid]
        bias = float(theta.get(f"bias:{sid}", 0.0))
        offset = float(theta.get(f"offset:{sid}", 0.0))
        kind = ps.study.endpoint.kind
        if kind == "hazard_ratio":
            rates = []
            for arm in ps.arms:
                o = arms[arm.name]
                rates.append((o["relapsed"].sum() + 0.5) / max(o["time"].sum(), 1e-9))
            out[f"{sid}/log_hr"] = float(math.log(rates[0] / rates[1]) + bias)
            continue
        for j, arm in enumerate(ps.arms):
            delta = offset + (bias if j == 0 else 0.0)
            o = arms[arm.name]
            if kind == "survival":
                p, _ = _km_relapse(o["time"], o["relapsed"], ps.landmarks)
                for m, v in zip(ps.landmarks, p, strict=True):
                    out[f"{sid}/{arm.name}/m{m:g}"] = _shift(float(v), arm.n, delta)
            elif kind == "relapse":
                hit = o["relapsed"] & (o["time"] <= ps.study.endpoint.at_months + 1e-9)
                out[f"{sid}/{arm.name}"] = _shift(float(hit.mean()), arm.n, delta)
            else:
                out[f"{sid}/{arm.name}"] = _shift(float(o["flag"].mean()), arm.n, delta)
    return out


def term_shifts(prepared: Sequence[PreparedStudy]
                ) -> tuple[list[str], dict[str, list[str]], list[bool]]:
    """How :func:`summaries` applies the study terms: the observed summaries in order,
    the terms shifting each (``bias:<id>`` on the first arm or the log HR, ``offset:<id>``
    on every arm), and whether each is shifted on the log-odds scale (else additively)."""
    names: list[str] = []
    shifts: dict[str, list[str]] = {}
    logodds: list[bool] = []
    for ps in prepared:
        sid = ps.study.id
        first = ps.study.arms[0].name
        for o in ps.observed:
            names.append(o.name)
            if ps.study.endpoint.kind == "hazard_ratio":
                shifts[o.name] = [f"bias:{sid}"]
                logodds.append(False)
                continue
            arm = o.name.split("/")[1]
            shifts[o.name] = [f"offset:{sid}"] + ([f"bias:{sid}"] if arm == first else [])
            logodds.append(True)
    return names, shifts, logodds


def observed(prepared: Sequence[PreparedStudy]) -> dict[str, Observed]:
    return {o.name: o for ps in prepared for o in ps.observed}


def distance(sim: Mapping[str, float], obs: Mapping[str, Observed]) -> float:
    """Root of the sum of squared standardised differences over all observed summaries;
    infinite (never accepted) when a simulated summary is NaN, a summary the simulated
    study does not have (e.g. an arm without eligible patients)."""
    d = math.sqrt(sum(((sim[k] - o.value) / o.se) ** 2 for k, o in obs.items()))
    return math.inf if math.isnan(d) else d

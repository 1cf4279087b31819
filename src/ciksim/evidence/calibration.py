"""Calibration of a model against clinical evidence: ABC-SMC with pyabc.

:func:`calibrate` takes validated inputs and returns a :class:`CalibrationResult`. What it
fits is a :class:`Problem`: ``patient`` (the in vivo CIK effect, the default) or ``allo``
(alloreactivity parameters of the post-transplant model, :mod:`ciksim.evidence.allo`). It keeps
its run in the folder ``out``: ``calibration.db`` (pyabc's SQLite history: inspect it with
pyabc, or resume with ``resume=True``), ``run.json`` (what a resume must match) and
``posterior.parquet`` (written atomically at the end). The application layer
(:mod:`ciksim.jobs.calibration`) adds the tables, figures and report. Same seed, same
posterior for any ``workers`` or scheduler.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyabc
from pyabc.weighted_statistics import effective_sample_size
from pydantic import BaseModel

from ciksim.errors import DataError
from ciksim.evidence.effect import (
    DEFAULT_EFFECTS,
    Dimension,
    dimensions,
    proposal_to_natural,
    sampling_name,
)
from ciksim.evidence.marginal import MarginalAcceptor, TermModel, kept_terms, term_model
from ciksim.evidence.posterior import Posterior
from ciksim.evidence.sampler import BatchModel, ChunkRunner, OrderedBatchSampler
from ciksim.evidence.simulate import (
    Observed,
    PreparedStudy,
    distance,
    observed,
    prepare,
    simulate_batch,
    summaries,
    term_shifts,
)
from ciksim.evidence.studies import Evidence, load_evidence

PPC_GENERATION = 100_000  # key space of posterior-predictive simulations
#: A generation accepting fewer than this share of its proposals ends the run (the last
#: complete generation is the posterior; the manifest says the target was not reached).
MIN_ACCEPTANCE = 0.01


def default_epsilon(n_summaries: int) -> float:
    """The default final tolerance: sqrt(k) for k observed summaries, a root-mean-square
    standardised difference of one observed SE per summary.

    The simulated study has the observed study's size, so its own sampling noise is already
    that of the data (variance one per standardised summary); the uniform acceptance ball of
    radius eps adds a variance of eps^2 / (k + 2) per summary, here k / (k + 2) < 1. The
    posterior is therefore at most about sqrt(2) wider than the exact one, whatever the
    study sizes: as studies grow, their SEs shrink and the posterior with them.
    """
    return math.sqrt(n_summaries)


def git_commit(where: str | Path | None = None) -> str | None:
    """The commit of the git checkout at ``where`` (default: the one this code runs from),
    with ``+dirty`` when tracked files other than shipped posteriors have uncommitted
    changes; None outside a git checkout or without git."""
    here = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    changed = [line for line in dirty.stdout.splitlines() if "/data/posterior/" not in line]
    return head.stdout.strip() + ("+dirty" if dirty.returncode == 0 and changed else "")


def simulate_chunk(payload: tuple[tuple[PreparedStudy, ...], list[Dimension], int],
                   thetas: Sequence[Mapping[str, float]], keys: Sequence[int]
                   ) -> list[dict[str, float]]:
    """Summaries of proposals on the sampling scale (a worker's unit of work)."""
    prepared, dims, seed = payload
    natural = [proposal_to_natural(dims, th) for th in thetas]
    raw = simulate_batch(prepared, natural, keys, seed)
    return [summaries(prepared, r, th) for r, th in zip(raw, natural, strict=True)]


def evidence_hash(evidence: BaseModel) -> str:
    text = json.dumps(evidence.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_hash() -> str:
    """Fingerprint of the patient model (parameters, processes with their changes,
    assignments, doses with what they add and scale): a posterior made on another model
    version must be regenerated."""
    from ciksim.models.patient import patient_model

    m = patient_model()
    text = json.dumps({
        "parameters": [(p.name, p.value, p.low, p.high, p.variability) for p in m.parameters],
        "processes": [(p.name, p.rate, sorted(p.changes.items())) for p in m.processes],
        "assignments": [(a.name, a.expr) for a in m.assignments],
        "doses": [(d.name, sorted(d.adds.items()), sorted(d.scales.items()))
                  for d in m.doses],
    }, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Problem:
    """What a calibration fits: how its evidence is loaded, its coordinates (``names``
    None: the defaults) with their priors, how its studies are prepared, and the worker
    function that simulates proposals (``simulate(payload, thetas, keys)`` with payload
    ``(prepared, dimensions, seed)``; module-level, so processes and Dask can run it)."""

    name: str
    load: Callable[[str | Path | None], Any]
    dimensions: Callable[[Any, Sequence[str] | None, Mapping[str, tuple[float, float]] | None],
                         list[Dimension]]
    prepare: Callable[[Any], tuple[Any, ...]]
    simulate: Callable[..., list[dict[str, float]]]
    model_hash: Callable[[], str]
    #: How the study terms shift the summaries (``prepared -> (summaries, shifts,
    #: logodds)``, :func:`ciksim.evidence.marginal.term_model`): the terms are integrated
    #: out of the acceptance, never sampled by pyabc.
    terms: Callable[[Any], tuple[list[str], dict[str, list[str]], list[bool]]]


def _patient_dimensions(ev: Evidence, names: Sequence[str] | None,
                        priors: Mapping[str, tuple[float, float]] | None) -> list[Dimension]:
    return dimensions(ev, DEFAULT_EFFECTS if names is None else names, priors)


def problem(name: str) -> Problem:
    """The calibration problem ``patient`` or ``allo``."""
    if name == "patient":
        return Problem("patient", load_evidence, _patient_dimensions, prepare, simulate_chunk,
                       model_hash, term_shifts)
    if name == "allo":
        from ciksim.evidence.allo import allo_problem

        return allo_problem()
    raise DataError(f"model: no calibration for {name!r}; use patient or allo")


@dataclass(frozen=True)
class CalibrationResult:
    """A finished calibration: its posterior and where its files are."""

    posterior: Posterior
    out: Path
    evaluations: int
    generations: int

    def as_json(self) -> dict[str, Any]:
        """Each parameter's median and 90% interval, and each study's check."""
        s = self.posterior.summary()
        return {
            "out": str(self.out),
            "evidence_version": self.posterior.manifest.get("evidence_version"),
            "generations": self.generations, "evaluations": self.evaluations,
            "parameters": s.to_dict("records"),
            "checks": self.posterior.ppc.to_dict("records"),
        }


def _ppc(prepared: tuple[PreparedStudy, ...], dims: list[Dimension], posterior: Posterior,
         runner: ChunkRunner, draws: int, seed: int, terms: TermModel | None = None
         ) -> list[dict[str, Any]]:
    df = posterior.sample(draws, seed)
    thetas = [{sampling_name(j): float(d.to_sampling(r[d.name])) for j, d in enumerate(dims)}
              for r in df.to_dict("records")]
    keys = [((PPC_GENERATION + 2) << 22) + i for i in range(draws)]
    sims = runner(thetas, keys)
    if terms is not None:  # the simulated summaries without the study terms: shift them
        b = df[list(terms.names)].to_numpy(float)
        raw = np.array([[s[k] for k in terms.summaries] for s in sims])
        sims = [dict(zip(terms.summaries, terms.shifted(r, bi[None, :])[0], strict=True))
                for r, bi in zip(raw, b, strict=True)]
    return [_check(o, np.array([s[name] for s in sims], float))
            for name, o in observed(prepared).items()]


def _check(o: Observed, values: np.ndarray) -> dict[str, Any]:
    """One study's predictive check: the observed summary against the 90% interval of its
    simulated values. NaN values (a simulated study without that summary, e.g. an arm
    without eligible patients) are left out; with none left, the interval is NaN and the
    check fails (``covered`` false)."""
    v = values[~np.isnan(values)]
    q05, q50, q95 = np.quantile(v, [0.05, 0.5, 0.95]) if v.size else (math.nan,) * 3
    return {"summary": o.name, "observed": o.value, "se": o.se, "q05": float(q05),
            "median": float(q50), "q95": float(q95), "covered": bool(q05 <= o.value <= q95)}


def calibrate(
    evidence: Evidence | str | Path | None = None,
    *,
    out: str | Path,
    particles: int = 200,
    generations: int = 12,
    min_epsilon: float | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    seed: int = 0,
    resume: bool = False,
    effects: Sequence[str] | None = None,
    priors: Mapping[str, tuple[float, float]] | None = None,
    ppc_draws: int = 100,
    progress: Callable[[str], None] | None = None,
    model: str = "patient",
) -> CalibrationResult:
    """Calibrate the parameters of ``model`` (``patient``: the in vivo effect; ``allo``:
    alloreactivity) and the bias terms to ``evidence`` (None: the model's shipped
    evidence) by ABC-SMC. ``effects`` names the calibrated parameters (None: the model's
    defaults).

    ``particles`` per generation. Each generation's tolerance is the median distance of
    the last one, but never below ``min_epsilon`` (default :func:`default_epsilon`, sqrt of
    the number of observed summaries; the distance is the root sum of squared standardised
    differences between simulated and observed summaries); the run stops after the first
    generation at that tolerance, after ``generations`` generations (a maximum), or when a
    generation accepts under :data:`MIN_ACCEPTANCE` of its proposals. The manifest says
    whether the tolerance was reached (``converged``).

    pyabc samples only the effect parameters: the study bias/offset terms are integrated
    out of the acceptance (:mod:`ciksim.evidence.marginal`; evidence without such terms
    gets the plain acceptance, manifest ``terms``: ``none``). The generations at the final
    tolerance are pooled and the run stops once the pool's effective sample size reaches
    :data:`MIN_ESS_SHARE` x ``particles`` (manifest: ``ess``, ``pooled_generations``).
    ``resume`` continues the run in ``out/calibration.db`` (same evidence, seed and
    settings) up to ``generations``.
    """
    for name, value, low in (("particles", particles, 2), ("generations", generations, 1),
                             ("ppc-draws", ppc_draws, 10), ("workers", workers, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DataError(f"{name}: need a whole number >= {low}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed: need a whole number >= 0, got {seed!r}")
    if min_epsilon is not None and not (math.isfinite(min_epsilon) and min_epsilon >= 0):
        raise DataError(f"min-epsilon: need a distance >= 0, got {min_epsilon!r}")
    prob = problem(model)
    ev = prob.load(evidence) if evidence is None or isinstance(evidence, (str, Path)) \
        else evidence
    dims = prob.dimensions(ev, effects, priors)
    prepared = prob.prepare(ev)
    obs = observed(prepared)
    folder = Path(out)
    db = folder / "calibration.db"
    run_file = folder / "run.json"
    settings = {"evidence_version": ev.version, "evidence_hash": evidence_hash(ev),
                "seed": int(seed), "particles": int(particles),
                "dimensions": [d.as_dict() for d in dims]}
    if resume:
        if not db.is_file() or not run_file.is_file():
            raise DataError(f"resume: no calibration in {str(folder)!r} (calibration.db and "
                            "run.json); drop --resume to start one")
        stored = json.loads(run_file.read_text(encoding="utf-8"))
        if stored != settings:
            diff = [k for k in settings if stored.get(k) != settings[k]]
            raise DataError(f"resume: {', '.join(diff)} differ from the run in {folder}; "
                            "resume with the same evidence, seed and particles, or use a "
                            "new --out")
    elif db.exists():
        raise DataError(f"out: {str(db)!r} already holds a calibration; use --resume to "
                        "continue it or a new --out folder")
    commit = git_commit()  # the code this run starts with
    folder.mkdir(parents=True, exist_ok=True)
    if not resume:
        run_file.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")

    target = default_epsilon(len(obs)) if min_epsilon is None else float(min_epsilon)
    terms = term_model(dims, *prob.terms(prepared), obs)
    fitted = [d for d in dims if d.kind == "effect"]
    prior = pyabc.Distribution(**{sampling_name(j): pyabc.RV(*_rv_args(d))
                                  for j, d in enumerate(fitted)})
    payload = (prepared, fitted, int(seed))
    runner = ChunkRunner(prob.simulate, payload, workers=workers, scheduler=scheduler)
    try:
        batch_model = BatchModel(prob.name)
        sampler = OrderedBatchSampler(batch_model, runner, seed, workers=runner.workers,
                                      progress=progress)
        sampler.show_progress = False
        observed_values = {k: o.value for k, o in obs.items()}
        np.random.seed(int(seed) % 2**32)

        def abc_factory() -> pyabc.ABCSMC:
            if terms is None:  # evidence without bias/offset terms: plain ABC acceptance
                return pyabc.ABCSMC(batch_model, prior, lambda x, y: distance(x, obs),
                                    population_size=int(particles), sampler=sampler,
                                    eps=FloorEpsilon(target))
            return pyabc.ABCSMC(batch_model, prior, _TermDistance(terms, target),
                                population_size=int(particles), sampler=sampler,
                                eps=FloorEpsilon(target), acceptor=MarginalAcceptor(terms))
        abc = abc_factory()
        if resume:
            history = abc.load(f"sqlite:///{db}", 1)
            done = history.max_t + 1
        else:
            history = abc.new(f"sqlite:///{db}", observed_values)
            done = 0
        history = _run_pooled(abc, abc_factory, db, history, target, int(generations) - done,
                              int(particles))
        pooled = _final(history, target) or [int(history.max_t)]
        natural, weights = _with_terms(history, pooled, fitted, terms)
        pops = history.get_all_populations()
        manifest = {
            **settings,
            "package_version": _version(), "pyabc_version": pyabc.__version__,
            "model": prob.name, "model_hash": prob.model_hash(),
            "generations": int(history.max_t + 1),
            "epsilons": [float(e) for e in pops["epsilon"].iloc[1:]],
            "epsilon_target": target,
            "converged": bool(float(pops["epsilon"].iloc[-1]) <= target),
            "terms": "marginalised" if terms is not None else "none",
            "ess": _ess(np.asarray(weights, float)),
            "pooled_generations": pooled,
            "git_commit": commit,
            "evaluations": int(history.total_nr_simulations),
            "studies": [ps.study.id for ps in prepared],
            "observed": [{"summary": o.name, "value": o.value, "se": o.se}
                         for o in obs.values()],
        }
        posterior = Posterior(natural, np.asarray(weights, float), manifest)
        if progress:
            progress(f"posterior-predictive check: {ppc_draws} simulated study sets")
        manifest["ppc"] = _ppc(prepared, fitted, posterior, runner, ppc_draws, seed, terms)
        posterior = Posterior(natural, posterior.weights, manifest)
    finally:
        runner.close()
    posterior.save(folder / "posterior.parquet")
    return CalibrationResult(posterior, folder, manifest["evaluations"],
                             manifest["generations"])


#: With the study terms marginalised, the generations at the final tolerance are pooled
#: (each weighted by its effective sample size) and the run goes on until the pool's
#: effective sample size is at least this multiple of the particles per generation.
MIN_ESS_SHARE = 1.0


class _TermDistance(pyabc.distance.Distance):
    """A particle's distance with the study terms kept with it (MarginalAcceptor), or at
    the terms' proposal mean when none are kept (pyabc's calibration sample)."""

    def __init__(self, terms: TermModel, eps: float) -> None:
        super().__init__()
        self.terms = terms
        self.eps = float(eps)

    def __call__(self, x: dict, x_0: dict | None = None, t: int | None = None,
                 par: dict | None = None) -> float:
        m = self.terms
        raw = np.array([x[s] for s in m.summaries], float)
        if "term:" + m.names[0] in x:
            b = np.array([x["term:" + n] for n in m.names], float)
            return float(m.distances(raw, b[None, :])[0])
        return m.best(raw, self.eps)


def _final(history: pyabc.History, target: float) -> list[int]:
    """The generations run at the final tolerance (pooled into the posterior)."""
    pops = history.get_all_populations()
    return [int(t) for t, e in zip(pops["t"], pops["epsilon"], strict=True)
            if t >= 0 and float(e) <= target]


def _ess(w: np.ndarray) -> float:
    """Effective sample size of importance weights (Kish: pyabc's)."""
    return float(effective_sample_size(np.asarray(w, float)))


def _pool_ess(history: pyabc.History, ts: Sequence[int], known: dict[int, float]) -> float:
    """Effective sample size of generations ``ts`` pooled with weights ESS_t; ``known``
    holds the ESS of generations already read (a stored generation does not change), so
    each generation is read from the database once."""
    for t in ts:
        if t not in known:
            known[t] = _ess(history.get_distribution(m=0, t=t)[1])
    return float(sum(known[t] for t in ts))


def _run_pooled(abc: pyabc.ABCSMC, factory: Callable[[], pyabc.ABCSMC], db: Path,
                history: pyabc.History, target: float, remaining: int, particles: int
                ) -> pyabc.History:
    """One generation at a time (each from a fresh ABCSMC loaded from the database, so
    a resumed run takes the same steps) until the generations at the final tolerance
    pool to an effective sample size of MIN_ESS_SHARE x ``particles``, ``remaining``
    generations have run, or a generation accepts under MIN_ACCEPTANCE of its proposals."""
    known: dict[int, float] = {}

    def done(h: pyabc.History) -> bool:
        if h.max_t < 0:
            return False
        last = h.get_all_populations().iloc[-1]
        return (_pool_ess(h, _final(h, target), known) >= MIN_ESS_SHARE * particles
                or particles / float(last["samples"]) < MIN_ACCEPTANCE)
    first = history.max_t < 0
    while remaining > 0 and not done(history):
        if not first:
            abc = factory()
            abc.load(f"sqlite:///{db}", 1)
        first = False
        history = abc.run(minimum_epsilon=0.0, max_nr_populations=1)
        remaining -= 1
    return history


def _with_terms(history: pyabc.History, ts: Sequence[int], fitted: list[Dimension],
                terms: TermModel | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Effect parameters and kept study terms (None: the evidence has none) of generations
    ``ts``, pooled: each generation's normalised weights times its effective sample
    size."""
    rows: list[Any] = []
    weights: list[np.ndarray] = []
    for t in ts:
        particles = list(history.get_population(t).particles)
        w = np.array([p.weight for p in particles], float)
        weights.append(w / w.sum() * _ess(w))
        rows += particles
    natural = pd.DataFrame({d.name: d.to_natural(np.array(
        [p.parameter[sampling_name(j)] for p in rows], float)) for j, d in enumerate(fitted)})
    if terms is not None:
        for name, values in kept_terms([p.sum_stat for p in rows], terms.names).items():
            natural[name] = values
    return natural, np.concatenate(weights)


class FloorEpsilon(pyabc.epsilon.QuantileEpsilon):
    """pyabc's median tolerance schedule, never below ``floor`` (so the last generation's
    tolerance is the target itself, whatever the study sizes)."""

    def __init__(self, floor: float) -> None:
        super().__init__(alpha=0.5)
        self.floor = float(floor)

    def _update(self, t: int, weighted_distances: pd.DataFrame) -> None:
        super()._update(t, weighted_distances)
        self._look_up[t] = max(self._look_up[t], self.floor)


def _rv_args(d: Dimension) -> tuple[str, float, float]:
    if d.prior == "normal":
        return ("norm", d.a, d.b)
    return ("uniform", d.a, d.b - d.a)


def _version() -> str:
    from ciksim import __version__

    return __version__

"""Engine speed, measured side by side in one run (ratios stay fair on a loaded machine).

Everything runs in this process on one thread (numba and BLAS), so CPU seconds compare the
work itself; the machine's load average is printed before and after.

1. Stochastic trial throughput: the same trial (2 arms, aml-cr1, chemo and chemo + CIK,
   2 years) with the compiled engine and with the numpy reference engine, in alternating
   pairs; patient-days per CPU-second and the ratio (goal >= 4x), outcomes checked equal.
2. Arithmetic floor: for every step the engine takes, 8 evaluations of the deterministic
   right-hand side, one of the rates and one of the watched quantities, and one exact
   Kendall draw per stochastic species at 10^6 cells, each timed alone in a compiled loop;
   the engine's throughput as a share of the floor's.
3. Deterministic cohort: the compiled ODE engine vs a libroadrunner per-patient loop on the
   exported SBML (patient model, aml-cr1 + CIK, 2 years; roadrunner timed on a sample and
   scaled). Goal >= 15x. In alternating pairs with ciksim, CPU seconds.
4. The same cohort with diffrax (jax, CPU, float64): Dopri5 under ``jit(vmap)`` over the
   patients, the same tolerances (each species scaled by ciksim's absolute-tolerance
   scale), the protocol's events applied between segments; its compilation is reported
   apart. Skipped with a note where jax/diffrax are not installed (the ``bench`` extra).
5. Exact stochastic cure vs GillesPy2's SSA (``reference_tools.cure``), where GillesPy2 is
   installed (``pip install -e '.[bench]'``); skipped with a note otherwise.

Run: ``python benchmarks/engines.py`` (a few minutes; diffrax compiles for a minute or
more). PATIENTS (per arm, default 1000), PAIRS (default 3), COHORT (default 2000) and
RR_SAMPLE (default 100) resize it; ONLY_COHORT=1 runs parts 3 and 4 alone.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # before numba loads: CPU time = the work

import importlib.util
import platform
import time
from dataclasses import dataclass

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from ciksim.analysis.patient import CikSchedule, patient_protocol, run_patients
from ciksim.engines import SolverSettings, fused, simulate
from ciksim.engines._random import kendall_step, seed_states
from ciksim.engines.ode import _atol_scale
from ciksim.engines.result import Result
from ciksim.engines.stochastic import stochastic_structure
from ciksim.model import Model
from ciksim.model.model import parameter_matrix
from ciksim.model.variability import sample_parameters
from ciksim.models.patient import STOCHASTIC, Scenario, patient_model
from ciksim.protocol import Protocol
from ciksim.trial.runner import run_trial
from ciksim.trial.spec import TrialSpec

PATIENTS = int(os.environ.get("PATIENTS", "1000"))
PAIRS = int(os.environ.get("PAIRS", "3"))
COHORT = int(os.environ.get("COHORT", "2000"))
RR_SAMPLE = int(os.environ.get("RR_SAMPLE", "100"))
YEARS = 2.0
COMPOSITION = {"f_cik": 0.49, "f_t": 0.47, "f_nk": 0.035}


def cpu(fn, *args, **kwargs) -> tuple[float, object]:
    """CPU seconds (all threads of this process) of one call, and its result."""
    c = time.process_time()
    out = fn(*args, **kwargs)
    return time.process_time() - c, out


def trial_throughput() -> float:
    spec = TrialSpec.from_dict({
        "name": "bench", "seed": 1, "patients_per_arm": PATIENTS, "follow_up_years": YEARS,
        "chunk_size": PATIENTS, "population": {"scenario": "aml-cr1"},
        "arms": [{"name": "chemo"}, {"name": "cik", "cik": {"dose_per_kg": 5e7}}],
    })
    small = TrialSpec.from_dict({**spec.raw, "patients_per_arm": 4, "chunk_size": 4})
    for engine in ("compiled", "reference"):
        run_trial(small, workers=1, composition=COMPOSITION, engine=engine)  # warm caches
    ratios, times = [], {"compiled": [], "reference": []}
    for _ in range(PAIRS):
        t_new, new = cpu(run_trial, spec, workers=1, composition=COMPOSITION)
        t_old, old = cpu(run_trial, spec, workers=1, composition=COMPOSITION,
                         engine="reference")
        same = new.patients.drop(columns="status").equals(old.patients.drop(columns="status"))
        times["compiled"].append(t_new)
        times["reference"].append(t_old)
        ratios.append(t_old / t_new)
    days = 2 * PATIENTS * YEARS * 365.25
    new_rate = days / float(np.median(times["compiled"]))
    print(f"[1] stochastic trial: 2 arms x {PATIENTS:,} patients x {YEARS:g} years, one "
          f"thread, {PAIRS} alternating pairs")
    for engine, ts in times.items():
        print(f"    {engine:9s} engine: {np.median(ts):6.2f} CPU s (median), "
              f"{days / np.median(ts):12,.0f} patient-days per CPU-second")
    print(f"    ratio, median of pairs (goal >= 4x): {np.median(ratios):5.2f}x "
          f"(pairs {', '.join(f'{r:.2f}' for r in ratios)}); outcomes identical: {same}")
    return new_rate


def steps_taken(result, last_event: float) -> int:
    """Grid steps the engine simulated, from each patient's stopping rule."""
    grid = result.grid
    stop = np.full(result.indices.size, grid[-1])
    crossed = ~np.isnan(result.crossing_time)
    stop[crossed] = result.crossing_time[crossed]
    extinct = ~np.isnan(result.extinction_time) & ~crossed
    stop[extinct] = np.maximum(result.extinction_time[extinct], last_event)
    return int(np.minimum(np.searchsorted(grid, stop - 1e-9), grid.size - 1).sum())


def arithmetic_floor(trial_rate: float) -> None:
    model = patient_model()
    scen = Scenario.load("aml-cr1")
    n = 2000
    run = run_patients(scen, cik=CikSchedule(), product=_product(), replicates=n,
                       years=YEARS, seed=2)
    last = max(e.day for e in patient_protocol(scen, CikSchedule()).events) + 40.0
    steps = steps_taken(run.result, last)
    mod = fused.fused_module(model, stochastic_structure(model, STOCHASTIC),
                             "blast_fraction", "normal_fraction")
    p = np.ascontiguousarray(run.result.parameters[:, 0])
    q = np.empty(mod.NQ)
    mod._pre(p, q)
    y = np.ascontiguousarray(run.result.final[:, 0])
    per_step = _split_cost(mod, y, p, q, seed_states(1, np.arange(1))[0], 200_000)
    floor_rate = n * YEARS * 365.25 / (steps * per_step)
    print(f"[2] arithmetic floor: {steps / n:.0f} steps per patient on average, "
          f"{per_step * 1e9:.0f} ns of irreducible work per step")
    print(f"    floor: {floor_rate:12,.0f} patient-days per CPU-second; the compiled trial "
          f"reaches {trial_rate:,.0f} ({trial_rate / floor_rate:.0%} of the floor)")


def _split_cost(mod, y, p, q, s, reps: int) -> float:
    """ns-level costs of the parts of a step, each timed alone, combined per step."""
    @njit
    def rhs_only(rhs, y, p, q, reps):  # pragma: no cover - numba
        dy = np.zeros(y.size)
        acc = 0.0
        for _i in range(reps):
            rhs(0.0, y, p, q, dy)
            acc += dy[2]
        return acc

    @njit
    def rates_watch(rates, watch, y, p, q, reps):  # pragma: no cover - numba
        r = np.empty(64)
        acc = 0.0
        for _i in range(reps):
            rates(0.0, y, p, q, r)
            w, m = watch(0.0, y, p, q)
            acc += r[0] + w + m
        return acc

    @njit
    def kendall_only(reps, s):  # pragma: no cover - numba
        acc = 0.0
        for _i in range(reps):
            acc += kendall_step(1e6, 0.05, 0.03, 1.0, s)
        return acc

    rhs_only(mod._rhs_det, y, p, q, 2)
    rates_watch(mod._rates, mod._watch, y, p, q, 2)
    kendall_only(2, s)
    t_rhs, _ = cpu(rhs_only, mod._rhs_det, y, p, q, reps)
    t_rw, _ = cpu(rates_watch, mod._rates, mod._watch, y, p, q, reps)
    t_k, _ = cpu(kendall_only, reps, s)
    return (8 * t_rhs + t_rw + len(STOCHASTIC) * t_k) / reps


def _product():
    from ciksim.analysis.killing import Product

    return Product("bench product", COMPOSITION["f_cik"], COMPOSITION["f_t"],
                   COMPOSITION["f_nk"])


@dataclass
class Cohort:
    """The deterministic cohort the reference tools solve too, and ciksim's solution."""

    model: Model
    proto: Protocol
    draws: dict[str, np.ndarray]
    times: np.ndarray
    settings: SolverSettings
    ours: Result

    def run_ours(self) -> float:
        """CPU seconds of ciksim's compiled engine on the whole cohort."""
        return cpu(simulate, self.model, self.proto, 730.0, times=self.times,
                   parameters=self.draws, settings=self.settings)[0]


def cohort() -> Cohort:
    model = patient_model()
    scen = Scenario.load("aml-cr1")
    proto = patient_protocol(scen, CikSchedule())
    draws = sample_parameters(model, COHORT, 1, medians=scen.parameters,
                              variability=scen.variability)
    # parameters that only enter rate laws (the exported SBML computes initial amounts and
    # dose events from the exported values)
    fixed = {sym for key in [f"init:{sp}" for sp in model.species_names] for sym in
             model.expression(key).symbols}
    fixed |= {sym for d in model.doses for kind, mapping in (("adds", d.adds),
                                                             ("scales", d.scales))
              for sp in mapping for sym in model.expression(f"dose:{d.name}:{kind}:{sp}").symbols}
    draws = {k: v for k, v in draws.items() if k not in fixed}
    times = np.arange(0.0, 731.0, 30.0)
    settings = SolverSettings(method="compiled", rtol=1e-6)
    simulate(model, proto, 730.0, times=times, parameters={k: v[:4] for k, v in draws.items()},
             settings=settings)
    ours = simulate(model, proto, 730.0, times=times, parameters=draws, settings=settings)
    print(f"[3] deterministic cohort, patient model (aml-cr1 + CIK), {COHORT:,} x 2 years, "
          f"rtol 1e-6, one thread, {PAIRS} alternating pairs per tool")
    print(f"    varied per patient: {', '.join(draws)}")
    return Cohort(model, proto, draws, times, settings, ours)


def _pairs(label: str, c: Cohort, theirs, goal: str) -> None:
    """Alternate ciksim and a tool ``PAIRS`` times; print CPU seconds and the ratios."""
    ours_t, theirs_t = [], []
    for _ in range(PAIRS):
        ours_t.append(c.run_ours())
        theirs_t.append(theirs())
    ratios = np.array(theirs_t) / np.array(ours_t)
    print(f"    ciksim compiled per-patient: {np.median(ours_t):7.3f} CPU s (median; "
          f"{min(ours_t):.3f}-{max(ours_t):.3f})")
    print(f"    {label}: {np.median(theirs_t):7.3f} CPU s (median; {min(theirs_t):.3f}-"
          f"{max(theirs_t):.3f})")
    print(f"    ratio{goal}: {np.median(ratios):6.1f}x median of pairs (min "
          f"{ratios.min():.1f}, max {ratios.max():.1f})")


def roadrunner_cohort(c: Cohort) -> None:
    if importlib.util.find_spec("roadrunner") is None:
        print("    libroadrunner: skipped (not installed; pip install -e '.[bench]')")
        return
    import roadrunner

    from ciksim.engines.sbml import to_sbml

    rr = roadrunner.RoadRunner(to_sbml(c.model, c.proto))
    rr.integrator.relative_tolerance = 1e-6
    rr.timeCourseSelections = ["time", "N"]
    worst = [0.0]

    def loop() -> float:
        t0 = time.process_time()
        for i in range(RR_SAMPLE):
            for name, values in c.draws.items():
                rr[name] = float(values[i])
            rr.reset()
            res = rr.simulate(times=list(c.times))
            mine = c.ours["N"][:, i]
            worst[0] = max(worst[0], float(np.max(np.abs(res[:, 1] - mine)) / np.max(mine)))
        return (time.process_time() - t0) / RR_SAMPLE * COHORT

    _pairs(f"libroadrunner {roadrunner.__version__} loop (timed on {RR_SAMPLE}, scaled)", c,
           loop, " (goal >= 15x)")
    print(f"    largest difference in normal cells: {worst[0]:.1e} of their peak")


def diffrax_cohort(c: Cohort) -> None:
    """diffrax's Dopri5 under ``jit(vmap)`` on the same model, protocol and tolerances."""
    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("diffrax") is None:
        print("    diffrax: skipped (jax and diffrax are not installed; pip install -e "
              "'.[bench]')")
        return
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                          "intra_op_parallelism_threads=1")  # one thread, before jax loads
    import diffrax
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    model, times = c.model, c.times
    rhs = _jax_rhs(model, jnp)
    overrides = dict(c.proto.parameter_values(model))
    overrides.update(c.draws)
    pmat = parameter_matrix(model, overrides)
    y0 = model.compiled.initial(pmat).astype(float)
    # each species scaled by its absolute-tolerance scale: the error norm of the scaled
    # state with atol 1e-9 is ciksim's per-individual, per-species tolerance
    scale = _atol_scale(model, y0, each=True)
    events = c.proto.bind(model)
    stops = [*sorted({e.day for e in events if e.day <= 730.0}), 730.0]
    width = max(int(np.sum((times >= a) & (times < b))) for a, b in
                zip([0.0, *stops[:-1]], stops, strict=True)) + 1
    term = diffrax.ODETerm(lambda t, z, args: rhs(t, z * args[1], args[0]) / args[1])
    controller = diffrax.PIDController(rtol=c.settings.rtol, atol=c.settings.atol)

    def one(z0, p, s, t0, t1, ts):
        return diffrax.diffeqsolve(term, diffrax.Dopri5(), t0, t1, None, z0, args=(p, s),
                                   saveat=diffrax.SaveAt(ts=ts),
                                   stepsize_controller=controller, max_steps=100_000).ys

    solve = jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, None, None)))
    p_j, s_j = jnp.asarray(pmat.T), jnp.asarray(scale.T)

    def run() -> np.ndarray:
        y, kept, t = y0.copy(), np.ones(y0.shape[1]), 0.0
        out = np.full((times.size, *y0.shape), np.nan)
        for stop in stops:
            sel = (times >= t) & (times < stop)
            ts = np.full(width, stop)
            ts[:sel.sum()] = times[sel]
            ys = np.asarray(solve(jnp.asarray((y / scale).T), p_j, s_j, t, stop,
                                  jnp.asarray(ts))) * scale.T[:, None, :]
            out[sel] = np.transpose(ys[:, :sel.sum(), :], (1, 2, 0))
            y, t = ys[:, -1, :].T.copy(), stop
            for e in events:
                if e.day == stop:
                    e.apply(y, kept, pmat)
        out[times == t] = y
        return out

    t0 = time.perf_counter()
    first_cpu, ys = cpu(run)
    first_wall = time.perf_counter() - t0
    n_ours = c.ours["N"]
    worst = float(np.max(np.abs(ys[:, 3] - n_ours) / np.max(n_ours, axis=0)))
    runs: list[float] = []

    def theirs() -> float:
        runs.append(cpu(run)[0])
        return runs[-1]

    _pairs(f"diffrax {diffrax.__version__} Dopri5, jit(vmap), jax {jax.__version__}", c,
           theirs, "")
    print(f"    diffrax compilation (first call less a run): {first_wall - np.median(runs):.1f} "
          f"s wall, {first_cpu - np.median(runs):.1f} CPU s; largest difference in normal "
          f"cells: {worst:.1e} of their peak")


def _jax_rhs(model: Model, jnp):
    """The model's right-hand side ``rhs(t, y, p)`` for one individual, in jax.numpy,
    written from the declaration like ciksim's own engines."""
    lines = ["def rhs(t, y, p):"]
    lines += [f"    {q.name} = p[{i}]" for i, q in enumerate(model.parameters)]
    lines += [f"    {s.name} = y[{i}]" for i, s in enumerate(model.species)]
    lines += [f"    {a.name} = {model.expression(a.name).python()}" for a in model.assignments]
    lines += [f"    {pr.name} = {model.expression(pr.name).python()}" for pr in model.processes]
    derivs = [" + ".join(f"({float(pr.changes[s.name])!r}) * {pr.name}"
                         for pr in model.processes if s.name in pr.changes) or "0.0 * t"
              for s in model.species]
    lines.append(f"    return _np_stack([{', '.join(derivs)}])")
    namespace = {"_np_stack": jnp.stack, "_np_exp": jnp.exp, "_np_log": jnp.log,
                 "_np_sqrt": jnp.sqrt, "_np_minimum": jnp.minimum, "_np_maximum": jnp.maximum}
    exec(compile("\n".join(lines) + "\n", "<jax rhs>", "exec"), namespace)
    return namespace["rhs"]


def gillespy2() -> None:
    if importlib.util.find_spec("gillespy2") is None:
        print("[5] stochastic cure vs GillesPy2: skipped (pip install -e '.[bench]')")
        return
    import sys

    os.environ.setdefault("SSA_TRAJECTORIES", "20")  # GillesPy2's SSA: ~1-4 s per trajectory
    sys.path.insert(0, os.path.dirname(__file__))
    from reference_tools import cure

    print("[5] ", end="")
    cure()


def main() -> None:
    load0 = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; load average (1, 5, 15 min) at start: "
          f"{', '.join(f'{x:.1f}' for x in load0)}")
    with threadpool_limits(1):
        if not os.environ.get("ONLY_COHORT"):
            rate = trial_throughput()
            arithmetic_floor(rate)
        c = cohort()
        roadrunner_cohort(c)
        diffrax_cohort(c)
        if not os.environ.get("ONLY_COHORT"):
            gillespy2()
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"(above {os.cpu_count()} means other processes shared the cores)")


if __name__ == "__main__":
    main()

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
   scaled). Goal >= 15x.
4. Exact stochastic cure vs GillesPy2's SSA (``reference_tools.cure``), where GillesPy2 is
   installed (``pip install -e '.[bench]'``); skipped with a note otherwise.

Run: ``python benchmarks/engines.py`` (about a minute). PATIENTS (per arm, default 1000),
PAIRS (default 3), COHORT (default 2000) and RR_SAMPLE (default 100) resize it.
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")  # before numba loads: CPU time = the work

import importlib.util
import platform
import time

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from ciksim.analysis.patient import CikSchedule, patient_protocol, run_patients
from ciksim.engines import SolverSettings, fused, simulate
from ciksim.engines._random import kendall_step, seed_states
from ciksim.engines.stochastic import stochastic_structure
from ciksim.model.variability import sample_parameters
from ciksim.models.patient import STOCHASTIC, Scenario, patient_model
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


def cohort() -> None:
    if importlib.util.find_spec("roadrunner") is None:
        print("[3] deterministic cohort: skipped (libroadrunner not installed)")
        return
    import roadrunner

    from ciksim.engines.sbml import to_sbml

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
    t_ours, ours = cpu(simulate, model, proto, 730.0, times=times, parameters=draws,
                       settings=settings)
    rr = roadrunner.RoadRunner(to_sbml(model, proto))
    rr.integrator.relative_tolerance = 1e-6
    rr.timeCourseSelections = ["time", "N"]
    worst = 0.0
    c = time.process_time()
    for i in range(RR_SAMPLE):
        for name, values in draws.items():
            rr[name] = float(values[i])
        rr.reset()
        res = rr.simulate(times=list(times))
        mine = ours["N"][:, i]
        worst = max(worst, float(np.max(np.abs(res[:, 1] - mine)) / np.max(mine)))
    t_rr = (time.process_time() - c) / RR_SAMPLE * COHORT
    print(f"[3] deterministic cohort, patient model (aml-cr1 + CIK), {COHORT:,} x 2 years, "
          "rtol 1e-6, one thread")
    print(f"    varied per patient: {', '.join(draws)}")
    print(f"    ciksim compiled per-patient: {t_ours:7.2f} CPU s")
    print(f"    libroadrunner {roadrunner.__version__} loop (from {RR_SAMPLE}): "
          f"{t_rr:7.2f} CPU s")
    print(f"    ratio (goal >= 15x): {t_rr / t_ours:6.1f}x; largest difference in normal "
          f"cells: {worst:.1e} of their peak")


def gillespy2() -> None:
    if importlib.util.find_spec("gillespy2") is None:
        print("[4] stochastic cure vs GillesPy2: skipped (pip install -e '.[bench]')")
        return
    import sys

    os.environ.setdefault("SSA_TRAJECTORIES", "20")  # GillesPy2's SSA: ~1-4 s per trajectory
    sys.path.insert(0, os.path.dirname(__file__))
    from reference_tools import cure

    print("[4] ", end="")
    cure()


def main() -> None:
    load0 = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; load average (1, 5, 15 min) at start: "
          f"{', '.join(f'{x:.1f}' for x in load0)}")
    with threadpool_limits(1):
        rate = trial_throughput()
        arithmetic_floor(rate)
        cohort()
        gillespy2()
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"(above {os.cpu_count()} means other processes shared the cores)")


if __name__ == "__main__":
    main()

"""ciksim against the reference tools, measured side by side in one run.

1. Deterministic cohort: ciksim's batched ODE engine vs a libroadrunner per-patient loop on
   the same exported SBML (patient model, aml-cr1 + CIK, 10,000 patients x 2 years).
   Goal: >= 50x faster. Roadrunner is timed on a sample of patients and scaled.
2. Stochastic cure: ciksim's exact birth-death engine vs GillesPy2's exact SSA (C++ solver
   where it builds, else its NumPy SSA) on a small MRD cure problem (1,000 leukemic cells,
   infused effectors decaying, 200 days): cure probabilities with 95% intervals (and
   Kendall's exact formula), and the time per trajectory. Goal: >= 1000x faster.

Run with `make bench`. SSA_TRAJECTORIES (default 100) and RR_SAMPLE (default 200) shrink it.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.integrate import quad

from ciksim.analysis.patient import CikSchedule, patient_protocol
from ciksim.engines import SolverSettings, simulate
from ciksim.engines.sbml import to_sbml
from ciksim.engines.stochastic import StochasticSettings, simulate_stochastic
from ciksim.model import Model, Parameter, Process, Species
from ciksim.model.variability import sample_parameters
from ciksim.models.patient import Scenario, patient_model

PATIENTS = 10_000
RR_SAMPLE = int(os.environ.get("RR_SAMPLE", "200"))
SSA_TRAJECTORIES = int(os.environ.get("SSA_TRAJECTORIES", "100"))
OURS_TRAJECTORIES = 100_000
CURE = {"lam": 0.35, "mu": 0.287, "k": 5e-4, "kE": 0.173, "L0": 1000, "E0": 2000, "T": 200.0}


def cohort() -> None:
    import roadrunner

    model = patient_model()
    scen = Scenario.load("aml-cr1")
    proto = patient_protocol(scen, CikSchedule())
    draws = sample_parameters(model, PATIENTS, 1, medians=scen.parameters,
                              variability=scen.variability)
    times = np.arange(0.0, 731.0, 30.0)
    settings = SolverSettings(method="compiled", rtol=1e-6)
    simulate(model, proto, 730.0, times=times, parameters={k: v[:10] for k, v in draws.items()},
             settings=settings)  # warm-up: numba compiles the model once per process
    t0 = time.perf_counter()
    ours = simulate(model, proto, 730.0, times=times, parameters=draws, settings=settings)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    simulate(model, proto, 730.0, times=times, parameters=draws,
             settings=SolverSettings(method="LSODA", rtol=1e-6))
    t_numpy = time.perf_counter() - t0

    rr = roadrunner.RoadRunner(to_sbml(model, proto))
    rr.integrator.relative_tolerance = 1e-6
    rr.timeCourseSelections = ["time", "B", "N"]
    worst = 0.0
    t0 = time.perf_counter()
    for i in range(RR_SAMPLE):
        for name, values in draws.items():
            rr[name] = float(values[i])
        rr.reset()  # re-applies initial assignments with this patient's parameters
        res = rr.simulate(times=list(times))
        mine = ours["N"][:, i]
        worst = max(worst, float(np.max(np.abs(res[:, 2] - mine)) / np.max(mine)))
    t_rr = (time.perf_counter() - t0) / RR_SAMPLE * PATIENTS
    print(f"[1] deterministic cohort, patient model (aml-cr1 + CIK), {PATIENTS:,} x 2 years")
    print(f"    ciksim compiled per-patient (rtol 1e-6):   {t_ours:8.2f} s")
    print(f"    ciksim numpy batch (LSODA, rtol 1e-6):     {t_numpy:8.2f} s")
    print(f"    libroadrunner {roadrunner.__version__} loop (est. from {RR_SAMPLE}): "
          f"{t_rr:8.2f} s")
    print(f"    ratio (goal >= 50x):                        {t_rr / t_ours:8.1f}x")
    print(f"    largest difference in normal cells (relative to their peak): {worst:.1e}")


def cure_model() -> Model:
    def par(name: str, value: float, unit: str) -> Parameter:
        return Parameter(name, value, unit, 0.0, 1e9, "benchmark problem", name)

    return Model(
        "mrd_cure", "MRD cure problem: birth-death leukemia killed by decaying effectors",
        (Species("L", "cells", "leukemic cells", initial="L0", roles=("stochastic",)),
         Species("E", "cells", "effectors", initial="E0")),
        (par("lam", CURE["lam"], "1/day"), par("mu", CURE["mu"], "1/day"),
         par("k", CURE["k"], "1/cells/day"), par("kE", CURE["kE"], "1/day"),
         par("L0", CURE["L0"], "cells"), par("E0", CURE["E0"], "cells")),
        (Process("birth", "lam * L", {"L": 1}, "division"),
         Process("death", "mu * L", {"L": -1}, "death"),
         Process("kill", "k * E * L", {"L": -1}, "killing by effectors"),
         Process("decay", "kE * E", {"E": -1}, "effector loss")),
    )


def kendall_cure() -> float:
    """Exact extinction probability with deterministic effectors (Kendall 1948)."""
    c = CURE

    def rho(s: float) -> float:
        return (c["mu"] - c["lam"]) * s + c["k"] * c["E0"] * (1 - math.exp(-c["kE"] * s)) / c["kE"]

    p1 = 1 - 1 / (math.exp(rho(c["T"])) + quad(lambda s: c["lam"] * math.exp(rho(s)), 0,
                                                 c["T"], limit=200)[0])
    return p1 ** c["L0"]


def gillespy2_cure() -> tuple[float, float, str]:
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    import gillespy2

    c = CURE
    m = gillespy2.Model(name="mrd_cure")
    pars = {k: gillespy2.Parameter(name=k, expression=c[k]) for k in ("lam", "mu", "k", "kE")}
    m.add_parameter(list(pars.values()))
    L = gillespy2.Species(name="L", initial_value=c["L0"])
    E = gillespy2.Species(name="E", initial_value=c["E0"])
    m.add_species([L, E])
    m.add_reaction([
        gillespy2.Reaction(name="birth", reactants={L: 1}, products={L: 2}, rate=pars["lam"]),
        gillespy2.Reaction(name="death", reactants={L: 1}, products={}, rate=pars["mu"]),
        gillespy2.Reaction(name="kill", reactants={L: 1, E: 1}, products={E: 1},
                           rate=pars["k"]),
        gillespy2.Reaction(name="decay", reactants={E: 1}, products={}, rate=pars["kE"]),
    ])
    m.timespan(np.linspace(0, c["T"], 3))
    try:
        solver = gillespy2.SSACSolver(model=m)
        m.run(solver=solver, number_of_trajectories=1, seed=1)  # compile outside the timing
        name = "C++ SSA"
    except Exception as exc:  # no compiler or SCons: the NumPy SSA is the reference then
        print(f"    (GillesPy2 C++ solver unavailable: {exc}; using its NumPy SSA)")
        solver = gillespy2.NumPySSASolver(model=m)
        name = "NumPy SSA"
    t0 = time.perf_counter()
    res = m.run(solver=solver, number_of_trajectories=SSA_TRAJECTORIES, seed=2)
    per = (time.perf_counter() - t0) / SSA_TRAJECTORIES
    cured = float(np.mean([r["L"][-1] == 0 for r in res]))
    return cured, per, f"GillesPy2 {gillespy2.__version__} {name}"


def cure() -> None:
    model = cure_model()
    settings = StochasticSettings(dt_max=0.25, dt_event=0.25, window=0.0)
    n = OURS_TRAJECTORIES
    simulate_stochastic(model, None, CURE["T"], stochastic=["L"],
                        parameters={"L0": np.full(10, 1000.0)}, settings=settings)  # warm-up
    t0 = time.perf_counter()
    r = simulate_stochastic(model, None, CURE["T"], stochastic=["L"],
                            parameters={"L0": np.full(n, float(CURE["L0"]))}, seed=3,
                            settings=settings)
    per_ours = (time.perf_counter() - t0) / n
    ours = float(np.mean(r.final[0] == 0))
    theirs, per_theirs, label = gillespy2_cure()

    def ci(p: float, k: int) -> str:
        lo, hi = stats.binomtest(round(p * k), k).proportion_ci(0.95)
        return f"{p:.3f} (95% CI {lo:.3f}-{hi:.3f}, n={k:,})"

    print(f"[2] stochastic cure: {CURE['L0']} leukemic cells, {CURE['E0']} decaying effectors, "
          f"{CURE['T']:g} days")
    print(f"    Kendall exact (effectors deterministic): {kendall_cure():.3f}")
    print(f"    ciksim exact birth-death steps:          {ci(ours, n)}")
    print(f"    {label}:{' ' * max(1, 25 - len(label))}{ci(theirs, SSA_TRAJECTORIES)}")
    print(f"    time per trajectory: ciksim {per_ours * 1e6:.1f} us, reference "
          f"{per_theirs * 1e3:.0f} ms")
    print(f"    ratio (goal >= 1000x): {per_theirs / per_ours:,.0f}x")


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}")
    cohort()
    cure()


if __name__ == "__main__":
    main()

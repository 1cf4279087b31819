"""The default calibration of the allo model's alloreactivity to the shipped allo evidence,
timed.

Runs ``ciksim.evidence.calibrate(model="allo")`` (PARTICLES, GENERATIONS, WORKERS, SEED
from the environment; defaults 300, 6, 2, 2026: the shipped posterior's) on
``data/evidence/allo.toml``, prints the
wall and CPU time, the simulated study sets and their CPU cost, the tolerances and effective
sample size, the posterior summary and checks. With
``--install`` (``make calibrate-allo``) it copies the posterior into
``src/ciksim/data/posterior/allo.parquet``, which ``Posterior.load(model="allo")`` returns.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from calibration_run import env_ints, show_and_install, timed_calibration

from ciksim.evidence.allo import load_allo_evidence

PARTICLES, GENERATIONS, WORKERS, SEED, PPC_DRAWS = env_ints(
    PARTICLES=300, GENERATIONS=6, WORKERS=2, SEED=2026, PPC_DRAWS=40)
OUT = Path(os.environ.get("OUT", "out/calibration-allo"))
SHIPPED = Path(__file__).resolve().parents[1] / "src/ciksim/data/posterior/allo.parquet"


def main() -> None:
    ev = load_allo_evidence()
    recipients = sum(a.n * a.screen for s in ev.used for a in s.arms)
    res, wall = timed_calibration(ev, OUT, particles=PARTICLES, generations=GENERATIONS,
                                  workers=WORKERS, seed=SEED, model="allo",
                                  ppc_draws=PPC_DRAWS)
    cpu = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    sets = res.evaluations + PPC_DRAWS
    m = res.posterior.manifest
    print(f"\nallo calibration: {PARTICLES} particles x {res.generations} generations, "
          f"{WORKERS} workers: {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU min (this "
          f"process and its workers), {res.evaluations} simulated study sets + {PPC_DRAWS} "
          f"for the check ({len(ev.used)} studies, {recipients} simulated recipients each): "
          f"{cpu / sets:.2f} CPU s per study set; load average {os.getloadavg()[0]:.1f}")
    print(f"tolerances {[round(e, 2) for e in m['epsilons']]}, target "
          f"{m['epsilon_target']:.2f}: {'reached' if m['converged'] else 'NOT reached'}; "
          f"study terms {m.get('terms')}, effective sample size {m.get('ess', 0):.1f}, "
          f"pooled generations {m.get('pooled_generations')}")
    show_and_install(res, OUT, SHIPPED)


if __name__ == "__main__":
    main()

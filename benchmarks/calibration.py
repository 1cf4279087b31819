"""The default calibration of the in vivo CIK effect to the shipped evidence, timed.

Runs ``ciksim.evidence.calibrate`` with the default settings (PARTICLES, GENERATIONS (at
most), WORKERS from the environment; defaults 200, 12, 2; the run stops at the default final
tolerance) on the shipped evidence, prints the wall
time, the number of simulated study sets and the cost per simulated study set and per
simulated patient, and the posterior summary and checks. With ``--install`` (``make
calibrate``) it copies the posterior into ``src/ciksim/data/posterior/patient.parquet``,
the posterior ``ciksim.evidence.Posterior.load()`` returns.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from calibration_run import env_ints, show_and_install, timed_calibration

from ciksim.evidence import load_evidence

PARTICLES, GENERATIONS, WORKERS, SEED = env_ints(PARTICLES=200, GENERATIONS=12, WORKERS=2,
                                                 SEED=2026)
OUT = Path(os.environ.get("OUT", "out/calibration"))
SHIPPED = Path(__file__).resolve().parents[1] / "src/ciksim/data/posterior/patient.parquet"


def main() -> None:
    ev = load_evidence()
    patients = sum(a.n for s in ev.used for a in s.arms)
    res, wall = timed_calibration(ev, OUT, particles=PARTICLES, generations=GENERATIONS,
                                  workers=WORKERS, seed=SEED)
    cpu = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(f"\ndefault calibration: {PARTICLES} particles x {res.generations} generations, "
          f"{WORKERS} workers: {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU min (this "
          f"process and its workers), {res.evaluations} simulated study sets "
          f"({len(ev.used)} studies, {patients} patients each): "
          f"{cpu / res.evaluations:.3f} CPU s per study set, "
          f"{cpu / res.evaluations / patients * 1e3:.2f} CPU ms per patient; load average "
          f"{os.getloadavg()[0]:.1f}")
    m = res.posterior.manifest
    print(f"tolerances {[round(e, 3) for e in m['epsilons']]}, target "
          f"{m['epsilon_target']:.3f}: {'reached' if m['converged'] else 'NOT reached'}")
    show_and_install(res, OUT, SHIPPED)


if __name__ == "__main__":
    main()

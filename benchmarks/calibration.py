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
import shutil
import sys
import time
from pathlib import Path

from ciksim.evidence import calibrate, load_evidence

PARTICLES = int(os.environ.get("PARTICLES", "200"))
GENERATIONS = int(os.environ.get("GENERATIONS", "12"))
WORKERS = int(os.environ.get("WORKERS", "2"))
SEED = int(os.environ.get("SEED", "2026"))
OUT = Path(os.environ.get("OUT", "out/calibration"))
SHIPPED = Path(__file__).resolve().parents[1] / "src/ciksim/data/posterior/patient.parquet"


def main() -> None:
    ev = load_evidence()
    patients = sum(a.n for s in ev.used for a in s.arms)
    if OUT.exists():
        shutil.rmtree(OUT)
    t0 = time.perf_counter()
    res = calibrate(ev, out=OUT, particles=PARTICLES, generations=GENERATIONS,
                    workers=WORKERS, seed=SEED,
                    progress=lambda line: print(f"  [{time.perf_counter() - t0:7.1f} s] {line}",
                                                flush=True))
    wall = time.perf_counter() - t0
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
    print(res.posterior.summary().round(4).to_string(index=False))
    print(res.posterior.ppc.round(3).to_string(index=False))
    if "--install" in sys.argv:
        SHIPPED.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(OUT / "posterior.parquet", SHIPPED)
        print(f"installed {SHIPPED.relative_to(SHIPPED.parents[3])}")


if __name__ == "__main__":
    main()

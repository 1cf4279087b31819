"""The default calibration of the allo model's alloreactivity to the shipped allo evidence,
timed.

Runs ``ciksim.evidence.calibrate(model="allo")`` (PARTICLES, GENERATIONS, WORKERS, SEED
from the environment; defaults 30, 3, 2, 2026) on ``data/evidence/allo.toml``, prints the
wall time, the simulated study sets and their cost, the posterior summary and checks. With
``--install`` (``make calibrate-allo``) it copies the posterior into
``src/ciksim/data/posterior/allo.parquet``, which ``Posterior.load(model="allo")`` returns.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from ciksim.evidence import calibrate
from ciksim.evidence.allo import load_allo_evidence

PARTICLES = int(os.environ.get("PARTICLES", "30"))
GENERATIONS = int(os.environ.get("GENERATIONS", "3"))
WORKERS = int(os.environ.get("WORKERS", "2"))
SEED = int(os.environ.get("SEED", "2026"))
PPC_DRAWS = int(os.environ.get("PPC_DRAWS", "40"))
OUT = Path(os.environ.get("OUT", "out/calibration-allo"))
SHIPPED = Path(__file__).resolve().parents[1] / "src/ciksim/data/posterior/allo.parquet"


def main() -> None:
    ev = load_allo_evidence()
    recipients = sum(a.n * a.screen for s in ev.used for a in s.arms)
    if OUT.exists():
        shutil.rmtree(OUT)
    t0 = time.perf_counter()
    res = calibrate(ev, out=OUT, particles=PARTICLES, generations=GENERATIONS,
                    workers=WORKERS, seed=SEED, model="allo", ppc_draws=PPC_DRAWS,
                    progress=lambda line: print(f"  [{time.perf_counter() - t0:7.1f} s] {line}",
                                                flush=True))
    wall = time.perf_counter() - t0
    sets = res.evaluations + PPC_DRAWS
    print(f"\nallo calibration: {PARTICLES} particles x {res.generations} generations, "
          f"{WORKERS} workers: {wall / 60:.1f} min wall, {res.evaluations} simulated study "
          f"sets + {PPC_DRAWS} for the check ({len(ev.used)} studies, {recipients} simulated "
          f"recipients each): {wall / sets * WORKERS:.2f} core-s per study set")
    print(res.posterior.summary().round(4).to_string(index=False))
    print(res.posterior.ppc.round(3).to_string(index=False))
    if "--install" in sys.argv:
        SHIPPED.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(OUT / "posterior.parquet", SHIPPED)
        print(f"installed {SHIPPED.relative_to(SHIPPED.parents[3])}")


if __name__ == "__main__":
    main()

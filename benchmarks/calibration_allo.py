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
from pathlib import Path

from calibration_run import env_ints, show_and_install, timed_calibration

from ciksim.evidence.allo import load_allo_evidence

PARTICLES, GENERATIONS, WORKERS, SEED, PPC_DRAWS = env_ints(
    PARTICLES=30, GENERATIONS=3, WORKERS=2, SEED=2026, PPC_DRAWS=40)
OUT = Path(os.environ.get("OUT", "out/calibration-allo"))
SHIPPED = Path(__file__).resolve().parents[1] / "src/ciksim/data/posterior/allo.parquet"


def main() -> None:
    ev = load_allo_evidence()
    recipients = sum(a.n * a.screen for s in ev.used for a in s.arms)
    res, wall = timed_calibration(ev, OUT, particles=PARTICLES, generations=GENERATIONS,
                                  workers=WORKERS, seed=SEED, model="allo",
                                  ppc_draws=PPC_DRAWS)
    sets = res.evaluations + PPC_DRAWS
    print(f"\nallo calibration: {PARTICLES} particles x {res.generations} generations, "
          f"{WORKERS} workers: {wall / 60:.1f} min wall, {res.evaluations} simulated study "
          f"sets + {PPC_DRAWS} for the check ({len(ev.used)} studies, {recipients} simulated "
          f"recipients each): {wall / sets * WORKERS:.2f} core-s per study set")
    show_and_install(res, OUT, SHIPPED)


if __name__ == "__main__":
    main()

"""Culture engine benchmark: one run, a 1000-donor batch, and a loop of single runs.

Run with `make bench` (never part of the test suite). Goal: 1000 donors x 28 days <= 1 s on
2 cores. Prints the times and the batch's speed-up over a Python loop of single runs.
"""

from __future__ import annotations

import platform
import time

import numpy as np

from ciksim.engines import simulate
from ciksim.model.variability import sample_parameters
from ciksim.models.culture import culture_model
from ciksim.protocol import Protocol

DONORS = 1000
DAYS = 28.0
LOOP_SAMPLE = 50  # single runs timed, then scaled to DONORS


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    model = culture_model()
    proto = Protocol.load("cik-gmp")
    pars = sample_parameters(model, DONORS, seed=0)
    _ = model.compiled  # compile once, outside the timings

    single = best_of(lambda: simulate(model, proto, DAYS))
    batch = best_of(lambda: simulate(model, proto, DAYS, parameters=pars), repeats=2)

    def loop() -> None:
        for i in range(LOOP_SAMPLE):
            simulate(model, proto, DAYS, parameters={k: v[i] for k, v in pars.items()})

    loop_total = best_of(loop, repeats=1) * DONORS / LOOP_SAMPLE
    print(f"machine: {platform.processor() or platform.machine()}, python "
          f"{platform.python_version()}, numpy {np.__version__}")
    print(f"single run ({DAYS:g} days):             {single * 1e3:8.1f} ms")
    print(f"batch of {DONORS} donors:               {batch:8.3f} s   (goal <= 1 s)")
    print(f"loop of {DONORS} single runs (est.):    {loop_total:8.3f} s")
    print(f"batch speed-up over the loop:          {loop_total / batch:8.1f}x")


if __name__ == "__main__":
    main()

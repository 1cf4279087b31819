"""Trial-scale benchmark: 100,000 patients x 2 years on this machine.

Prints patients x years per second, wall time, peak memory (RSS, this process and its
workers) and the speed-up over a per-patient Python loop of the same engine (timed on a
sample and scaled). Goal: 100,000 patients x 2 years <= 20 s (quiet machine) and peak RSS
< 4 GB on 2 cores. The load average is printed: above the core count, other processes
shared the cores and the wall time says more about them than about ciksim.
Run with `make bench` (never part of the test suite). Optional: PATIENTS=20000 to shrink.
"""

from __future__ import annotations

import os
import platform
import resource
import time

import numpy as np

from ciksim.analysis.patient import CikSchedule, run_patients
from ciksim.trial.runner import run_trial
from ciksim.trial.spec import TrialSpec

PATIENTS = int(os.environ.get("PATIENTS", "100000"))
YEARS = 2.0
LOOP_SAMPLE = 100
COMPOSITION = {"f_cik": 0.49, "f_t": 0.47, "f_nk": 0.035}


def peak_rss_gb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + children) / 1024**2  # ru_maxrss is in KiB on Linux


def cpu_seconds() -> float:
    """User + system seconds of this process and its finished children (the workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    per_arm = PATIENTS // 2
    spec = TrialSpec.from_dict({
        "name": "bench", "seed": 1, "patients_per_arm": per_arm, "follow_up_years": YEARS,
        "chunk_size": 5000, "population": {"scenario": "aml-cr1"},
        "arms": [{"name": "chemo"}, {"name": "cik", "cik": {"dose_per_kg": 5e7}}],
    })
    run_patients("aml-cr1", replicates=2, years=0.1)  # compile and warm the caches
    workers = os.cpu_count() or 1
    t0 = time.perf_counter()
    c0 = cpu_seconds()
    run = run_trial(spec, workers=workers, composition=COMPOSITION)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    assert len(run.patients) == 2 * per_arm

    t0 = time.perf_counter()
    for i in range(LOOP_SAMPLE):
        run_patients("aml-cr1", cik=CikSchedule() if i % 2 else None, replicates=1,
                     years=YEARS, seed=1, indices=np.array([i]))
    loop = (time.perf_counter() - t0) / LOOP_SAMPLE * 2 * per_arm / workers

    print(f"machine: {platform.machine()}, {workers} cores, python {platform.python_version()}")
    print(f"patients: {2 * per_arm:,} x {YEARS:g} years (2 arms, chemo and chemo + CIK)")
    print(f"wall time:                 {wall:8.1f} s   (goal <= 20 s for 100,000, quiet)")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"CPU seconds (all processes): {cpu:6.1f} s; on {workers} quiet cores that is about "
          f"{cpu / workers:.1f} s of wall time")
    print(f"patient-years per second:  {2 * per_arm * YEARS / wall:10,.0f}")
    print(f"peak RSS (all processes):  {peak_rss_gb():8.2f} GB (goal < 4 GB)")
    print(f"per-patient loop (est.):   {loop:8.1f} s on {workers} cores")
    print(f"speed-up over the loop:    {loop / wall:8.1f}x")


if __name__ == "__main__":
    main()

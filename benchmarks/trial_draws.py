"""Trial over posterior draws: 200 draws x 2 arms x 1,000 patients (issue 12 goal: <= 3 min
on 2 cores), the shipped posterior, 4-year follow-up, planned trial of 100 per arm.

Prints wall time, patients per second, the share spent simulating vs analysing (lifelines),
and the Monte Carlo error against the posterior spread (T3: at most a tenth). Optional:
DRAWS=20 to shrink (the time is then also scaled to 200 draws, marked as extrapolated), COHORT,
WORKERS (default: all cores). Never part of the test suite.
"""

from __future__ import annotations

import os
import platform
import resource
import time

from ciksim.analysis.patient import run_patients
from ciksim.trial.draws import DrawDesign, run_over_draws
from ciksim.trial.sources import resolve_source
from ciksim.trial.spec import TrialSpec

DRAWS = int(os.environ.get("DRAWS", "200"))
COHORT = int(os.environ.get("COHORT", "1000"))
COMPOSITION = {"f_cik": 0.49, "f_t": 0.47, "f_nk": 0.035}
GOAL_SECONDS = 180.0


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished child processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    workers = int(os.environ.get("WORKERS", str(os.cpu_count() or 1)))
    spec = TrialSpec.from_dict({
        "name": "bench-draws", "seed": 1, "patients_per_arm": 100, "follow_up_years": 4,
        "population": {"scenario": "aml-cr1"},
        "arms": [{"name": "chemo"}, {"name": "cik", "cik": {"dose_per_kg": 5e7}}]})
    run_patients("aml-cr1", replicates=2, years=0.1)  # compile and warm the caches
    source = resolve_source()
    design = DrawDesign(draws=DRAWS, cohort=COHORT, sizes=(50, 100, 200),
                        chunk_draws=max(1, DRAWS // (4 * workers)))
    t0, c0 = time.perf_counter(), cpu_seconds()
    run = run_over_draws(spec, source, design, workers=workers, composition=COMPOSITION)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    s = run.summary()
    patients = DRAWS * 2 * COHORT
    at_200 = wall * 200 / DRAWS
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{workers} workers; load average {os.getloadavg()[0]:.1f}")
    print(f"{DRAWS} draws x 2 arms x {COHORT} patients = {patients} patients in {wall:.1f} s "
          f"({patients / wall:.0f} patients/s; chunk CPU {sum(run.manifest['chunk_seconds']):.0f}"
          " s)")
    mark = "" if DRAWS == 200 else " (extrapolated from the draws run)"
    print(f"200 draws: {at_200:.0f} s wall{mark}; goal {GOAL_SECONDS:.0f} s on 2 cores: "
          f"ratio {at_200 / GOAL_SECONDS:.2f}")
    cpu_200 = cpu * 200 / DRAWS
    print(f"CPU time (this process and its workers): {cpu:.0f} s, i.e. {cpu_200:.0f} s for 200 "
          f"draws = {cpu_200 / 2:.0f} s on 2 dedicated cores (load-independent; ratio to the "
          f"goal {cpu_200 / 2 / GOAL_SECONDS:.2f})")
    for m, e in s["effect"].items():
        mc = s["mc_error"][m]
        print(f"{m}: median {e['median']:.3g}, 90% {e['q05']:.3g} to {e['q95']:.3g}; "
              f"MC error {mc['within_draw']:.2g} / posterior SD {mc['posterior_sd']:.2g} = "
              f"{mc['ratio']:.3f} (T3 <= 0.1: {'met' if mc['ok'] else 'NOT met'})")
    for r in s["assurance_curve"]:
        print(f"assurance n={r['n_per_arm']}/arm: {r['assurance']:.2f} "
              f"(MC SE {r['mc_se']:.2f})")


if __name__ == "__main__":
    main()

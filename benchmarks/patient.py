"""Patient simulation cost before and after the leukemia hierarchy: patients per second.

Times ``run_patients`` (aml-cr1, 2000 patients x 6 years, chemotherapy alone and with the
default CIK schedule, one process) for this source tree and for the tree of a git revision
(``BEFORE``, default: the last commit before the hierarchy), on the same machine in the same
run: the old tree is exported with ``git archive`` and timed in a subprocess. Goal: the
hierarchy costs at most 1.5x the old model per patient. Run with
``python benchmarks/patient.py`` (never part of the test suite); PATIENTS=500 to shrink.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

BEFORE = os.environ.get("BEFORE", "f2fb69f")
PATIENTS = int(os.environ.get("PATIENTS", "2000"))
YEARS = 6.0
ROOT = Path(__file__).resolve().parents[1]

_MEASURE = """
import json, sys, time
from ciksim.analysis.patient import CikSchedule, run_patients
n, years = int(sys.argv[1]), float(sys.argv[2])
run_patients("aml-cr1", replicates=2, years=0.1)  # compile and warm the caches
run_patients("aml-cr1", cik=CikSchedule(), replicates=2, years=0.1)
out = {}
for arm, cik in (("chemotherapy", None), ("chemotherapy + CIK", CikSchedule())):
    t = time.perf_counter()
    run_patients("aml-cr1", cik=cik, replicates=n, years=years, seed=1)
    out[arm] = n / (time.perf_counter() - t)
print(json.dumps(out))
"""


def measure(src: Path) -> dict[str, float]:
    """Patients per second of each arm for the package sources under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(PATIENTS), str(YEARS)],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "before.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), BEFORE, "src"],
                       check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        before = measure(Path(tmp) / "src")
    after = measure(ROOT / "src")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; aml-cr1, {PATIENTS} patients x {YEARS:g} years, "
          "one process")
    print(f"{'arm':22s} {'before (' + BEFORE + ')':>18s} {'after':>12s} {'cost ratio':>11s}")
    for arm in before:
        ratio = before[arm] / after[arm]
        print(f"{arm:22s} {before[arm]:14.0f} p/s {after[arm]:8.0f} p/s {ratio:10.2f}x"
              f"   (goal <= 1.5x)")


if __name__ == "__main__":
    main()

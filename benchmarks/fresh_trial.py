"""A 10-patient trial in a fresh process, after the first run on the machine (goal <= 1.5 s).

Measured command (printed too), run RUNS times (default 5) after one warm-up run that fills
the per-user caches (compiled code, the cultured product lots, the unit checks):

    ciksim trial examples/aml-adjuvant-cik.toml --n-per-arm 5 --draws 0

(the example spec, 5 patients per arm, its product cultured from 200 simulated donors, no
decision outputs over posterior draws). Prints wall and CPU seconds (user + system of the
process and its children) as min / median / max, the time of importing the third-party
libraries the command needs alone (with the same garbage-collector settings as the
``ciksim`` script, ``ciksim.cli.main``) for comparison, and the load average: above the core
count, other processes shared the cores and the wall time says more about them than about
ciksim.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

RUNS = int(os.environ.get("RUNS", "5"))
ROOT = Path(__file__).resolve().parents[1]
CIKSIM = shutil.which("ciksim", path=str(Path(sys.executable).parent)) or "ciksim"
COMMAND = [CIKSIM, "trial", "examples/aml-adjuvant-cik.toml", "--n-per-arm", "5", "--draws",
           "0"]
LIBRARIES = "pandas, numba, lifelines, typer, rich, pydantic"
IMPORTS = [sys.executable, "-c", "import gc; gc.set_threshold(10_000, 50, 10); "
           f"import {LIBRARIES}; gc.freeze()"]


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``cmd`` (its children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def spread(values: list[float]) -> str:
    v = sorted(values)
    return f"{v[len(v) // 2]:.2f} (min {v[0]:.2f}, max {v[-1]:.2f})"


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; load average at start: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"command: {' '.join(['ciksim', *COMMAND[1:]])} (in the repository root)")
    timed(COMMAND)  # the first run on the machine fills the caches
    trial = [timed(COMMAND) for _ in range(RUNS)]
    libs = [timed(IMPORTS) for _ in range(RUNS)]
    print(f"fresh process, {RUNS} runs: wall {spread([w for w, _ in trial])} s; CPU "
          f"{spread([c for _, c in trial])} s (goal <= 1.5 s)")
    print(f"importing {LIBRARIES} alone: wall "
          f"{spread([w for w, _ in libs])} s; CPU {spread([c for _, c in libs])} s")
    print(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

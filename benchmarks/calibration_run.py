"""What the calibration benchmarks share: integer settings from the environment, a timed
calibration into a fresh folder, and the posterior's printout and installation."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ciksim.evidence import CalibrationResult, calibrate


def env_ints(**defaults: int) -> tuple[int, ...]:
    """Each setting (by name) from the environment variable of that name, else its default;
    in the order given."""
    return tuple(int(os.environ.get(name, str(value))) for name, value in defaults.items())


def timed_calibration(evidence: Any, out: Path, **settings: Any
                      ) -> tuple[CalibrationResult, float]:
    """``ciksim.evidence.calibrate(evidence, out=out, **settings)`` into a fresh ``out``,
    printing each progress line with the seconds elapsed; the result and the wall time (s)."""
    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    res = calibrate(evidence, out=out, **settings,
                    progress=lambda line: print(f"  [{time.perf_counter() - t0:7.1f} s] {line}",
                                                flush=True))
    return res, time.perf_counter() - t0


def show_and_install(res: CalibrationResult, out: Path, shipped: Path) -> None:
    """Print the posterior summary and its predictive checks; with ``--install`` on the
    command line, copy ``out/posterior.parquet`` to ``shipped`` (the package's posterior)."""
    print(res.posterior.summary().round(4).to_string(index=False))
    print(res.posterior.ppc.round(3).to_string(index=False))
    if "--install" in sys.argv:
        shipped.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "posterior.parquet", shipped)
        print(f"installed {shipped.relative_to(shipped.parents[3])}")

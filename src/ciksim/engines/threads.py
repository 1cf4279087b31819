"""Threads: numba's fork-safe threading layer, one thread per worker process.

The compiled engines run ``prange`` loops over individuals. numba's OpenMP layer aborts a
process that forks after using it (``ProcessPoolExecutor`` on Linux forks), so ciksim selects
the ``workqueue`` layer unless ``NUMBA_THREADING_LAYER`` says otherwise; that layer is not
re-entrant, so parallel kernels are launched under ``KERNEL_LOCK`` (calls from several Python
threads take turns, each using every core). Worker processes and Dask tasks call
``single_thread()``: the workers are the parallelism, and OpenBLAS threads spinning on
small arrays would only fight them.
"""

from __future__ import annotations

import os
import threading

import numba

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

KERNEL_LOCK = threading.Lock()
_LIMITS: list[object] = []


def single_thread() -> None:
    """One numba thread (for the calling thread) and one BLAS/OpenMP thread in this process."""
    numba.set_num_threads(1)
    if not _LIMITS:
        from threadpoolctl import threadpool_limits

        _LIMITS.append(threadpool_limits(1))

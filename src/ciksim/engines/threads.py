"""Threads: numba's fork-safe threading layer, one thread per worker process.

The compiled engines run ``prange`` loops over individuals. numba's OpenMP layer aborts a
process that forks after using it (``ProcessPoolExecutor`` on Linux forks), so ciksim selects
the ``workqueue`` layer unless ``NUMBA_THREADING_LAYER`` says otherwise; that layer is not
re-entrant, so parallel kernels are launched under ``KERNEL_LOCK`` (calls from several Python
threads take turns, each using every core). Worker processes and Dask tasks call
``single_thread()``: the workers are the parallelism, and OpenBLAS threads spinning on
small arrays would only fight them; the scipy ODE path runs under ``one_blas_thread()``.
"""

from __future__ import annotations

import os
import threading
from contextlib import AbstractContextManager
from functools import cache
from typing import TYPE_CHECKING

import numba

if TYPE_CHECKING:
    from threadpoolctl import ThreadpoolController

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


@cache
def _controller() -> ThreadpoolController:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[object]:
    """Context: BLAS on one thread (for small arrays, where more threads only spin)."""
    return _controller().limit(limits=1, user_api="blas")

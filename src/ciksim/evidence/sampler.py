"""A pyabc sampler that is reproducible for any number of workers, and batches simulations.

pyabc's own parallel samplers accept whichever particle finishes first, so the posterior
depends on timing. This sampler numbers the proposals of generation ``t`` 0, 1, 2, ... and
seeds numpy's global generator with ``SeedSequence([seed, t + 1, i])`` before pyabc draws
proposal ``i`` (pyabc's priors and transition kernels draw from it). It works in batches:

1. *collect*: for each index, pyabc's own ``simulate_one`` proposes a parameter; the model
   records it and stops the evaluation;
2. *simulate*: all recorded proposals are simulated together, split into chunks over local
   processes or a Dask cluster (each proposal's simulation depends only on its key);
3. *replay*: with the same seeds, ``simulate_one`` proposes the same parameters again, now
   gets the simulated summaries, and pyabc computes distance and acceptance.

Particles are accepted in index order until ``n`` are accepted; later ones are discarded.
The accepted population is therefore a function of (seed, t, history) only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pyabc

from ciksim.errors import DataError

Simulator = Callable[[Sequence[Mapping[str, float]], Sequence[int]], list[dict[str, float]]]


MAX_BATCH = 128  # proposals simulated together (progress is reported per batch)


class _CollectedError(Exception):
    """Raised by the model in the collect phase to stop pyabc's evaluation."""


class BatchModel(pyabc.Model):
    """A pyabc model whose simulations are run in batches by :class:`OrderedBatchSampler`."""

    def __init__(self, name: str = "patient") -> None:
        super().__init__(name)
        self.collecting = False
        self.index = 0
        self.proposals: dict[int, dict[str, float]] = {}
        self.results: dict[int, dict[str, float]] = {}

    def sample(self, pars: Mapping[str, float]) -> dict[str, float]:
        if self.collecting:
            self.proposals[self.index] = dict(pars)
            raise _CollectedError
        return self.results[self.index]


def _seed(seed: int, t: int, i: int) -> None:
    ss = np.random.SeedSequence([int(seed), int(t) + 1, int(i)])
    np.random.seed(ss.generate_state(1, np.uint32)[0])


def key_of(t: int, i: int) -> int:
    """The simulation key of proposal ``i`` of generation ``t`` (t = -1: calibration)."""
    return ((int(t) + 2) << 22) + int(i)


class OrderedBatchSampler(pyabc.sampler.Sampler):
    """Deterministic batched sampler (see the module docstring).

    ``simulate(thetas, keys)`` returns the summaries of each proposal; ``run_chunks`` maps
    it over chunks (serial, processes or Dask). ``progress`` receives one line per batch.
    """

    def __init__(self, model: BatchModel, simulate: Simulator, seed: int, *,
                 workers: int = 1, batch: int = 0,
                 progress: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.model = model
        self.simulate = simulate
        self.seed = int(seed)
        self.workers = max(1, int(workers))
        self.batch = int(batch)
        self.progress = progress
        self.rate = 0.5
        self.total_evaluations = 0

    def sample_until_n_accepted(self, n: int, simulate_one: Callable[[], Any], t: int, *,
                                max_eval: float = np.inf, all_accepted: bool = False,
                                ana_vars: Any = None) -> Any:
        sample = self._create_empty_sample()
        m = self.model
        accepted = evaluated = 0
        start = 0
        while accepted < n and evaluated < max_eval:
            need = n - accepted
            if all_accepted:
                size = min(need, MAX_BATCH)
            else:
                size = self.batch or min(MAX_BATCH, max(
                    4 * self.workers, math.ceil(1.2 * need / max(self.rate, 0.02))))
            idx = range(start, start + size)
            m.proposals.clear()
            m.results.clear()
            m.collecting = True
            try:
                for i in idx:
                    _seed(self.seed, t, i)
                    m.index = i
                    try:
                        simulate_one()
                    except _CollectedError:
                        continue
                    raise DataError("internal: the model was not called for a proposal")
            finally:
                m.collecting = False
            keys = [key_of(t, i) for i in idx]
            sims = self.simulate([m.proposals[i] for i in idx], keys)
            m.results.update(zip(idx, sims, strict=True))
            batch_acc = 0
            for i in idx:
                _seed(self.seed, t, i)
                m.index = i
                particle = simulate_one()
                sample.append(particle)
                evaluated += 1
                if particle.accepted:
                    accepted += 1
                    batch_acc += 1
                if accepted >= n or evaluated >= max_eval:
                    break
            self.rate = max(batch_acc, 1) / size
            start += size
            if self.progress:
                self.progress(f"generation {t}: {accepted}/{n} accepted after {evaluated} "
                              "simulated study sets")
        self.nr_evaluations_ = evaluated
        self.total_evaluations += evaluated
        if sample.n_accepted < n:
            sample.ok = False
        return sample


_WORKER: dict[str, Any] = {}


def _init_worker(function: Callable[..., Any], payload: Any) -> None:
    from ciksim.engines.threads import single_thread

    single_thread()  # the workers are the parallelism
    _WORKER["f"] = function
    _WORKER["payload"] = payload


def _run_chunk(thetas: Sequence[Mapping[str, float]], keys: Sequence[int]) -> Any:
    return _WORKER["f"](_WORKER["payload"], thetas, keys)


def _dask_chunk(function: Callable[..., Any], payload: Any,
                thetas: Sequence[Mapping[str, float]], keys: Sequence[int]) -> Any:
    from ciksim.engines.threads import single_thread

    single_thread()
    return function(payload, thetas, keys)


class ChunkRunner:
    """Runs ``function(payload, thetas, keys)`` over contiguous chunks: in-process
    (``workers`` 1), on local processes, or on a Dask scheduler (``tcp://host:port``)."""

    def __init__(self, function: Callable[..., list[Any]], payload: Any, *, workers: int = 1,
                 scheduler: str | None = None) -> None:
        self.function = function
        self.payload = payload
        self.workers = max(1, int(workers))
        self.scheduler = scheduler
        self._pool: ProcessPoolExecutor | None = None
        self._client: Any = None
        self._payload_future: Any = None
        if scheduler:
            from distributed import Client

            try:
                self._client = Client(scheduler, timeout="10s")
            except OSError as exc:
                raise DataError(f"scheduler: cannot reach the Dask scheduler {scheduler!r} "
                                f"({exc}); start one with `dask scheduler` or use --workers"
                                ) from None
            self.workers = max(1, len(self._client.scheduler_info()["workers"]))
            self._payload_future = self._client.scatter(payload, broadcast=True)
        elif self.workers > 1:
            self._pool = ProcessPoolExecutor(self.workers, initializer=_init_worker,
                                             initargs=(function, payload))

    def __call__(self, thetas: Sequence[Mapping[str, float]], keys: Sequence[int]
                 ) -> list[Any]:
        if not thetas:
            return []
        k = min(self.workers, len(thetas))
        bounds = np.linspace(0, len(thetas), k + 1).astype(int)
        chunks = [(list(thetas[a:b]), list(keys[a:b])) for a, b in itertools.pairwise(bounds)
                  if b > a]
        if self._client is not None:
            futures = [self._client.submit(_dask_chunk, self.function, self._payload_future,
                                           th, ks, pure=False) for th, ks in chunks]
            parts = self._client.gather(futures)
        elif self._pool is not None:
            parts = list(self._pool.map(_run_chunk, *zip(*chunks, strict=True)))
        else:
            parts = [self.function(self.payload, th, ks) for th, ks in chunks]
        return [x for part in parts for x in part]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

"""Between-individual variability: log-normal parameter draws with explicit seeds."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from ciksim.errors import DataError
from ciksim.model.model import Model


def sample_parameters(
    model: Model,
    n: int,
    seed: int,
    *,
    spread: float = 1.0,
    medians: Mapping[str, float | np.ndarray] | None = None,
    variability: Mapping[str, float] | None = None,
    indices: Sequence[int] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Draw ``n`` individuals: each parameter with a variability σ > 0 is log-normal with
    median = its value and log-SD = σ·``spread``, clipped to its plausible range.

    ``medians`` (a number, or one per individual) and ``variability`` override the model's
    values and σ (a scenario's population). Individual ``i`` (``indices``, default
    0..n-1) always gets the same draw for a given ``seed``: its stream is
    ``SeedSequence([seed, crc32(model name)], spawn_key=(i,))``. Draws for two models of
    one individual are therefore independent, and a chunk of a trial gets the same
    numbers as the whole trial.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"donors: need a whole number >= 1, got {n!r}")
    if seed is None or int(seed) < 0:
        raise DataError("seed: give a whole number >= 0")
    medians = dict(medians or {})
    sigma = {p.name: p.variability for p in model.parameters}
    sigma.update(variability or {})
    idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.shape != (n,):
        raise DataError(f"indices: need {n} indices, got shape {idx.shape}")
    varying = [p for p in model.parameters if sigma[p.name] > 0]
    key = [int(seed), zlib.crc32(model.name.encode())]
    z = np.array([
        np.random.default_rng(np.random.SeedSequence(key, spawn_key=(int(i),)))
        .standard_normal(len(varying)) for i in idx
    ]).reshape(n, len(varying))
    out: dict[str, np.ndarray] = {}
    for j, p in enumerate(varying):
        centre = np.broadcast_to(np.asarray(medians.get(p.name, p.value), float), (n,))
        draw = centre * np.exp(sigma[p.name] * spread * z[:, j])
        out[p.name] = np.clip(draw, np.minimum(p.low, centre), np.maximum(p.high, centre))
    for name, value in medians.items():
        if name not in out:
            out[name] = np.broadcast_to(np.asarray(value, float), (n,)).copy()
    return out

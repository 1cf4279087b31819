"""Between-individual variability: log-normal parameter draws with explicit seeds."""

from __future__ import annotations

import zlib

import numpy as np

from ciksim.errors import DataError
from ciksim.model.model import Model


def sample_parameters(
    model: Model, n: int, seed: int, *, spread: float = 1.0
) -> dict[str, np.ndarray]:
    """Draw ``n`` individuals: each parameter with ``variability`` σ > 0 is log-normal with
    median = its value and log-SD = σ·``spread``, clipped to its plausible range.

    Individual ``i`` always gets the same draw for a given ``seed`` (its own stream from
    ``SeedSequence``), however many others are drawn with it. The stream is keyed by the
    model's name too, so draws for two models of the same individual are independent.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"donors: need a whole number >= 1, got {n!r}")
    if seed is None or int(seed) < 0:
        raise DataError("seed: give a whole number >= 0")
    varying = [p for p in model.parameters if p.variability > 0]
    streams = np.random.SeedSequence([int(seed), zlib.crc32(model.name.encode())]).spawn(int(n))
    z = np.array([np.random.default_rng(s).standard_normal(len(varying)) for s in streams])
    out: dict[str, np.ndarray] = {}
    for j, p in enumerate(varying):
        draw = p.value * np.exp(p.variability * spread * z[:, j])
        out[p.name] = np.clip(draw, p.low, p.high)
    return out

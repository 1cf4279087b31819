"""Between-individual variability: bounded (logit-normal) parameter draws with explicit seeds.

A parameter that varies between individuals is drawn from a logit-normal distribution on its
plausible range ``[low, high]``: on the log scale when the range is positive (rates, burdens,
half-lives), on the linear scale when it includes 0 (shares). Why logit-normal rather than a
clipped log-normal, a truncated normal or a scaled beta:

- clipping piles the mass beyond a bound onto the bound itself (a point mass of patients who
  all share one extreme value: they behave like a subgroup that does not exist);
- a truncated normal keeps a finite density at the bounds and moves the median;
- a scaled beta has no closed-form quantile, so one standard-normal draw per individual and
  parameter (the stream that makes trials chunk-independent) would need numerical inversion.

The logit-normal keeps the median exactly (the logit is monotone), has zero density at both
bounds, maps one standard-normal draw ``z`` monotonically to the parameter, and near the median
behaves like the log-normal it replaces: its width is set so that the local log-SD at the
median is the declared ``variability`` σ (for a linear-scale range, so that the local
relative SD is σ). With the transformed position of the median ``u0`` in (0, 1) and the
transformed range width ``w``, the logit-scale SD is ``σ / (w · u0 · (1 − u0))`` (log scale)
or ``σ · median / (w · u0 · (1 − u0))`` (linear scale).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import expit, logit

from ciksim.errors import DataError
from ciksim.model.declarations import Parameter
from ciksim.model.model import Model

#: A draw within this share of the (transformed) range width from a bound counts as "at the
#: bound" (target P11).
BOUND_TOLERANCE = 1e-3


def log_scaled(p: Parameter) -> bool:
    """True when a parameter's range is drawn on the log scale (positive range)."""
    return p.low > 0


def _scale(p: Parameter, x: np.ndarray) -> tuple[np.ndarray, float, float]:
    if log_scaled(p):
        return np.log(x), float(np.log(p.low)), float(np.log(p.high))
    return np.asarray(x, float), float(p.low), float(p.high)


def position_in_range(p: Parameter, x: np.ndarray) -> np.ndarray:
    """Where values lie in ``p``'s range on its sampling scale: 0 at ``low``, 1 at ``high``."""
    v, a, b = _scale(p, np.asarray(x, float))
    return (v - a) / (b - a)


def share_at_bounds(p: Parameter, x: np.ndarray, tol: float = BOUND_TOLERANCE) -> float:
    """Share of values within ``tol`` (of the range width, sampling scale) of either bound."""
    u = position_in_range(p, x)
    return float(np.mean((u <= tol) | (u >= 1 - tol)))


def bounded_draw(p: Parameter, median: np.ndarray, sigma: float, z: np.ndarray) -> np.ndarray:
    """Logit-normal values of ``p`` for standard-normal ``z`` (see the module docstring)."""
    median = np.asarray(median, float)
    orig = median
    if not p.high > p.low:
        raise DataError(f"parameters.{p.name}: its range [{p.low:g}, {p.high:g}] is empty, so "
                        "it cannot vary between individuals; set its variability to 0")
    outside = (median < p.low) | (median > p.high) | ~np.isfinite(median)
    if np.any(outside):
        bad = float(median[outside].flat[0]) if median.ndim else float(median)
        raise DataError(
            f"parameters.{p.name}: median {bad:g} lies outside its plausible range "
            f"[{p.low:g}, {p.high:g}]; give a value in the range (or widen the range in the "
            "parameter file)")
    at_bound = (median == p.low) | (median == p.high)
    # a median at a bound is the limit of the logit-normal: every individual at that bound
    # (a stand-in median keeps the arithmetic below finite; its draws are discarded)
    median = np.where(at_bound, np.sqrt(p.low * p.high) if log_scaled(p)
                      else (p.low + p.high) / 2, median)
    v0, a, b = _scale(p, median)
    w = b - a
    u0 = (v0 - a) / w
    local = sigma if log_scaled(p) else sigma * median
    s_logit = local / (w * u0 * (1 - u0))
    u = expit(logit(u0) + s_logit * z)
    v = a + w * u
    x = np.exp(v) if log_scaled(p) else v
    x = np.clip(x, p.low, p.high)  # guards rounding only: u is strictly inside (0, 1)
    return np.where(at_bound, orig, x)


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
    """Draw ``n`` individuals: each parameter with a variability σ > 0 is logit-normal on its
    plausible range with median = its value and local log-SD σ·``spread`` at the median.

    ``medians`` (a number, or one per individual) and ``variability`` override the model's
    values and σ (a scenario's population); a median outside the range is a ``DataError``,
    and a median at a bound gives every individual that bound (the distribution's limit).
    Individual ``i`` (``indices``, default 0..n-1) always gets the same draw for a given
    ``seed``: its stream is
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
        out[p.name] = bounded_draw(p, centre, sigma[p.name] * spread, z[:, j])
    for name, value in medians.items():
        if name not in out:
            out[name] = np.broadcast_to(np.asarray(value, float), (n,)).copy()
    return out

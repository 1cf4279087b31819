"""Exact random variates in numba, one xoshiro256** stream per individual.

Each patient (or donor) owns a 4-word state seeded from ``SeedSequence(seed,
spawn_key=(index,))`` (numpy's algorithm, here compiled: a trial seeds 100,000 streams in
milliseconds), so a patient's numbers do not depend on which chunk or worker simulates it.
The samplers are exact (inversion or rejection): binomial by inversion for small means and
BTRS (Hörmann 1993) otherwise; Poisson by inversion and PTRS (Hörmann 1993);
gamma by Marsaglia & Tsang (2000); negative binomial as a gamma-Poisson mixture.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_U53 = 1.0 / 9007199254740992.0  # 2**-53


# numpy's SeedSequence constants (hashmix / mix of Melissa O'Neill's seed_seq_fe)
_INIT_A = np.uint32(0x43B0D7E5)
_MULT_A = np.uint32(0x931E8875)
_INIT_B = np.uint32(0x8B51F9DD)
_MULT_B = np.uint32(0x58F38DED)
_MIX_L = np.uint32(0xCA01F9DD)
_MIX_R = np.uint32(0x4973F715)
_SHIFT = np.uint32(16)


def seed_states(seed: int, indices: np.ndarray) -> np.ndarray:
    """(n, 4) uint64 xoshiro states, one per index: ``SeedSequence(seed, spawn_key=(index,))
    .generate_state(4, uint64)``, computed in numba (bit-identical to numpy's, tested)."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    words = []
    while True:  # numpy's int -> uint32 words, least significant first
        words.append(seed & 0xFFFFFFFF)
        seed >>= 32
        if seed == 0:
            break
    words += [0] * max(0, 4 - len(words))  # a spawn key pads the entropy to the pool size
    idx = np.asarray(indices, dtype=np.int64)
    if np.any(idx < 0):
        raise ValueError("indices must be >= 0")
    states = np.empty((idx.size, 4), dtype=np.uint64)
    _seed_sequence_states(np.array(words, dtype=np.uint32), idx, states)
    states[~states.any(axis=1), 0] = 1  # xoshiro must not start from all zeros
    return states


@njit(cache=True)
def _hashmix(value, h):
    value = np.uint32(value ^ h[0])
    h[0] = np.uint32(h[0] * _MULT_A)
    value = np.uint32(value * h[0])
    return np.uint32(value ^ (value >> _SHIFT))


@njit(cache=True)
def _mix(x, y):
    r = np.uint32(np.uint32(_MIX_L * x) - np.uint32(_MIX_R * y))
    return np.uint32(r ^ (r >> _SHIFT))


@njit(cache=True)
def _seed_sequence_states(run, indices, out):
    """numpy's SeedSequence(run words, spawn_key=(index,)).generate_state(4, uint64)."""
    entropy = np.empty(run.size + 2, dtype=np.uint32)
    pool = np.empty(4, dtype=np.uint32)
    h = np.empty(1, dtype=np.uint32)
    for row in range(indices.size):
        idx = np.uint64(indices[row])
        m = run.size
        for j in range(m):
            entropy[j] = run[j]
        entropy[m] = np.uint32(idx & np.uint64(0xFFFFFFFF))
        m += 1
        if idx >> np.uint64(32):
            entropy[m] = np.uint32(idx >> np.uint64(32))
            m += 1
        h[0] = _INIT_A
        for i in range(4):
            pool[i] = _hashmix(entropy[i] if i < m else np.uint32(0), h)
        for src in range(4):
            for dst in range(4):
                if src != dst:
                    pool[dst] = _mix(pool[dst], _hashmix(pool[src], h))
        for src in range(4, m):
            for dst in range(4):
                pool[dst] = _mix(pool[dst], _hashmix(entropy[src], h))
        hb = _INIT_B
        low = np.uint64(0)
        for k in range(8):
            v = np.uint32(pool[k % 4] ^ hb)
            hb = np.uint32(hb * _MULT_B)
            v = np.uint32(v * hb)
            v = np.uint32(v ^ (v >> _SHIFT))
            if k % 2 == 0:
                low = np.uint64(v)
            else:
                out[row, k // 2] = low | (np.uint64(v) << np.uint64(32))


@njit(cache=True)
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True)
def next_u64(s):
    """xoshiro256** step on the 4-word state ``s`` (modified in place)."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(cache=True)
def uniform(s):
    """Uniform on [0, 1)."""
    return float(next_u64(s) >> np.uint64(11)) * _U53


@njit(cache=True)
def normal(s):
    """Standard normal (Marsaglia polar method)."""
    while True:
        u = 2.0 * uniform(s) - 1.0
        v = 2.0 * uniform(s) - 1.0
        r = u * u + v * v
        if 0.0 < r < 1.0:
            return u * math.sqrt(-2.0 * math.log(r) / r)


@njit(cache=True)
def _binomial_inversion(n, p, s):
    q = 1.0 - p
    ratio = p / q
    a = (n + 1.0) * ratio
    r = math.exp(n * math.log1p(-p))
    u = uniform(s)
    x = 0.0
    while u > r:
        u -= r
        x += 1.0
        if x > n:  # rounding left a sliver of mass: start again
            x = 0.0
            r = math.exp(n * math.log1p(-p))
            u = uniform(s)
            continue
        r *= a / x - ratio
    return x


@njit(cache=True)
def _binomial_btrs(n, p, s):
    spq = math.sqrt(n * p * (1.0 - p))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = math.log(p / (1.0 - p))
    m = math.floor((n + 1.0) * p)
    h = math.lgamma(m + 1.0) + math.lgamma(n - m + 1.0)
    while True:
        u = uniform(s) - 0.5
        v = uniform(s)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0.0 or k > n:
            continue
        if us >= 0.07 and v <= v_r:
            return k
        v = math.log(v * alpha / (a / (us * us) + b))
        if v <= h - math.lgamma(k + 1.0) - math.lgamma(n - k + 1.0) + (k - m) * lpq:
            return k


@njit(cache=True)
def binomial(n, p, s):
    """Binomial(n, p) for n up to ~1e15 (as float), exact."""
    if n <= 0.0 or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(n, 1.0 - p, s)
    if n * p < 10.0:
        return _binomial_inversion(n, p, s)
    return _binomial_btrs(n, p, s)


@njit(cache=True)
def poisson(lam, s):
    """Poisson(lam), exact (inversion below 10, PTRS above)."""
    if lam <= 0.0:
        return 0.0
    if lam < 10.0:
        enlam = math.exp(-lam)
        x = 0.0
        prod = 1.0
        while True:
            prod *= uniform(s)
            if prod > enlam:
                x += 1.0
            else:
                return x
    slam = math.sqrt(lam)
    loglam = math.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    while True:
        u = uniform(s) - 0.5
        v = uniform(s)
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43)
        if us >= 0.07 and v <= vr:
            return k
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if (math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)
                <= -lam + k * loglam - math.lgamma(k + 1.0)):
            return k


@njit(cache=True)
def gamma(shape, s):
    """Gamma(shape, scale 1), Marsaglia & Tsang."""
    if shape < 1.0:
        return gamma(shape + 1.0, s) * uniform(s) ** (1.0 / shape)
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = normal(s)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = uniform(s)
        if u < 1.0 - 0.0331 * x * x * x * x:
            return d * v
        if math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v


@njit(cache=True)
def negative_binomial(r, p, s):
    """Failures before the r-th success, success probability p (r may be huge)."""
    if r <= 0.0 or p >= 1.0:
        return 0.0
    return poisson(gamma(r, s) * (1.0 - p) / p, s)


@njit(cache=True)
def kendall_step(n, lam, mu, dt, s):
    """Exact linear birth-death transition of ``n`` cells over ``dt`` at constant rates.

    Each cell's lineage dies out with probability alpha, otherwise has a geometric size
    with parameter beta (Kendall 1948); n cells give Binomial(n, 1 - alpha) surviving
    lineages plus a negative-binomial number of extra cells.
    """
    if n <= 0.0:
        return 0.0
    if lam <= 0.0:  # pure death
        return binomial(n, math.exp(-mu * dt), s)
    r = lam - mu
    if abs(r * dt) < 1e-12:
        alpha = lam * dt / (1.0 + lam * dt)
        beta = alpha
    else:
        e = math.exp(r * dt)
        denom = lam * e - mu
        alpha = mu * (e - 1.0) / denom
        beta = lam * (e - 1.0) / denom
    survivors = binomial(n, 1.0 - alpha, s)
    if survivors == 0.0:
        return 0.0
    return survivors + negative_binomial(survivors, 1.0 - beta, s)


@njit(cache=True)
def kendall_batch(n, lam, mu, dt, states):
    """``kendall_step`` for every row: n, lam, mu of shape (m, k); states (m, 4)."""
    out = np.empty_like(n)
    for i in range(n.shape[0]):
        for j in range(n.shape[1]):
            out[i, j] = kendall_step(n[i, j], lam[i, j], mu[i, j], dt, states[i])
    return out


@njit(cache=True)
def binomial_batch(n, p, states):
    """Binomial thinning of every entry of n (m, k) with probabilities p (m, k)."""
    out = np.empty_like(n)
    for i in range(n.shape[0]):
        for j in range(n.shape[1]):
            out[i, j] = binomial(n[i, j], p[i, j], states[i])
    return out


@njit(cache=True)
def transfer_step(n, nu, src, dst, order, dt, s):
    """Transfers of one individual's cells between discrete species over ``dt``.

    ``n`` (k,) counts, changed in place; ``nu`` (T,) per-cell rates of the transfers, which
    move a cell from column ``src[j]`` to ``dst[j]``; ``order`` the source columns in the
    order they are processed. Each source loses Binomial(n, 1 - exp(-sum(nu) dt)) cells
    (cells that arrived earlier in the same call included), split among its destinations
    multinomially by rate (sequential binomials). No numbers are drawn where nothing moves.
    """
    for c in order:
        total = 0.0
        last = -1
        for j in range(src.size):
            if src[j] == c and nu[j] > 0.0:
                total += nu[j]
                last = j
        if last < 0 or n[c] <= 0.0:
            continue
        moved = binomial(n[c], -math.expm1(-total * dt), s)
        if moved == 0.0:
            continue
        n[c] -= moved
        rest = total
        for j in range(last + 1):
            if src[j] != c or nu[j] <= 0.0:
                continue
            if j == last:
                part = moved
            else:
                part = binomial(moved, nu[j] / rest, s)
                rest -= nu[j]
            n[dst[j]] += part
            moved -= part
            if moved == 0.0:
                break


@njit(cache=True)
def transfer_batch(n, nu, src, dst, order, dt, states):
    """``transfer_step`` for every row: n (m, k) in place, nu (m, T), states (m, 4)."""
    for i in range(n.shape[0]):
        transfer_step(n[i], nu[i], src, dst, order, dt, states[i])

"""Adaptive Dormand-Prince 5(4) integration of every individual, written for a model.

:func:`dopri_source` writes the integrator for a model's number of species ``NS`` around
the model's right-hand side ``_f(t, y, _p, _q)`` (the derivatives of one individual as a
tuple) and ``_pre(_p, _q)`` (parameter-only terms, once per individual), which
``ciksim.engines.compiled`` writes before it. Every per-species line is written out.

Each individual takes its own adaptive steps, landing exactly on the output times; its last
proposed step carries over to the next segment. One step of one individual is a long chain
of dependent arithmetic (each stage needs the previous one), so a thread advances
``LANES`` individuals at once, stage by stage, and the processor overlaps their
independent chains; a lane whose individual is done takes the next one of its group.
Groups of individuals run in parallel. An individual's arithmetic does not depend on its
lane or neighbours, so a batch gives exactly the numbers of its single runs.
"""

from __future__ import annotations

#: Dormand-Prince 5(4): nodes, stage coefficients, 5th-order weights, error weights.
C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
A = ((), (1 / 5,), (3 / 40, 9 / 40), (44 / 45, -56 / 15, 32 / 9),
     (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
     (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656))
B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)
E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)
#: Individuals advanced together by one thread, and individuals per parallel group.
LANES = 4
GROUP = 64

_TEMPLATE = """
@njit(parallel=True, cache=True)
def integrate(Y, P, H, t0, t1, tout, OUT, rtol, atol):
    n = Y.shape[0]
    failed = np.zeros(n, dtype=np.int64)
    for g in prange((n + GROUP - 1) // GROUP):
        nxt = g * GROUP
        hi = min(n, nxt + GROUP)
        I = np.full(LANES, -1, dtype=np.int64)
        J = np.zeros(LANES, dtype=np.int64)
        S = np.zeros(LANES, dtype=np.int64)
        T = np.zeros(LANES)
        HC = np.zeros(LANES)
        HP = np.zeros(LANES)
        TG = np.zeros(LANES)
        Q = np.empty((LANES, NQ))
        YL = np.empty((LANES, NS))
        YN = np.empty((LANES, NS))
        K1 = np.empty((LANES, NS))
        K2 = np.empty((LANES, NS))
        K3 = np.empty((LANES, NS))
        K4 = np.empty((LANES, NS))
        K5 = np.empty((LANES, NS))
        K6 = np.empty((LANES, NS))
        K7 = np.empty((LANES, NS))
        live = 0
        while True:
            for l in range(LANES):
                while I[l] < 0 and nxt < hi:
                    i = nxt
                    nxt += 1
                    _pre(P[i], Q[l])
{load}
                    k = _f(t0, {row_yl}, P[i], Q[l])
{k1_from_k}
                    T[l] = t0
                    HC[l] = H[i] if H[i] > 0.0 else (t1 - t0) * 1e-3
                    J[l] = 0
                    S[l] = 0
                    while J[l] < tout.size and tout[J[l]] <= t0 + 1e-12:
{record}
                        J[l] += 1
                    if t0 < t1 - 1e-12:
                        I[l] = i
                        live += 1
                    else:
                        H[i] = HC[l]
            if live == 0:
                break
            for l in range(LANES):
                if I[l] >= 0:
                    TG[l] = tout[J[l]] if J[l] < tout.size else t1
                    HP[l] = HC[l]
                    if HC[l] > TG[l] - T[l]:
                        HC[l] = TG[l] - T[l]
                    S[l] += 1
{stages}
            for l in range(LANES):
                if I[l] >= 0:
                    i = I[l]
                    h = HC[l]
{error}
                    err = math.sqrt(err / NS)
                    if err <= 1.0 or h < 1e-14:
                        T[l] = T[l] + h
{accept}
                        if abs(T[l] - TG[l]) < 1e-12 and J[l] < tout.size:
                            T[l] = TG[l]
{record_deep}
                            J[l] += 1
                        factor = 10.0 if err == 0.0 else min(10.0, 0.9 * err ** -0.2)
                        HC[l] = max(h * factor, HP[l]) if h < HP[l] else h * factor
                    else:
                        HC[l] = h * max(0.2, 0.9 * err ** -0.2)
                    if not (T[l] < t1 - 1e-12 and S[l] < 1_000_000):
{store}
                        H[i] = HC[l]
                        if S[l] >= 1_000_000:
                            failed[i] = 1
                        I[l] = -1
                        live -= 1
    return failed
"""


def dopri_source(ns: int) -> str:
    """Source of ``integrate(Y, P, H, t0, t1, tout, OUT, rtol, atol)`` for ``ns`` species.

    ``Y`` (n, ns) is advanced from ``t0`` to ``t1`` in place; ``OUT[j, i, :]`` receives
    individual ``i`` at ``tout[j]``; ``H`` (n) holds each individual's step size (0: none
    yet), updated; ``atol`` (n, ns) the absolute tolerances. Returns 1 for individuals
    that did not finish within a million steps.
    """
    species = range(ns)

    def lines(template: str, indent: int) -> str:
        return "\n".join(" " * indent + template.format(s=s) for s in species)

    def row(items: list[str]) -> str:
        return "(" + ", ".join(items) + ",)"

    def combo(weights: tuple[float, ...], s: int) -> str:
        terms = " + ".join(f"{w!r} * K{j + 1}[l, {s}]" for j, w in enumerate(weights) if w)
        return f"YL[l, {s}] + h * ({terms})"

    stages = []
    for k in range(1, 7):
        body = [" " * 16 + "if I[l] >= 0:", " " * 20 + "h = HC[l]"]
        if k < 6:
            arg = row([combo(A[k], s) for s in species])
            body.append(" " * 20 + f"k = _f(T[l] + {C[k]!r} * h, {arg}, P[I[l]], Q[l])")
            body += [" " * 20 + f"K{k + 1}[l, {s}] = k[{s}]" for s in species]
        else:
            body += [" " * 20 + f"YN[l, {s}] = {combo(B, s)}" for s in species]
            arg = row([f"YN[l, {s}]" for s in species])
            body.append(" " * 20 + f"k = _f(T[l] + h, {arg}, P[I[l]], Q[l])")
            body += [" " * 20 + f"K7[l, {s}] = k[{s}]" for s in species]
        stages += [" " * 12 + "for l in range(LANES):", *body]
    error = []
    for s in species:
        e = " + ".join(f"{w!r} * K{j + 1}[l, {s}]" for j, w in enumerate(E) if w)
        error.append(f"sc = atol[i, {s}] + rtol * max(abs(YL[l, {s}]), abs(YN[l, {s}]))")
        error.append(f"err {'=' if s == 0 else '+='} (h * ({e}) / sc) ** 2")
    return _TEMPLATE.format(
        load=lines("YL[l, {s}] = Y[i, {s}]", 20),
        row_yl=row([f"YL[l, {s}]" for s in species]),
        k1_from_k=lines("K1[l, {s}] = k[{s}]", 20),
        record=lines("OUT[J[l], i, {s}] = YL[l, {s}]", 24),
        stages="\n".join(stages),
        error="\n".join(" " * 20 + x for x in error),
        accept=lines("YL[l, {s}] = YN[l, {s}]", 24) + "\n" + lines("K1[l, {s}] = K7[l, {s}]", 24),
        record_deep=lines("OUT[J[l], i, {s}] = YL[l, {s}]", 28),
        store=lines("Y[i, {s}] = YL[l, {s}]", 24),
    ).replace("LANES", str(LANES)).replace("GROUP", str(GROUP))

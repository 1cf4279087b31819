"""Adaptive Dormand-Prince 5(4) integration of every individual, written for a model.

:func:`dopri_source` writes the integrator for a model's number of species ``NS`` around
the model's right-hand side ``_f(t, y, _w, _l)`` (the derivatives of the individual in lane
``_l`` as a tuple) and ``_pre(_p, _q)`` (parameter-only terms, once per individual), which
``ciksim.engines.compiled`` writes before it. Every per-species line is written out.

Each individual takes its own adaptive steps, landing exactly on the output times; its last
proposed step carries over to the next segment. One step of one individual is a long chain
of dependent arithmetic (each stage needs the previous one), so a thread advances
``LANES`` individuals at once, stage by stage: every per-lane number (time, step, state,
stages, parameters and parameter-only terms) lives in one flat work array at fixed offsets
(``W[row * LANES + lane]``), so a stage is a branch-free loop over the lanes that the
compiler turns into vector instructions (a lane without an individual takes a zero step).
A lane whose individual is done takes the next one of its group.
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
#: ``LANES`` is the width of one AVX-512 vector of float64 (512 bits / 64 = 8), the machine
#: the engine was tuned on (x86_64 with avx512f): each stage loop over the lanes becomes one
#: vector instruction per operation. On an AVX2 machine (4 float64 per 256-bit vector) LLVM
#: splits the same loop into two vector instructions, so it stays vectorised, with twice
#: the instructions per stage; not measured there. The numbers never depend on ``LANES``:
#: an individual's arithmetic is the same in every lane (tested: batch equals single runs).
LANES = 8
GROUP = 64


def rows(ns: int) -> dict[str, int]:
    """First row of each per-lane quantity in the work array, for ``ns`` species; the
    parameters follow the last (``"P"``), then the parameter-only terms."""
    out = {"T": 0, "HC": 1, "YL": 2, "YN": 2 + ns}
    out.update({f"K{k}": 2 + (k + 1) * ns for k in range(1, 8)})
    out["P"] = 2 + 9 * ns
    return out


def slot(row: int, lane: str = "l", array: str = "W") -> str:
    """The element of ``row`` for lane ``lane`` in the work array ``array`` (names in the
    generated code)."""
    return f"{array}[{row * LANES} + {lane}]"


_TEMPLATE = """
@njit(parallel=True, cache=True, error_model="numpy", fastmath={{"contract"}})
def integrate(Y, P, H, t0, t1, tout, OUT, rtol, atol):
    n = Y.shape[0]
    failed = np.zeros(n, dtype=np.int64)
    for g in prange((n + GROUP - 1) // GROUP):
        nxt = g * GROUP
        hi = min(n, nxt + GROUP)
        I = np.full(LANES, -1, dtype=np.int64)
        J = np.zeros(LANES, dtype=np.int64)
        S = np.zeros(LANES, dtype=np.int64)
        HP = np.zeros(LANES)
        TG = np.zeros(LANES)
        Q1 = np.empty(NQ)
        W = np.zeros(ROWS * LANES)
        live = 0
        while True:
            for l in range(LANES):
                while I[l] < 0 and nxt < hi:
                    i = nxt
                    nxt += 1
                    _pre(P[i], Q1)
                    for m in range(NP):
                        W[(PROW + m) * LANES + l] = P[i, m]
                    for m in range(NQ):
                        W[(QROW + m) * LANES + l] = Q1[m]
{load}
                    k = _f(t0, {row_yl}, W, l)
{k1_from_k}
                    {t} = t0
                    {hc} = H[i] if H[i] > 0.0 else (t1 - t0) * 1e-3
                    J[l] = 0
                    S[l] = 0
                    while J[l] < tout.size and tout[J[l]] <= t0 + 1e-12:
{record}
                        J[l] += 1
                    if t0 < t1 - 1e-12:
                        I[l] = i
                        live += 1
                    else:
                        H[i] = {hc}
            if live == 0:
                break
            for l in range(LANES):
                if I[l] >= 0:
                    TG[l] = tout[J[l]] if J[l] < tout.size else t1
                    HP[l] = {hc}
                    if {hc} > TG[l] - {t}:
                        {hc} = TG[l] - {t}
                    S[l] += 1
                else:
                    {hc} = 0.0
{stages}
            for l in range(LANES):
                if I[l] >= 0:
                    i = I[l]
                    h = {hc}
{error}
                    err = err / NS
                    if err <= 1.0 or h < 1e-14:
                        {t} = {t} + h
{accept}
                        if abs({t} - TG[l]) < 1e-12 and J[l] < tout.size:
                            {t} = TG[l]
{record_deep}
                            J[l] += 1
                        factor = 10.0 if err == 0.0 else min(10.0, 0.9 * err ** -0.1)
                        {hc} = max(h * factor, HP[l]) if h < HP[l] else h * factor
                    else:
                        {hc} = h * max(0.2, 0.9 * err ** -0.1)
                    if not ({t} < t1 - 1e-12 and S[l] < 1_000_000):
{store}
                        H[i] = {hc}
                        if S[l] >= 1_000_000:
                            failed[i] = 1
                        I[l] = -1
                        live -= 1
    return failed
"""


def dopri_source(ns: int, n_params: int) -> str:
    """Source of ``integrate(Y, P, H, t0, t1, tout, OUT, rtol, atol)`` for ``ns`` species
    and ``n_params`` parameters (the generated module defines ``NQ``, the number of
    parameter-only terms).

    ``Y`` (n, ns) is advanced from ``t0`` to ``t1`` in place; ``OUT[j, i, :]`` receives
    individual ``i`` at ``tout[j]``; ``H`` (n) holds each individual's step size (0: none
    yet), updated; ``atol`` (n, ns) the absolute tolerances. Returns 1 for individuals
    that did not finish within a million steps. The error norm is compared squared (the
    step factor ``0.9 * err ** -0.2`` of the root-mean-square error is the same as ``0.9
    * (err ** 2) ** -0.1``, without a square root).
    """
    r = rows(ns)
    species = range(ns)

    def at(name: str, s: int) -> str:
        return slot(r[name] + s)

    def lines(template: str, indent: int) -> str:
        return "\n".join(" " * indent + template.format(
            **{k: at(k, s) for k in ("YL", "YN", "K1", "K7")}, s=s) for s in species)

    def row(items: list[str]) -> str:
        return "(" + ", ".join(items) + ",)"

    def combo(weights: tuple[float, ...], s: int) -> str:
        terms = " + ".join(f"{w!r} * {at(f'K{j + 1}', s)}" for j, w in enumerate(weights)
                           if w)
        return f"{at('YL', s)} + h * ({terms})"

    t, hc = slot(r["T"]), slot(r["HC"])
    stages = []
    for k in range(1, 7):
        body = [" " * 16 + f"h = {hc}"]
        if k < 6:
            arg = row([combo(A[k], s) for s in species])
            body.append(" " * 16 + f"k = _f({t} + {C[k]!r} * h, {arg}, W, l)")
            body += [" " * 16 + f"{at(f'K{k + 1}', s)} = k[{s}]" for s in species]
        else:
            body += [" " * 16 + f"{at('YN', s)} = {combo(B, s)}" for s in species]
            arg = row([at("YN", s) for s in species])
            body.append(" " * 16 + f"k = _f({t} + h, {arg}, W, l)")
            body += [" " * 16 + f"{at('K7', s)} = k[{s}]" for s in species]
        stages += [" " * 12 + "for l in range(LANES):", *body]
    error = []
    for s in species:
        e = " + ".join(f"{w!r} * {at(f'K{j + 1}', s)}" for j, w in enumerate(E) if w)
        error.append(f"sc = atol[i, {s}] + rtol * max(abs({at('YL', s)}), abs({at('YN', s)}))")
        error.append(f"err {'=' if s == 0 else '+='} (h * ({e}) / sc) ** 2")
    source = _TEMPLATE.format(
        t=t, hc=hc,
        load=lines("{YL} = Y[i, {s}]", 20),
        row_yl=row([at("YL", s) for s in species]),
        k1_from_k=lines("{K1} = k[{s}]", 20),
        record=lines("OUT[J[l], i, {s}] = {YL}", 24),
        stages="\n".join(stages),
        error="\n".join(" " * 20 + x for x in error),
        accept=lines("{YL} = {YN}", 24) + "\n" + lines("{K1} = {K7}", 24),
        record_deep=lines("OUT[J[l], i, {s}] = {YL}", 28),
        store=lines("Y[i, {s}] = {YL}", 24),
    )
    for name, value in (("LANES", LANES), ("GROUP", GROUP), ("ROWS", f"({r['P'] + n_params} + NQ)"),
                        ("PROW", r["P"]), ("QROW", r["P"] + n_params), ("NP", n_params)):
        source = source.replace(name, str(value))
    return source

# ruff: noqa: F821
"""Adaptive Dormand-Prince 5(4) integration of every individual (source text, not imported).

``ciksim.engines.compiled`` copies this file's text after the functions ``_pre``
(parameter-only assignments, once per individual) and ``_rhs`` it generates from a model
(names ruff cannot see here), so all are compiled together by numba and cached on disk.
Each individual takes its own steps, in parallel over individuals, landing exactly on the
output times.
"""


@njit(parallel=True, cache=True)
def integrate(Y, P, t0, t1, tout, OUT, rtol, atol):
    n, ns = Y.shape
    failed = np.zeros(n, dtype=np.int64)
    for i in prange(n):
        y = Y[i].copy()
        p = P[i]
        q = np.empty(NQ)
        _pre(p, q)
        k1 = np.empty(ns)
        k2 = np.empty(ns)
        k3 = np.empty(ns)
        k4 = np.empty(ns)
        k5 = np.empty(ns)
        k6 = np.empty(ns)
        k7 = np.empty(ns)
        yt = np.empty(ns)
        yn = np.empty(ns)
        t = t0
        _rhs(t, y, p, q, k1)
        h = (t1 - t0) * 1e-3
        j = 0
        while j < tout.size and tout[j] <= t + 1e-12:
            for s in range(ns):
                OUT[j, i, s] = y[s]
            j += 1
        steps = 0
        while t < t1 - 1e-12 and steps < 1_000_000:
            steps += 1
            target = tout[j] if j < tout.size else t1
            if h > target - t:
                h = target - t
            for s in range(ns):
                yt[s] = y[s] + h * (0.2 * k1[s])
            _rhs(t + 0.2 * h, yt, p, q, k2)
            for s in range(ns):
                yt[s] = y[s] + h * (3 / 40 * k1[s] + 9 / 40 * k2[s])
            _rhs(t + 0.3 * h, yt, p, q, k3)
            for s in range(ns):
                yt[s] = y[s] + h * (44 / 45 * k1[s] - 56 / 15 * k2[s] + 32 / 9 * k3[s])
            _rhs(t + 0.8 * h, yt, p, q, k4)
            for s in range(ns):
                yt[s] = y[s] + h * (19372 / 6561 * k1[s] - 25360 / 2187 * k2[s]
                                    + 64448 / 6561 * k3[s] - 212 / 729 * k4[s])
            _rhs(t + 8 / 9 * h, yt, p, q, k5)
            for s in range(ns):
                yt[s] = y[s] + h * (9017 / 3168 * k1[s] - 355 / 33 * k2[s]
                                    + 46732 / 5247 * k3[s] + 49 / 176 * k4[s]
                                    - 5103 / 18656 * k5[s])
            _rhs(t + h, yt, p, q, k6)
            for s in range(ns):
                yn[s] = y[s] + h * (35 / 384 * k1[s] + 500 / 1113 * k3[s] + 125 / 192 * k4[s]
                                    - 2187 / 6784 * k5[s] + 11 / 84 * k6[s])
            _rhs(t + h, yn, p, q, k7)
            err = 0.0
            for s in range(ns):
                e = h * (71 / 57600 * k1[s] - 71 / 16695 * k3[s] + 71 / 1920 * k4[s]
                         - 17253 / 339200 * k5[s] + 22 / 525 * k6[s] - 1 / 40 * k7[s])
                sc = atol[i, s] + rtol * max(abs(y[s]), abs(yn[s]))
                err += (e / sc) ** 2
            err = math.sqrt(err / ns)
            if err <= 1.0 or h < 1e-14:
                t = t + h
                for s in range(ns):
                    y[s] = yn[s]
                    k1[s] = k7[s]
                if abs(t - target) < 1e-12 and j < tout.size:
                    t = target
                    for s in range(ns):
                        OUT[j, i, s] = y[s]
                    j += 1
                factor = 10.0 if err == 0.0 else min(10.0, 0.9 * err ** -0.2)
            else:
                factor = max(0.2, 0.9 * err ** -0.2)
            h = h * factor
        for s in range(ns):
            Y[i, s] = y[s]
        if steps >= 1_000_000:
            failed[i] = 1
    return failed

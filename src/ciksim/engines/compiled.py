"""Compiled per-individual integration (numba), generated from a model's declaration.

The right-hand side is generated as scalar code for one individual and compiled with numba;
each individual is integrated with its own adaptive Dormand-Prince 5(4) steps (no step size
shared across a batch), in parallel over individuals, landing exactly on the output times.
Used by ``simulate(..., settings=SolverSettings(method="compiled"))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numba import njit, prange

if TYPE_CHECKING:
    from ciksim.model import Model


def _function_name(model: Model) -> str:
    return "ciksim_rhs_" + "".join(c if c.isalnum() else "_" for c in model.name)


def scalar_source(model: Model) -> str:
    """Python source of ``rhs(t, y, p, dy)`` for one individual."""
    lines = [f"def {_function_name(model)}(t, y, p, dy):"]
    lines += [f"    {q.name} = p[{i}]" for i, q in enumerate(model.parameters)]
    lines += [f"    {s.name} = y[{i}]" for i, s in enumerate(model.species)]
    lines += [f"    {a.name} = {model.expression(a.name).scalar()}" for a in model.assignments]
    lines += [f"    {pr.name} = {model.expression(pr.name).scalar()}" for pr in model.processes]
    for i, s in enumerate(model.species):
        terms = [f"({float(pr.changes[s.name])!r}) * {pr.name}" for pr in model.processes
                 if s.name in pr.changes]
        lines.append(f"    dy[{i}] = {' + '.join(terms) if terms else '0.0'}")
    return "\n".join(lines) + "\n"


_COMPILED: dict[int, tuple[Model, Callable[..., None]]] = {}


def compiled_rhs(model: Model) -> Callable[..., None]:
    """The numba-compiled scalar right-hand side (compiled once per model object)."""
    hit = _COMPILED.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    namespace: dict[str, object] = {"math": math, "__name__": __name__}
    exec(compile(scalar_source(model), f"<ciksim scalar {model.name}>", "exec"), namespace)
    fn = njit(namespace[_function_name(model)])
    _COMPILED[id(model)] = (model, fn)
    return fn


# Dormand-Prince 5(4) coefficients
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)


@njit(parallel=True, cache=True)
def _integrate(rhs, Y, P, t0, t1, tout, OUT, rtol, atol):  # pragma: no cover - numba
    n, ns = Y.shape
    failed = np.zeros(n, dtype=np.int64)
    for i in prange(n):
        y = Y[i].copy()
        p = P[i]
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
        rhs(t, y, p, k1)
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
            rhs(t + 0.2 * h, yt, p, k2)
            for s in range(ns):
                yt[s] = y[s] + h * (3 / 40 * k1[s] + 9 / 40 * k2[s])
            rhs(t + 0.3 * h, yt, p, k3)
            for s in range(ns):
                yt[s] = y[s] + h * (44 / 45 * k1[s] - 56 / 15 * k2[s] + 32 / 9 * k3[s])
            rhs(t + 0.8 * h, yt, p, k4)
            for s in range(ns):
                yt[s] = y[s] + h * (19372 / 6561 * k1[s] - 25360 / 2187 * k2[s]
                                    + 64448 / 6561 * k3[s] - 212 / 729 * k4[s])
            rhs(t + 8 / 9 * h, yt, p, k5)
            for s in range(ns):
                yt[s] = y[s] + h * (9017 / 3168 * k1[s] - 355 / 33 * k2[s]
                                    + 46732 / 5247 * k3[s] + 49 / 176 * k4[s]
                                    - 5103 / 18656 * k5[s])
            rhs(t + h, yt, p, k6)
            for s in range(ns):
                yn[s] = y[s] + h * (35 / 384 * k1[s] + 500 / 1113 * k3[s] + 125 / 192 * k4[s]
                                    - 2187 / 6784 * k5[s] + 11 / 84 * k6[s])
            rhs(t + h, yn, p, k7)
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


def integrate_segment(model: Model, y: np.ndarray, pmat: np.ndarray, t0: float, t1: float,
                      tout: np.ndarray, rtol: float, atol: np.ndarray) -> np.ndarray:
    """Advance ``y`` (n_species, n) from t0 to t1 in place; returns outputs (k, n_species, n).

    ``atol`` is (n_species, n): each individual's own absolute tolerances.
    """
    Y = np.ascontiguousarray(y.T)
    P = np.ascontiguousarray(pmat.T)
    out = np.empty((tout.size, Y.shape[0], Y.shape[1]))
    failed = _integrate(compiled_rhs(model), Y, P, float(t0), float(t1),
                        np.ascontiguousarray(tout, dtype=float), out, float(rtol),
                        np.ascontiguousarray(atol.T, dtype=float))
    if failed.any():
        from ciksim.errors import CikError

        raise CikError(f"compiled integration did not finish for {int(failed.sum())} "
                       "individual(s); try method='LSODA'")
    y[:] = Y.T
    return np.transpose(out, (0, 2, 1))

"""Compiled per-individual integration (numba), generated from a model's declaration.

The right-hand side is generated as scalar code for one individual, with every term that
depends on parameters only computed once per individual (``_pre``), and compiled with numba
together with the Dormand-Prince 5(4) integrator that ``_ode_loop.dopri_source`` writes for
the model's species: each individual is integrated with its own adaptive steps (no step size
shared across a batch), in parallel over individuals, landing exactly on the output times.
The generated module is written to the code cache (``ciksim.engines.codecache``), so numba
compiles it once per machine. Used by ``simulate(...,
settings=SolverSettings(method="compiled"))``.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ciksim.engines._ode_loop import dopri_source, rows, slot
from ciksim.engines.codecache import load_generated
from ciksim.engines.scalar import (
    ScalarWriter,
    hoist_constant_terms,
    pre_source,
    static_assignments,
)
from ciksim.engines.threads import KERNEL_LOCK

if TYPE_CHECKING:
    from ciksim.model import Model

_JIT = "@njit(cache=True)"
_INLINE = ('@njit(cache=True, inline="always", error_model="numpy", '
           'fastmath={"contract"})')


def scalar_source(model: Model) -> str:
    """Python source of ``_pre(_p, _q)`` (parameter-only assignments and terms, once per
    individual) and ``_f(t, _y, _w, _l)``, the derivatives of the individual in lane ``_l``
    of the integrator's work array ``_w`` (``_ode_loop.rows``) as a tuple."""
    static = {name: i for i, name in enumerate(static_assignments(model))}
    names = [pr.name for pr in model.processes] + [a.name for a in model.assignments
                                                    if a.name not in static]
    rewritten, terms = hoist_constant_terms(model, names, static, reciprocals=True)
    inner = {**static, **{name: len(static) + k for k, name in enumerate(terms)}}
    w = ScalarWriter(model, inner, rewritten)
    lines = [f"NS = {len(model.species)}", f"NQ = {max(len(inner), 1)}", "", ""]
    lines += pre_source(model, static, _JIT, terms)
    lines += ["", "", _INLINE, "def _f(t, _y, _w, _l):"]
    symbols: set[str] = set()
    for pr in model.processes:
        symbols |= rewritten[pr.name].symbols
    first = rows(len(model.species))["P"]
    n_params = len(model.parameters)
    lines += w.prelude(symbols, lambda i: slot(first + i, "_l", "_w"),
                       lambda i: slot(first + n_params + i, "_l", "_w"))
    lines += [f"    {pr.name} = {rewritten[pr.name].scalar()}" for pr in model.processes]
    derivs = []
    for s in model.species:
        terms_s = [f"({float(pr.changes[s.name])!r}) * {pr.name}" for pr in model.processes
                   if s.name in pr.changes]
        derivs.append(f"({' + '.join(terms_s)}) + 0.0" if terms_s else "0.0")
    lines.append(f"    return ({', '.join(derivs)},)")
    return "\n".join(lines) + "\n"


_COMPILED: dict[int, tuple[Model, ModuleType]] = {}


def compiled_module(model: Model) -> ModuleType:
    """The generated module (``_f`` and ``integrate``) of a model, loaded once per object."""
    hit = _COMPILED.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    header = "import math\n\nimport numpy as np\nfrom numba import njit, prange\n\n\n"
    source = (header + scalar_source(model) + "\n"
              + dopri_source(len(model.species), len(model.parameters)))
    module = load_generated("ode", source)
    _COMPILED[id(model)] = (model, module)
    return module


def integrate_segment(model: Model, y: np.ndarray, pmat: np.ndarray, t0: float, t1: float,
                      tout: np.ndarray, rtol: float, atol: np.ndarray, h: np.ndarray
                      ) -> np.ndarray:
    """Advance ``y`` (n_species, n) from t0 to t1 in place; returns outputs (k, n_species, n).

    ``atol`` is (n_species, n): each individual's own absolute tolerances; ``h`` (n) each
    individual's step size (0 before its first step), updated in place for the next
    segment.
    """
    Y = np.ascontiguousarray(y.T)
    P = np.ascontiguousarray(pmat.T)
    out = np.empty((tout.size, Y.shape[0], Y.shape[1]))
    integrate = compiled_module(model).integrate
    with KERNEL_LOCK:
        failed = integrate(Y, P, h, float(t0), float(t1),
                           np.ascontiguousarray(tout, dtype=float), out, float(rtol),
                           np.ascontiguousarray(atol.T, dtype=float))
    if failed.any():
        from ciksim.errors import CikError

        raise CikError(f"compiled integration did not finish for {int(failed.sum())} "
                       "individual(s); try method='LSODA'")
    y[:] = Y.T
    return np.transpose(out, (0, 2, 1))

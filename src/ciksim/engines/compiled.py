"""Compiled per-individual integration (numba), generated from a model's declaration.

The right-hand side is generated as scalar code for one individual and compiled with numba
together with the integrator of ``_ode_loop.py``: each individual is integrated with its own
adaptive Dormand-Prince 5(4) steps (no step size shared across a batch), in parallel over
individuals, landing exactly on the output times. The generated module is written to the
code cache (``ciksim.engines.codecache``), so numba compiles it once per machine.
Used by ``simulate(..., settings=SolverSettings(method="compiled"))``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ciksim.engines.codecache import load_generated
from ciksim.engines.scalar import ScalarWriter, pre_source, static_assignments
from ciksim.engines.threads import KERNEL_LOCK

if TYPE_CHECKING:
    from ciksim.model import Model

_LOOP = Path(__file__).with_name("_ode_loop.py")
_JIT = "@njit(cache=True)"


def scalar_source(model: Model) -> str:
    """Python source of ``_pre(_p, _q)`` (parameter-only assignments, once per individual)
    and ``_rhs(t, _y, _p, _q, _dy)`` for one individual."""
    static = {name: i for i, name in enumerate(static_assignments(model))}
    lines = [f"NQ = {max(len(static), 1)}", "", ""]
    lines += pre_source(model, static, _JIT)
    lines += ["", "", _JIT, "def _rhs(t, _y, _p, _q, _dy):"]
    symbols: set[str] = set()
    for pr in model.processes:
        symbols |= model.expression(pr.name).symbols
    lines += ScalarWriter(model, static).prelude(symbols)
    lines += [f"    {pr.name} = {model.expression(pr.name).scalar()}" for pr in model.processes]
    for i, s in enumerate(model.species):
        terms = [f"({float(pr.changes[s.name])!r}) * {pr.name}" for pr in model.processes
                 if s.name in pr.changes]
        lines.append(f"    _dy[{i}] = {' + '.join(terms) if terms else '0.0'}")
    return "\n".join(lines) + "\n"


_COMPILED: dict[int, tuple[Model, ModuleType]] = {}


def compiled_module(model: Model) -> ModuleType:
    """The generated module (``_rhs`` and ``integrate``) of a model, loaded once per object."""
    hit = _COMPILED.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    header = "import math\n\nimport numpy as np\nfrom numba import njit, prange\n\n\n"
    source = header + scalar_source(model) + "\n\n" + _LOOP.read_text(encoding="utf-8")
    module = load_generated("ode", source)
    _COMPILED[id(model)] = (model, module)
    return module


def integrate_segment(model: Model, y: np.ndarray, pmat: np.ndarray, t0: float, t1: float,
                      tout: np.ndarray, rtol: float, atol: np.ndarray) -> np.ndarray:
    """Advance ``y`` (n_species, n) from t0 to t1 in place; returns outputs (k, n_species, n).

    ``atol`` is (n_species, n): each individual's own absolute tolerances.
    """
    Y = np.ascontiguousarray(y.T)
    P = np.ascontiguousarray(pmat.T)
    out = np.empty((tout.size, Y.shape[0], Y.shape[1]))
    integrate = compiled_module(model).integrate
    with KERNEL_LOCK:
        failed = integrate(Y, P, float(t0), float(t1), np.ascontiguousarray(tout, dtype=float),
                           out, float(rtol), np.ascontiguousarray(atol.T, dtype=float))
    if failed.any():
        from ciksim.errors import CikError

        raise CikError(f"compiled integration did not finish for {int(failed.sum())} "
                       "individual(s); try method='LSODA'")
    y[:] = Y.T
    return np.transpose(out, (0, 2, 1))

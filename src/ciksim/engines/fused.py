"""Compiled stochastic engine: the whole per-individual step loop in one numba function.

Generated from the model's declaration (like the compiled ODE engine) and compiled together
with the generic loop of ``_fused_loop.py``: deterministic RK4 half steps, rates at the step
midpoint, transfers, exact Kendall birth-death steps, protocol doses, threshold crossing,
extinction, and stopping once an individual's fate is settled, in parallel over individuals.
Assignments that depend on parameters only are computed once per individual; each step
evaluates only the quantities the step needs (derivatives of the deterministic species, the
rates of the stochastic processes, the watched and tracked variables).

It repeats the reference engine's arithmetic and draws, individual by individual, from the
same streams, so outcomes agree with ``engine="reference"``: bit for bit where both evaluate
the same operations (numpy's vectorised ``exp``/``log``/``**`` may differ from the scalar
ones in the last bit, which can shift a time by ~1e-15 or, rarely, one draw).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ciksim.engines import _random
from ciksim.engines.codecache import load_generated
from ciksim.engines.scalar import ScalarWriter, pre_source, static_assignments
from ciksim.engines.threads import KERNEL_LOCK
from ciksim.engines.triggers import TriggerPlan
from ciksim.errors import ModelError

if TYPE_CHECKING:
    from ciksim.engines.stochastic import StochasticStructure
    from ciksim.model import Model
    from ciksim.protocol import BoundEvent

_LOOP = Path(__file__).with_name("_fused_loop.py")
_JIT = '@njit(cache=True, error_model="numpy")'


def slot_processes(struct: StochasticStructure) -> list[int]:
    """Processes of the stochastic species in slot order: births by column, deaths by
    column, transfers."""
    return ([j for b in struct.births for j in b] + [j for d in struct.deaths for j in d]
            + [t[0] for t in struct.transfers])


def fused_source(model: Model, struct: StochasticStructure, watch: str | None,
                 track: str | None, triggered: tuple[str, ...] = ()) -> str:
    """The generated module: model functions followed by the loop of ``_fused_loop.py``.
    ``triggered``: the quantities the protocol's triggers watch (``_trig`` computes them)."""
    static = {name: i for i, name in enumerate(static_assignments(model))}
    w = ScalarWriter(model, static)
    lines = ["import math", "", "import numpy as np", "from numba import njit, prange", "",
             "from ciksim.engines._random import binomial, kendall_step, transfer_step", "",
             f"NQ = {max(len(static), 1)}", "", ""]
    lines += pre_source(model, static, _JIT)
    stoch = set(struct.species)
    det = [(i, s.name) for i, s in enumerate(model.species) if i not in stoch]
    fluxes = {i: _flux(model, name) for i, name in det}
    procs = {pr for i, _ in det for _, pr in fluxes[i]}
    lines += ["", "", _JIT, "def _rhs_det(t, _y, _p, _q, _dy):"]
    lines += w.prelude(_symbols(model, procs))
    lines += [f"    {pr} = {model.expression(pr).scalar()}" for pr in _ordered(model, procs)]
    for i, _ in det:
        terms = " + ".join(f"({c!r}) * {pr}" for c, pr in fluxes[i]) or "0.0"
        lines.append(f"    _dy[{i}] = {terms}")
    lines.append("    return None")
    slots = [model.processes[j].name for j in slot_processes(struct)]
    lines += ["", "", _JIT, "def _rates(t, _y, _p, _q, _r):"]
    lines += w.prelude(_symbols(model, set(slots)))
    lines += [f"    _r[{k}] = {model.expression(name).scalar()}" for k, name in enumerate(slots)]
    lines.append("    return None")
    lines += ["", "", _JIT, "def _watch(t, _y, _p, _q):"]
    lines += w.prelude({v for v in (watch, track) if v})
    lines.append(f"    return ({watch or '0.0'}) + 0.0, ({track or '0.0'}) + 0.0")
    lines += ["", "", _JIT, "def _trig(t, _y, _p, _q, _v):"]
    lines += w.prelude(set(triggered))
    lines += [f"    _v[{j}] = ({name}) + 0.0" for j, name in enumerate(triggered)]
    lines.append("    return None")
    return "\n".join(lines) + "\n\n\n" + _LOOP.read_text(encoding="utf-8")


def _flux(model: Model, species: str) -> list[tuple[float, str]]:
    return [(float(pr.changes[species]), pr.name) for pr in model.processes
            if species in pr.changes]


def _symbols(model: Model, processes: set[str]) -> set[str]:
    out: set[str] = set()
    for name in processes:
        out |= model.expression(name).symbols
    return out


def _ordered(model: Model, processes: set[str]) -> list[str]:
    return [pr.name for pr in model.processes if pr.name in processes]


@cache
def _random_source() -> str:
    return Path(_random.__file__).read_text(encoding="utf-8")


_MODULES: dict[tuple[int, StochasticStructure, str | None, str | None, tuple[str, ...]],
               tuple[Model, ModuleType]] = {}


def fused_module(model: Model, struct: StochasticStructure, watch: str | None,
                 track: str | None, triggered: tuple[str, ...] = ()) -> ModuleType:
    """The compiled module for this model and these watched variables (built once)."""
    key = (id(model), struct, watch, track, triggered)
    hit = _MODULES.get(key)
    if hit is not None and hit[0] is model:
        return hit[1]
    source = fused_source(model, struct, watch, track, triggered)
    module = load_generated("stochastic", source, _random_source())
    _MODULES[key] = (model, module)
    return module


def supports(events: Sequence[BoundEvent]) -> bool:
    """Whether the compiled engine can apply these events (doses; others: reference)."""
    return all(e.parts is not None for e in events)


def run_fused(model: Model, struct: StochasticStructure, y0: np.ndarray, pmat: np.ndarray,
              grid: np.ndarray, events: Sequence[BoundEvent],
              states: np.ndarray, *, watch: str | None, threshold: float | None,
              track_min: str | None, stop_after_crossing: bool, last_event: float,
              record: bool, triggers: TriggerPlan | None = None) -> tuple[np.ndarray, ...]:
    """Simulate every individual; returns final (ns, n), extinction, crossing and minimum
    (n,), the trajectory (n_grid, ns, n) or None, and the trigger days (n_triggers, n).
    ``states`` advance in place."""
    n = pmat.shape[1]
    ns = len(model.species)
    watching = watch is not None and threshold is not None
    plan = triggers if triggers is not None else TriggerPlan.on((), grid, 0.0)
    mod = fused_module(model, struct, watch if watching else None, track_min,
                       tuple(t.watch for t in plan.triggers))
    sidx = np.array(struct.species, dtype=np.int64)
    is_stoch = np.zeros(ns, dtype=np.bool_)
    is_stoch[sidx] = True
    ev_k, ev_sp, ev_kind, ev_val = _event_table(events, grid, pmat, is_stoch)
    tt = _trigger_tables(plan, pmat, is_stoch)
    trig_day = np.full((n, max(len(plan), 1)), np.nan)
    nb = [len(b) for b in struct.births]
    nd = [len(d) for d in struct.deaths]
    b_ptr = np.concatenate([[0], np.cumsum(nb)]).astype(np.int64)
    d_ptr = (b_ptr[-1] + np.concatenate([[0], np.cumsum(nd)])).astype(np.int64)
    _, t_src, t_dst, t_order = struct.transfer_arrays
    owner = np.concatenate([np.repeat(np.arange(len(nb)), nb), np.repeat(np.arange(len(nd)), nd),
                            t_src]).astype(np.int64)
    final = np.empty((n, ns))
    ext = np.full(n, np.nan)
    cross = np.full(n, np.nan)
    low = np.full(n, np.inf)
    err = np.full(n, np.nan)
    traj = np.full((grid.size, ns, n) if record else (1, 1, 1), np.nan)
    with KERNEL_LOCK:
        mod.simulate_all(np.ascontiguousarray(y0.T), np.ascontiguousarray(pmat.T),
                         np.ascontiguousarray(grid, dtype=float), ev_k, ev_sp, ev_kind, ev_val,
                         sidx, is_stoch, owner, b_ptr, d_ptr, t_src, t_dst, t_order,
                         t_order[::-1].copy(), watching, float(threshold or 0.0),
                         track_min is not None, bool(stop_after_crossing), float(last_event),
                         bool(record), *tt, states, final, ext, cross, low, err, traj,
                         trig_day)
    if np.any(~np.isnan(err)):
        raise ModelError(f"negative per-cell rate in {model.name!r} near "
                         f"t={float(np.nanmin(err)):g}; rates of birth, death and transfer "
                         "processes must be >= 0")
    return (final.T.copy(), ext, cross, low, (traj if record else None),
            trig_day[:, :len(plan)].T.copy())


def _trigger_tables(plan: TriggerPlan, pmat: np.ndarray, is_stoch: np.ndarray
                    ) -> tuple[np.ndarray, ...]:
    """The plan as flat arrays for the loop.

    Per trigger ``j``: ``up[j]``, ``thr[j]``; its visits ``v_ptr[j]:v_ptr[j+1]`` into
    ``v_k`` (grid index), ``v_end`` (pending-until time if it fires there) and the rows of
    ``v_dose`` (grid index of each of its doses, -1 beyond the end; padded to the most doses
    of any trigger); ``last[j]`` its last visit. Dose ``d`` of trigger ``j`` is the
    operations ``o_ptr[j * nd + d]:o_ptr[j * nd + d + 1]`` of ``o_sp``, ``o_kind`` (0
    scales, 1 adds) and ``o_val`` (per individual), surviving fractions before added
    amounts, as in the reference engine. Then the plan's step rule: ``next_must``,
    ``fixed_window``, ``dt_event``, ``dt_max``, ``window`` (``TriggerPlan.next_point``).
    """
    n = pmat.shape[1]
    nt = len(plan)
    nd = max([len(t.doses) for t in plan.triggers] + [1])
    up = np.array([t.upward for t in plan.triggers] + [True], dtype=np.bool_)
    thr = np.array([t.threshold for t in plan.triggers] + [0.0], dtype=float)
    sizes = [v.size for v in plan.visits]
    v_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    v_k = np.concatenate([*plan.visits, np.zeros(0)]).astype(np.int64)
    v_end = np.concatenate([*plan.dose_end, np.zeros(0)]).astype(float)
    v_dose = np.full((max(v_k.size, 1), nd), -1, dtype=np.int64)
    for j in range(nt):
        table = plan.dose_k[j]
        v_dose[v_ptr[j]:v_ptr[j + 1], :table.shape[1]] = table
    o_sp: list[int] = []
    o_kind: list[int] = []
    o_val: list[np.ndarray] = []
    o_ptr = [0]
    for j in range(nt):
        doses = plan.triggers[j].doses
        for d in range(nd):
            if d < len(doses):
                e = doses[d][1]
                assert e.parts is not None
                added, surviving = e.parts(pmat)
                for i, frac in surviving:
                    o_sp.append(int(i))
                    o_kind.append(0)
                    o_val.append(np.broadcast_to(np.asarray(frac, float), n))
                for i, extra in added:
                    value = np.asarray(extra, float)
                    o_sp.append(int(i))
                    o_kind.append(1)
                    o_val.append(np.broadcast_to(np.round(value) if is_stoch[i] else value, n))
            o_ptr.append(len(o_sp))
    vals = np.vstack(o_val) if o_val else np.zeros((0, n))
    return (up, thr, v_ptr, v_k, v_end, v_dose, plan.last_visit.astype(float),
            np.array(o_ptr, dtype=np.int64), np.array(o_sp, dtype=np.int64),
            np.array(o_kind, dtype=np.int64), np.ascontiguousarray(vals.T, dtype=float),
            plan.next_must.astype(np.int64), plan.fixed_window.astype(np.bool_),
            plan.dt_event, plan.dt_max, plan.window)


def _event_table(events: Sequence[BoundEvent], grid: np.ndarray, pmat: np.ndarray,
                 is_stoch: np.ndarray) -> tuple[np.ndarray, ...]:
    """Dose operations in the reference engine's order: by grid point, then event, then
    surviving fractions before added amounts. kind 0 scales (thins), 1 adds."""
    n = pmat.shape[1]
    rows: list[tuple[int, int, int, np.ndarray]] = []
    for e in events:
        assert e.parts is not None
        added, surviving = e.parts(pmat)
        for k in np.flatnonzero(np.abs(grid - e.day) <= 1e-9):
            for i, frac in surviving:
                rows.append((int(k), int(i), 0, np.broadcast_to(np.asarray(frac, float), n)))
            for i, extra in added:
                value = np.asarray(extra, float)
                rows.append((int(k), int(i), 1,
                             np.broadcast_to(np.round(value) if is_stoch[i] else value, n)))
    rows.sort(key=lambda row: row[0])
    ev_k = np.array([r[0] for r in rows], dtype=np.int64)
    ev_sp = np.array([r[1] for r in rows], dtype=np.int64)
    ev_kind = np.array([r[2] for r in rows], dtype=np.int64)
    ev_val = (np.vstack([r[3] for r in rows]) if rows else np.zeros((0, n))).astype(float)
    return ev_k, ev_sp, ev_kind, np.ascontiguousarray(ev_val)

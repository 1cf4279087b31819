"""Hybrid stochastic engine: exact birth-death steps for discrete cells, ODEs for the rest.

Species named ``stochastic`` (e.g. the last leukemic cells) are discrete populations acted
on by three kinds of declared processes (anything else touching them is refused):

- birth: adds one cell of species S; per-cell rate ``rate / n_S``;
- death: removes one cell of S; per-cell rate ``rate / n_S``;
- transfer: moves one cell from S to another stochastic species S' (e.g. active <->
  quiescent); per-cell rate ``nu = rate / n_S``.

Rates are evaluated from the current state (so they may depend on effectors, niche
occupancy...) and held constant over a step. Other species follow the model's ODEs
(classical RK4, stochastic species frozen); they may depend on the discrete counts. A step
of length h is a Strang splitting: half a deterministic step; rates at that midpoint;
transfers for h/2 (per source species in declaration order: Binomial(n_S, 1 - exp(-nu h/2))
cells leave S, split among its destinations multinomially by rate); the exact Kendall (1948)
birth-death transition of length h for each stochastic species; transfers for h/2 in the
reverse order; the other deterministic half step. Counts stay integer and >= 0 and
extinction (every stochastic species at 0) is exact.

The time grid depends on the protocol only (not on any individual), so an individual's
numbers are the same whatever else is simulated with it; its random stream is keyed by its
index (``SeedSequence(seed, spawn_key=(index,))``), and a model without transfers draws no
numbers for them.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ciksim._version import __version__
from ciksim.engines import fused
from ciksim.engines._random import binomial_batch, kendall_batch, seed_states, transfer_batch
from ciksim.engines.triggers import TriggerPlan
from ciksim.errors import CikError, ModelError
from ciksim.model import Model
from ciksim.model.model import parameter_matrix
from ciksim.protocol import BoundEvent, Protocol


@dataclass(frozen=True)
class StochasticSettings:
    """Step sizes (model time units): ``dt_event`` within ``window`` after each event (when
    effectors decay and normal cells recover), ``dt_max`` elsewhere."""

    dt_max: float = 2.0
    dt_event: float = 0.5
    window: float = 40.0

    def __post_init__(self) -> None:
        if not (0 < self.dt_event <= self.dt_max) or self.window < 0:
            raise ModelError("StochasticSettings: need 0 < dt_event <= dt_max and window >= 0")

    def scaled(self, factor: float) -> StochasticSettings:
        """All steps multiplied by ``factor`` (for convergence studies)."""
        return StochasticSettings(self.dt_max * factor, self.dt_event * factor, self.window)


def time_grid(t_end: float, event_days: Sequence[float], settings: StochasticSettings,
              points: Sequence[float] = ()) -> np.ndarray:
    """Grid from 0 to ``t_end`` hitting every event day (fine steps within the window after
    each) and every one of ``points`` (days without a window: monitoring visits)."""
    events = sorted({float(d) for d in event_days if 0 <= d <= t_end})
    stops = sorted(set(events) | {float(d) for d in points if 0 <= d <= t_end})
    grid = [0.0]
    t = 0.0
    while t < t_end - 1e-9:
        j = bisect_left(stops, t)
        while j < len(stops) and not stops[j] > t + 1e-9:
            j += 1
        nxt = min(stops[j], t_end) if j < len(stops) else t_end
        # events that may hold t in their window: those within [t - window, t] (and a margin)
        near = events[bisect_left(events, t - settings.window - 1.0):
                      bisect_right(events, t + 1.0)]
        in_window = any(d - 1e-9 <= t < d + settings.window - 1e-9 for d in near)
        h = settings.dt_event if in_window else settings.dt_max
        if in_window:
            ends = [d + settings.window for d in near if d - 1e-9 <= t < d + settings.window]
            h = min(h, max(min(ends) - t, 1e-9))
        t_new = min(t + h, nxt)
        t = round(t_new, 9)
        grid.append(t)
    return np.array(grid)


@dataclass(frozen=True)
class StochasticResult:
    """Per individual: extinction time, first threshold crossing, minimum of a variable,
    and the day each trigger of the protocol fired (``trigger_day[name]``).

    Times are NaN where the event did not happen within the simulated time (or before the
    individual stopped being simulated). ``trajectory`` (n_grid, n_species, n) is filled
    only when recording was asked for.
    """

    model: Model
    indices: np.ndarray
    parameters: np.ndarray
    grid: np.ndarray
    extinction_time: np.ndarray
    crossing_time: np.ndarray
    minimum: np.ndarray
    final: np.ndarray
    trajectory: np.ndarray | None
    meta: dict[str, object] = field(default_factory=dict)
    trigger_day: Mapping[str, np.ndarray] = field(default_factory=dict)

    def series(self, name: str) -> np.ndarray:
        """A recorded species or derived quantity, shape (n_grid, n)."""
        if self.trajectory is None:
            raise CikError("no trajectories recorded; simulate with record=True")
        names = self.model.species_names
        if name in names:
            return self.trajectory[:, names.index(name), :]
        nt, ns, n = self.trajectory.shape
        y = np.moveaxis(self.trajectory, 0, 1).reshape(ns, nt * n)
        p = np.tile(self.parameters, (1, nt))
        with np.errstate(divide="ignore", invalid="ignore"):
            values = self.model.compiled.assignments(np.repeat(self.grid, n), y, p)
        if name not in values:
            raise CikError(f"no variable {name!r} in model {self.model.name!r}")
        return np.asarray(values[name]).reshape(nt, n)


@dataclass(frozen=True)
class StochasticStructure:
    """How the declared processes act on the stochastic species.

    ``species``: model indices of the stochastic species (their columns 0..k-1 below);
    ``births``/``deaths``: per column, the processes adding/removing one of its cells;
    ``transfers``: (process, source column, destination column) in declaration order.
    """

    species: tuple[int, ...]
    births: tuple[tuple[int, ...], ...]
    deaths: tuple[tuple[int, ...], ...]
    transfers: tuple[tuple[int, int, int], ...]

    @property
    def transfer_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Process indices, source and destination columns, source columns in order."""
        proc = np.array([t[0] for t in self.transfers], dtype=np.int64)
        src = np.array([t[1] for t in self.transfers], dtype=np.int64)
        dst = np.array([t[2] for t in self.transfers], dtype=np.int64)
        order = np.array(list(dict.fromkeys(int(c) for c in src)), dtype=np.int64)
        return proc, src, dst, order

    def owners(self, n_processes: int) -> np.ndarray:
        """Per process: the column whose per-cell rate it sets (birth, death or transfer
        source), or -1."""
        out = np.full(n_processes, -1, dtype=np.int64)
        for c, (b, d) in enumerate(zip(self.births, self.deaths, strict=True)):
            out[list(b) + list(d)] = c
        for j, src, _ in self.transfers:
            out[j] = src
        return out


def stochastic_structure(model: Model, stochastic: Sequence[str]) -> StochasticStructure:
    """Classify every process touching a stochastic species as birth, death or transfer.

    Raises ModelError for any other change: a process may add or remove one cell of one
    stochastic species, or move one cell from one stochastic species to another; a process
    changing a stochastic and a deterministic species must be declared as two processes.
    """
    names = model.species_names
    for sp in stochastic:
        if sp not in names:
            raise ModelError(f"stochastic species {sp!r} is not in model {model.name!r}")
    if len(set(stochastic)) != len(stochastic):
        raise ModelError(f"stochastic species listed twice: {list(stochastic)}")
    col = {sp: c for c, sp in enumerate(stochastic)}
    births: list[list[int]] = [[] for _ in stochastic]
    deaths: list[list[int]] = [[] for _ in stochastic]
    transfers: list[tuple[int, int, int]] = []
    for j, pr in enumerate(model.processes):
        touched = [sp for sp in pr.changes if sp in col]
        if not touched:
            continue
        sp = touched[0]
        other = sorted(set(pr.changes) - set(col))
        if other:
            raise ModelError(
                f"process {pr.name!r} changes stochastic species {sp!r} together with "
                f"deterministic species {other}; declare two processes instead (e.g. the "
                f"death of {sp} by differentiation and the production of {other[0]})")
        if len(pr.changes) == 1 and pr.changes[sp] in (1, -1):
            (births if pr.changes[sp] > 0 else deaths)[col[sp]].append(j)
            continue
        signs = sorted(pr.changes.values())
        if len(pr.changes) == 2 and signs == [-1, 1]:
            source = next(s for s, c in pr.changes.items() if c == -1)
            dest = next(s for s, c in pr.changes.items() if c == 1)
            transfers.append((j, col[source], col[dest]))
            continue
        raise ModelError(
            f"process {pr.name!r} changes stochastic species {sp!r} by "
            f"{dict(pr.changes)}; a stochastic species needs processes that add or remove "
            "one of its cells (birth, death) or move one cell to another stochastic species "
            "(transfer), and nothing else")
    return StochasticStructure(tuple(names.index(sp) for sp in stochastic),
                               tuple(map(tuple, births)), tuple(map(tuple, deaths)),
                               tuple(transfers))


def _rates_for_empty(compiled, t: float, ya: np.ndarray, pa: np.ndarray, rates: np.ndarray,
                     sidx: list[int], owner: np.ndarray, n_cells: np.ndarray) -> np.ndarray:
    """Rates with each empty stochastic species' rates taken at one cell of it.

    Per-cell rates are rate / count; for a species with no cells they come from the state
    with one cell, so cells transferred into it during the step divide, die and move on at
    the right rates. ``owner[j]`` is the column whose per-cell rate process ``j`` gives
    (-1 for processes not acting on a stochastic species).
    """
    empty = n_cells == 0
    rows = np.flatnonzero(empty.any(axis=1) & ~empty.all(axis=1))
    if rows.size == 0:
        return rates
    y1 = ya[:, rows].copy()
    y1[sidx] = np.where(empty[rows].T, 1.0, y1[sidx])
    with np.errstate(divide="ignore", invalid="ignore"):
        at_one = compiled.rates(t, y1, pa[:, rows])
    rates = rates.copy()
    for j, c in enumerate(owner):
        if c >= 0:
            sel = empty[rows, c]
            rates[j, rows[sel]] = at_one[j, sel]
    return rates


def _run_reference(model: Model, struct: StochasticStructure, y: np.ndarray, pmat: np.ndarray,
                   grid: np.ndarray, events: list[BoundEvent], states: np.ndarray, *,
                   watch: str | None, threshold: float | None, track_min: str | None,
                   stop_after_crossing: bool, last_event: float, record: bool,
                   triggers: TriggerPlan | None = None) -> tuple[np.ndarray, ...]:
    """The numpy engine, vectorised over the individuals still active; returns final
    states, extinction and crossing times, minima, the trajectory (or None) and the
    trigger days (n_triggers, n)."""
    n = pmat.shape[1]
    sidx, births, deaths = list(struct.species), struct.births, struct.deaths
    tproc, tsrc, tdst, torder = struct.transfer_arrays
    owner = struct.owners(len(model.processes))
    compiled = model.compiled
    ns = len(model.species)
    det_mask = np.ones(ns, dtype=bool)
    det_mask[sidx] = False
    nan = np.full(n, np.nan)
    ext_t, cross_t = nan.copy(), nan.copy()
    minimum = np.full(n, np.inf)
    armed = np.zeros(n, dtype=bool)  # been below the threshold: a crossing is upward
    traj = np.full((grid.size, ns, n), np.nan) if record else None
    active = np.arange(n)
    plan = triggers if triggers is not None else TriggerPlan.on((), grid, 0.0)
    fired = np.full((len(plan), n), -1, dtype=np.int64)  # visit at which each fired
    trig_day = np.full((len(plan), n), np.nan)
    visit_at = [{int(k): m for m, k in enumerate(v)} for v in plan.visits]
    settle = plan.settle_times(last_event, fired)  # fate settled (if extinct) from then on

    def watched(yy: np.ndarray, pp: np.ndarray, t: float) -> dict[str, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return compiled.assignments(t, yy, pp)

    pos = np.zeros(n, dtype=np.int64)  # grid index each individual last stepped to
    prev = np.zeros(n)  # the watched value there

    def monitor(k: int, t: float, who: np.ndarray) -> None:
        ya, pa = y[:, who], pmat[:, who]
        values = watched(ya, pa, t) if (watch or track_min) else {}
        if track_min:
            v = ya[model.species_names.index(track_min)] if track_min in model.species_names \
                else values[track_min]
            before = np.isnan(cross_t[who])  # the nadir up to the crossing (relapse)
            minimum[who] = np.where(before, np.minimum(minimum[who], v), minimum[who])
        extinct = (ya[sidx].sum(axis=0) == 0) & np.isnan(ext_t[who])
        ext_t[who[extinct]] = t
        if watch is not None and threshold is not None:
            cur = np.asarray(values[watch], dtype=float)
            open_ = np.isnan(cross_t[who])
            never = open_ & ~armed[who] & (cur >= threshold) & (t >= settle[who])
            cross_t[who[never]] = grid[0]  # never below: a failure from the start
            hit = (cur >= threshold) & open_ & armed[who]
            armed[who] |= cur < threshold
            if k > 0 and np.any(hit):
                t0 = grid[pos[who]]
                p0 = prev[who]
                with np.errstate(divide="ignore", invalid="ignore"):
                    frac = (np.log(threshold) - np.log(p0)) / (np.log(cur) - np.log(p0))
                frac = np.where(np.isfinite(frac), np.clip(frac, 0.0, 1.0), 1.0)
                cross_t[who[hit]] = (t0 + frac * (t - t0))[hit]
            elif np.any(hit):
                cross_t[who[hit]] = t
            prev[who] = cur

    def det_advance(who: np.ndarray, t: float, h: float) -> None:
        ya, pa = y[:, who], pmat[:, who]

        def f(tt: float, yy: np.ndarray) -> np.ndarray:
            d = compiled.rhs(tt, yy, pa)
            d[~det_mask] = 0.0
            return d

        k1 = f(t, ya)
        k2 = f(t + h / 2, ya + h / 2 * k1)
        k3 = f(t + h / 2, ya + h / 2 * k2)
        k4 = f(t + h, ya + h * k3)
        y[:, who] = np.maximum(ya + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), 0.0)

    def step(who: np.ndarray, t0: float, t1: float) -> None:
        """Individuals ``who`` from ``t0`` to ``t1`` (one Strang step)."""
        h = t1 - t0
        det_advance(who, t0, h / 2)
        ya, pa = y[:, who], pmat[:, who]
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = compiled.rates(t0 + h / 2, ya, pa)
        n_cells = ya[sidx].T.copy()  # (m, k)
        if tproc.size:
            rates = _rates_for_empty(compiled, t0 + h / 2, ya, pa, rates, sidx, owner,
                                     n_cells)
        safe = np.where(n_cells > 0, n_cells, 1.0)
        lam = np.empty_like(n_cells)
        mu = np.empty_like(n_cells)
        for c, (b, d) in enumerate(zip(births, deaths, strict=True)):
            lam[:, c] = rates[list(b)].sum(axis=0) / safe[:, c] if b else 0.0
            mu[:, c] = rates[list(d)].sum(axis=0) / safe[:, c] if d else 0.0
        nu = (rates[tproc] / safe[:, tsrc].T).T.copy() if tproc.size else None
        if np.any(lam < 0) or np.any(mu < 0) or (nu is not None and np.any(nu < 0)):
            raise ModelError(f"negative per-cell rate in {model.name!r} near t={t0:g}; "
                             "rates of birth, death and transfer processes must be >= 0")
        rng = states[who]  # a copy: the advanced streams are written back
        if nu is not None:
            transfer_batch(n_cells, nu, tsrc, tdst, torder, h / 2, rng)
        new = kendall_batch(n_cells, lam, mu, h, rng)
        if nu is not None:
            transfer_batch(new, nu, tsrc, tdst, torder[::-1].copy(), h / 2, rng)
        states[who] = rng
        y[np.ix_(sidx, who)] = new.T
        det_advance(who, t0 + h / 2, h / 2)

    def give(e: BoundEvent, who: np.ndarray) -> None:
        """Dose ``e`` to the individuals ``who`` (thinning stochastic species exactly)."""
        assert e.parts is not None
        added, surviving = e.parts(pmat[:, who])
        for i, frac in surviving:
            if i in sidx:
                rng = states[who]  # a copy: the advanced streams are written back
                y[i, who] = binomial_batch(y[i, who][:, None],
                                           np.broadcast_to(frac, who.shape)[:, None].copy(),
                                           rng)[:, 0]
                states[who] = rng
            else:
                y[i, who] *= frac
        for i, extra in added:
            y[i, who] += np.round(extra) if i in sidx else extra

    def apply_events(t: float) -> None:
        for e in events:
            if abs(e.day - t) > 1e-9:
                continue
            if e.parts is None:
                e.apply(y, np.ones(n), pmat)
            else:
                give(e, active)

    def apply_triggers(k: int, t: float) -> None:
        """Evaluate the triggers monitored at grid point k, then give the doses due."""
        due = [(j, visit_at[j][k]) for j in range(len(plan)) if k in visit_at[j]]
        if due and active.size:
            ya, pa = y[:, active], pmat[:, active]
            values = watched(ya, pa, t) if any(plan.triggers[j].species < 0 for j, _ in due) \
                else {}
            for j, m in due:
                tr = plan.triggers[j]
                v = ya[tr.species] if tr.species >= 0 else np.asarray(values[tr.watch], float)
                fire = (fired[j, active] < 0) & tr.holds(np.broadcast_to(v, active.shape))
                fired[j, active[fire]] = m
                trig_day[j, active[fire]] = t
                if fire.any():
                    settle[:] = plan.settle_times(last_event, fired)
        for j, tr in enumerate(plan.triggers):
            fj = fired[j, active]
            if not np.any(fj >= 0):
                continue
            table = plan.dose_k[j][np.maximum(fj, 0)]
            for d, (_, e) in enumerate(tr.doses):
                who = active[(fj >= 0) & (table[:, d] == k)]
                if who.size:
                    give(e, who)

    apply_events(0.0)
    apply_triggers(0, 0.0)
    monitor(0, 0.0, active)
    if traj is not None:
        traj[0] = y
    target = plan.next_point(grid, 0, fired)  # the grid index each steps to next
    for k in range(1, grid.size):
        t1 = grid[k]
        reach = active[target[active] == k]
        for start in np.unique(pos[reach]):  # grouped by where their step starts
            who = reach[pos[reach] == start]
            step(who, grid[start], t1)
        apply_events(t1)  # every active individual is at an event, visit or own dose
        apply_triggers(k, t1)
        if traj is not None:  # those stepping over k hold their state
            traj[k][:, active] = y[:, active]
        if not reach.size:
            continue
        monitor(k, t1, reach)
        settled = np.zeros(reach.size, dtype=bool)
        if stop_after_crossing:
            settled |= ~np.isnan(cross_t[reach])
        if not record:
            settled |= ~np.isnan(ext_t[reach]) & (t1 >= settle[reach])
        if settled.any():
            active = np.setdiff1d(active, reach[settled], assume_unique=True)
            reach = reach[~settled]
        pos[reach] = k
        target[reach] = plan.next_point(grid, k, fired[:, reach])
    return y, ext_t, cross_t, minimum, traj, trig_day


def simulate_stochastic(
    model: Model,
    protocol: Protocol | None,
    t_end: float,
    *,
    stochastic: Sequence[str],
    parameters: Mapping[str, object] | None = None,
    seed: int = 0,
    indices: Sequence[int] | np.ndarray | None = None,
    settings: StochasticSettings | None = None,
    watch: str | None = None,
    threshold: float | None = None,
    track_min: str | None = None,
    stop_after_crossing: bool = True,
    record: bool = False,
    engine: str = "compiled",
) -> StochasticResult:
    """Simulate a batch of individuals (a 1-D parameter array gives one per entry).

    ``watch``/``threshold``: first time the derived quantity ``watch`` rises to
    ``threshold`` from below (log-linear interpolation between grid points); an individual
    above it from the start counts only once it has been below it, and one that is never
    below it by the end of the last event and its window is a failure from the start
    (crossing at time 0, as primary treatment failures are dated).
    ``track_min``: minimum of a variable up to the crossing. Individuals whose fate is
    settled (crossed, or extinct after the last event and its window, every pending
    monitoring visit of the protocol's triggers and every triggered dose and its window)
    stop being simulated (a recorded trajectory ends at the crossing; with ``record``
    extinct ones go on). The protocol's triggers fire per individual (see
    ``ciksim.engines.triggers`` and docs/triggers.md); ``trigger_day[name]`` of the result
    is the day each fired (NaN if it did not, or not before the individual stopped).
    ``indices`` number the individuals for their random streams (default 0..n-1).
    ``engine``: ``compiled`` (one numba loop per individual, ``ciksim.engines.fused``;
    protocols with events other than doses use the reference) or ``reference`` (this
    module's numpy loop); both give the same outcomes for the same seed.
    """
    protocol = protocol or Protocol(name="none")
    settings = settings or StochasticSettings()
    if not np.isfinite(t_end) or t_end <= 0:
        raise CikError("t_end: give the simulated time (> 0)")
    pmat = parameter_matrix(model, {**protocol.parameter_values(model), **(parameters or {})})
    n = pmat.shape[1]
    idx_arr = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx_arr.shape != (n,):
        raise CikError(f"indices: need {n} individual indices, got {idx_arr.shape}")
    if engine not in ("compiled", "reference"):
        raise CikError(f"engine: use 'compiled' or 'reference', got {engine!r}")
    struct = stochastic_structure(model, stochastic)
    sidx = list(struct.species)
    y = model.compiled.initial(pmat).astype(float)
    y[sidx] = np.round(y[sidx])
    events = [e for e in protocol.bind(model) if e.day <= t_end]
    bound_triggers = protocol.bind_triggers(model)
    visits, trigger_doses = TriggerPlan.days(bound_triggers, t_end)
    grid = time_grid(t_end, [e.day for e in events] + trigger_doses, settings, visits)
    plan = TriggerPlan.on(bound_triggers, grid, settings.window, [e.day for e in events],
                          settings.dt_event, settings.dt_max)
    last_event = max([e.day for e in events], default=0.0) + settings.window
    states = seed_states(seed, idx_arr)
    run = fused.run_fused if engine == "compiled" and fused.supports(events) else _run_reference
    y, ext_t, cross_t, minimum, traj, trig_day = run(
        model, struct, y, pmat, grid, events, states, watch=watch, threshold=threshold,
        track_min=track_min, stop_after_crossing=stop_after_crossing, last_event=last_event,
        record=record, triggers=plan)
    meta = {"ciksim_version": __version__, "model": model.name, "protocol": protocol.name,
            "seed": seed, "t_end": float(t_end), "time_unit": model.time_unit,
            "grid_points": int(grid.size),
            "settings": {"dt_max": settings.dt_max, "dt_event": settings.dt_event,
                         "window": settings.window}}
    minimum[~np.isfinite(minimum)] = np.nan
    return StochasticResult(model, idx_arr, pmat, grid, ext_t, cross_t, minimum, y.copy(),
                            traj, meta, dict(zip(plan.names, trig_day, strict=True)))


__all__ = ["BoundEvent", "StochasticResult", "StochasticSettings", "simulate_stochastic",
           "time_grid"]

"""Hybrid stochastic engine: exact birth-death steps for discrete cells, ODEs for the rest.

Species named ``stochastic`` (e.g. the last leukemic cells) are linear birth-death
processes whose per-cell rates come from the model's declared processes: every process that
changes such a species (by +1 or -1, and nothing else) contributes ``rate / count`` to its
per-cell birth or death rate, evaluated from the current state (so rates may depend on
effectors, niche occupancy...). Over a step those rates are held constant and the exact
Kendall (1948) transition is drawn, so extinction is exact and counts never go negative.
The other species follow the model's ODEs (classical RK4 on the step, stochastic species
frozen), arranged as a Strang splitting: half a deterministic step, the exact stochastic step
with rates taken at that midpoint, the other half step.

The time grid depends on the protocol only (not on any individual), so an individual's
numbers are the same whatever else is simulated with it; its random stream is keyed by its
index (``SeedSequence(seed, spawn_key=(index,))``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ciksim._version import __version__
from ciksim.engines._random import binomial_batch, kendall_batch, seed_states
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


def time_grid(t_end: float, event_days: Sequence[float], settings: StochasticSettings
              ) -> np.ndarray:
    """Grid from 0 to ``t_end`` hitting every event day; fine steps after events."""
    events = sorted({float(d) for d in event_days if 0 <= d <= t_end})
    grid = [0.0]
    t = 0.0
    while t < t_end - 1e-9:
        nxt = min([d for d in events if d > t + 1e-9] + [t_end])
        in_window = any(d - 1e-9 <= t < d + settings.window - 1e-9 for d in events)
        h = settings.dt_event if in_window else settings.dt_max
        if in_window:
            ends = [d + settings.window for d in events if d - 1e-9 <= t < d + settings.window]
            h = min(h, max(min(ends) - t, 1e-9))
        t_new = min(t + h, nxt)
        t = round(t_new, 9)
        grid.append(t)
    return np.array(grid)


@dataclass(frozen=True)
class StochasticResult:
    """Per individual: extinction time, first threshold crossing, minimum of a variable.

    Times are NaN where the event did not happen within the simulated time. ``trajectory``
    (n_grid, n_species, n) is filled only when recording was asked for.
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


def _birth_death_structure(model: Model, stochastic: Sequence[str]
                           ) -> tuple[list[int], list[list[int]], list[list[int]]]:
    names = model.species_names
    idx, births, deaths = [], [], []
    for sp in stochastic:
        if sp not in names:
            raise ModelError(f"stochastic species {sp!r} is not in model {model.name!r}")
        b, d = [], []
        for j, pr in enumerate(model.processes):
            c = pr.changes.get(sp)
            if c is None:
                continue
            if set(pr.changes) != {sp} or c not in (1, -1):
                raise ModelError(
                    f"process {pr.name!r} changes stochastic species {sp!r} by {c} together "
                    f"with {sorted(set(pr.changes) - {sp})}; a birth-death species needs "
                    "processes that add or remove one of its cells and nothing else")
            (b if c > 0 else d).append(j)
        idx.append(names.index(sp))
        births.append(b)
        deaths.append(d)
    return idx, births, deaths


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
) -> StochasticResult:
    """Simulate a batch of individuals (a 1-D parameter array gives one per entry).

    ``watch``/``threshold``: first time the derived quantity ``watch`` reaches ``threshold``
    (log-linear interpolation between grid points). ``track_min``: running minimum of a
    variable. Individuals whose fate is settled (crossed, or extinct after the last event and
    its window) stop being simulated unless ``record`` is set. ``indices`` number the
    individuals for their random streams (default 0..n-1).
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
    sidx, births, deaths = _birth_death_structure(model, stochastic)
    compiled = model.compiled
    y = compiled.initial(pmat).astype(float)
    y[sidx] = np.round(y[sidx])
    events = [e for e in protocol.bind(model) if e.day <= t_end]
    grid = time_grid(t_end, [e.day for e in events], settings)
    last_event = max([e.day for e in events], default=0.0) + settings.window
    states = seed_states(seed, idx_arr)
    ns = len(model.species)
    det_mask = np.ones(ns, dtype=bool)
    det_mask[sidx] = False
    nan = np.full(n, np.nan)
    ext_t, cross_t = nan.copy(), nan.copy()
    minimum = np.full(n, np.inf)
    traj = np.full((grid.size, ns, n), np.nan) if record else None
    active = np.arange(n)

    def watched(yy: np.ndarray, pp: np.ndarray, t: float) -> dict[str, np.ndarray]:
        with np.errstate(divide="ignore", invalid="ignore"):
            return compiled.assignments(t, yy, pp)

    def monitor(k: int, t: float, prev: np.ndarray | None) -> np.ndarray:
        ya, pa = y[:, active], pmat[:, active]
        values = watched(ya, pa, t) if (watch or track_min) else {}
        if track_min:
            v = ya[model.species_names.index(track_min)] if track_min in model.species_names \
                else values[track_min]
            minimum[active] = np.minimum(minimum[active], v)
        extinct = (ya[sidx].sum(axis=0) == 0) & np.isnan(ext_t[active])
        ext_t[active[extinct]] = t
        cur = None
        if watch is not None and threshold is not None:
            cur = np.asarray(values[watch], dtype=float)
            hit = (cur >= threshold) & np.isnan(cross_t[active])
            if prev is not None and k > 0 and np.any(hit):
                t0 = grid[k - 1]
                with np.errstate(divide="ignore", invalid="ignore"):
                    frac = (np.log(threshold) - np.log(prev)) / (np.log(cur) - np.log(prev))
                frac = np.where(np.isfinite(frac), np.clip(frac, 0.0, 1.0), 1.0)
                cross_t[active[hit]] = (t0 + frac * (t - t0))[hit]
            elif np.any(hit):
                cross_t[active[hit]] = t
        if traj is not None:
            traj[k][:, active] = ya
        return cur if cur is not None else np.zeros(active.size)

    def det_advance(t: float, h: float) -> None:
        ya, pa = y[:, active], pmat[:, active]

        def f(tt: float, yy: np.ndarray) -> np.ndarray:
            d = compiled.rhs(tt, yy, pa)
            d[~det_mask] = 0.0
            return d

        k1 = f(t, ya)
        k2 = f(t + h / 2, ya + h / 2 * k1)
        k3 = f(t + h / 2, ya + h / 2 * k2)
        k4 = f(t + h, ya + h * k3)
        y[:, active] = np.maximum(ya + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), 0.0)

    def apply_events(t: float) -> None:
        for e in events:
            if abs(e.day - t) > 1e-9:
                continue
            if e.parts is None:
                e.apply(y, np.ones(n), pmat)
                continue
            added, surviving = e.parts(pmat[:, active])
            for i, frac in surviving:
                if i in sidx:
                    rng = states[active]  # a copy: the advanced streams are written back
                    y[i, active] = binomial_batch(y[i, active][:, None], frac[:, None],
                                                  rng)[:, 0]
                    states[active] = rng
                else:
                    y[i, active] *= frac
            for i, extra in added:
                y[i, active] += np.round(extra) if i in sidx else extra

    apply_events(0.0)
    prev = monitor(0, 0.0, None)
    for k in range(1, grid.size):
        t0, t1 = grid[k - 1], grid[k]
        h = t1 - t0
        if active.size:
            det_advance(t0, h / 2)
            ya, pa = y[:, active], pmat[:, active]
            with np.errstate(divide="ignore", invalid="ignore"):
                rates = compiled.rates(t0 + h / 2, ya, pa)
            n_cells = ya[sidx].T.copy()  # (m, k)
            lam = np.empty_like(n_cells)
            mu = np.empty_like(n_cells)
            for c, (b, d) in enumerate(zip(births, deaths, strict=True)):
                safe = np.where(n_cells[:, c] > 0, n_cells[:, c], 1.0)
                lam[:, c] = rates[b].sum(axis=0) / safe if b else 0.0
                mu[:, c] = rates[d].sum(axis=0) / safe if d else 0.0
            if np.any(lam < 0) or np.any(mu < 0):
                raise ModelError(f"negative per-cell rate in {model.name!r} near t={t0:g}; "
                                 "rates of birth-death processes must be >= 0")
            rng = states[active]  # a copy: the advanced streams are written back
            new = kendall_batch(n_cells, lam, mu, h, rng)
            states[active] = rng
            y[np.ix_(sidx, active)] = new.T
            det_advance(t0 + h / 2, h / 2)
        apply_events(t1)
        if active.size:
            prev = monitor(k, t1, prev)
        if not record and active.size:
            settled = np.zeros(active.size, dtype=bool)
            if stop_after_crossing:
                settled |= ~np.isnan(cross_t[active])
            if t1 >= last_event:
                settled |= ~np.isnan(ext_t[active])
            if settled.any():
                keep = ~settled
                active = active[keep]
                prev = prev[keep]
    meta = {"ciksim_version": __version__, "model": model.name, "protocol": protocol.name,
            "seed": seed, "t_end": float(t_end), "time_unit": model.time_unit,
            "grid_points": int(grid.size),
            "settings": {"dt_max": settings.dt_max, "dt_event": settings.dt_event,
                         "window": settings.window}}
    minimum[~np.isfinite(minimum)] = np.nan
    return StochasticResult(model, idx_arr, pmat, grid, ext_t, cross_t, minimum, y.copy(),
                            traj, meta)


__all__ = ["BoundEvent", "StochasticResult", "StochasticSettings", "simulate_stochastic",
           "time_grid"]

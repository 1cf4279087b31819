"""Triggered doses in the stochastic engines: the schedule laid on the shared time grid.

A trigger (``ciksim.protocol.Trigger``) is evaluated on its monitoring days and, where it
fires, gives its doses at the trigger day plus their offsets. Those days are a finite set
known before any individual is simulated (monitoring days + offsets), so every one of them
is a point of the shared time grid: monitoring days as plain points, possible dose days as
events (with the fine steps of an event's window after them, as for fixed doses), and each
engine applies a triggered dose only to the individuals whose trigger fired on the right
day. Both engines follow this order at a grid point: fixed events, then every trigger due
for monitoring is evaluated on that state (in declaration order; all see the same state),
then the triggered doses due that day (by trigger, then by dose, each dose's surviving
fractions before its added amounts), then the crossing and extinction checks.

An individual's fate is settled (it stops being simulated when extinct) only once no
trigger can still fire and every triggered dose and its window have passed: ``settle_times``.

Steps. The shared grid is fine (``dt_event``) within the window after every *possible*
triggered dose; an individual steps through a subset of it: every point where something may
happen to it (fixed events, monitoring days, its own triggered doses, the end), every point
within the window after a fixed event or one of its own triggered doses, and elsewhere the
farthest point at most ``dt_max`` ahead (``next_point``). Individuals not dosed by a trigger
thus take the steps they would take without it. A recorded trajectory holds an individual's
last state at the points it steps over. Without triggers every grid point is visited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ciksim.protocol import BoundTrigger


@dataclass(frozen=True)
class TriggerPlan:
    """Triggers laid on a grid.

    Per trigger ``j``: ``visits[j]`` the grid indices of its monitoring days within the
    grid; ``dose_k[j]`` (n_visits, n_doses) the grid index of each dose if the trigger fires
    at that visit (-1: beyond the end); ``dose_end[j]`` (n_visits,) the time until which an
    individual that fired at that visit stays pending (its last dose within the grid plus the
    event window, or the visit itself); ``last_visit[j]`` the last monitoring time (-inf
    without visits).
    """

    triggers: tuple[BoundTrigger, ...]
    visits: tuple[np.ndarray, ...]
    dose_k: tuple[np.ndarray, ...]
    dose_end: tuple[np.ndarray, ...]
    last_visit: np.ndarray
    next_must: np.ndarray
    fixed_window: np.ndarray
    dt_event: float = 0.0
    dt_max: float = 0.0
    window: float = 0.0

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.triggers]

    def __len__(self) -> int:
        return len(self.triggers)

    @staticmethod
    def days(triggers: Sequence[BoundTrigger], t_end: float) -> tuple[list[float], list[float]]:
        """Monitoring days and possible dose days within ``[0, t_end]`` (grid points and
        grid events)."""
        visits: list[float] = []
        doses: list[float] = []
        for tr in triggers:
            days = tr.days[tr.days <= t_end]
            visits += days.tolist()
            for offset, _ in tr.doses:
                doses += [d for d in (days + offset).tolist() if d <= t_end]
        return visits, doses

    @classmethod
    def on(cls, triggers: Sequence[BoundTrigger], grid: np.ndarray, window: float,
           fixed_days: Sequence[float] = (), dt_event: float = 0.0, dt_max: float = 0.0
           ) -> TriggerPlan:
        """The plan of ``triggers`` on ``grid`` (which holds every day from :meth:`days`
        and ``fixed_days``, the days of the fixed events; steps ``dt_event`` within
        ``window`` after an event, ``dt_max`` elsewhere)."""
        t_end = float(grid[-1])
        visits, dose_k, dose_end, last = [], [], [], []
        for tr in triggers:
            days = tr.days[tr.days <= t_end]
            vk = _indices(grid, days)
            table = np.full((days.size, len(tr.doses)), -1, dtype=np.int64)
            ends = days.astype(float).copy()
            for d, (offset, _) in enumerate(tr.doses):
                given = days + offset <= t_end
                table[given, d] = _indices(grid, days[given] + offset)
                ends[given] = np.maximum(ends[given], days[given] + offset + window)
            visits.append(vk)
            dose_k.append(table)
            dose_end.append(ends)
            last.append(float(days[-1]) if days.size else -np.inf)
        must = np.zeros(grid.size, dtype=bool)
        must[-1] = True
        if not triggers:
            must[:] = True
        fixed = np.array(sorted({float(d) for d in fixed_days if 0 <= d <= t_end}))
        if fixed.size:
            must[_indices(grid, fixed)] = True
        for vk in visits:
            must[vk] = True
        next_must = np.empty(grid.size, dtype=np.int64)
        nxt = grid.size
        for k in range(grid.size - 1, -1, -1):
            next_must[k] = nxt
            if must[k]:
                nxt = k
        fixed_window = np.zeros(grid.size, dtype=bool)
        if fixed.size:  # the latest event started by t decides (see time_grid)
            j = np.searchsorted(fixed - 1e-9, grid, side="right") - 1
            d = fixed[np.maximum(j, 0)]
            fixed_window = (j >= 0) & (grid < d + window - 1e-9)
        return cls(tuple(triggers), tuple(visits), tuple(dose_k), tuple(dose_end),
                   np.array(last, dtype=float), next_must, fixed_window, float(dt_event),
                   float(dt_max), float(window))

    def next_point(self, grid: np.ndarray, k: int, fired: np.ndarray) -> np.ndarray:
        """The grid index each individual (columns of ``fired``, (n_triggers, m)) at grid
        index ``k`` steps to next (the compiled engine's ``_next_point``)."""
        t = grid[k]
        m = fired.shape[1]
        own = np.full(m, bool(self.fixed_window[k]))
        stop = np.full(m, self.next_must[k], dtype=np.int64)
        for j in range(len(self.triggers)):
            fj = fired[j]
            if not np.any(fj >= 0):
                continue
            table = self.dose_k[j][np.maximum(fj, 0)]
            for d in range(table.shape[1]):
                dk = table[:, d]
                ok = (fj >= 0) & (dk >= 0)
                stop = np.where(ok & (dk > k) & (dk < stop), dk, stop)
                dd = grid[np.maximum(dk, 0)]
                own |= ok & (dd - 1e-9 <= t) & (t < dd + self.window - 1e-9)
        rel = grid - t
        far_event = np.searchsorted(rel, self.dt_event + 1e-9, side="right") - 1
        far_max = np.searchsorted(rel, self.dt_max + 1e-9, side="right") - 1
        far = np.where(own, far_event, far_max)
        return np.maximum(np.minimum(far, stop), k + 1)

    def settle_times(self, last_event: float, fired: np.ndarray) -> np.ndarray:
        """Per individual (columns of ``fired``, (n_triggers, n): the visit at which each
        trigger fired, -1 if not yet), the time from which its fate is settled: after the
        last fixed event and its window, the last visit of every trigger that has not fired,
        and the last dose (and its window) of every trigger that has."""
        out = np.full(fired.shape[1], float(last_event))
        for j in range(len(self.triggers)):
            fj = fired[j]
            ends = self.dose_end[j][np.maximum(fj, 0)] if self.dose_end[j].size else \
                np.full(fj.size, -np.inf)
            out = np.maximum(out, np.where(fj >= 0, ends, self.last_visit[j]))
        return out


def _indices(grid: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Grid indices of ``days`` (each within 1e-9 of a grid point)."""
    k = np.clip(np.searchsorted(grid, days - 1e-9), 0, grid.size - 1).astype(np.int64)
    if np.any(np.abs(grid[k] - days) > 1e-9):  # pragma: no cover - the grid holds them
        raise AssertionError("a trigger day is not on the time grid")
    return k

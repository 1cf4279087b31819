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
    def on(cls, triggers: Sequence[BoundTrigger], grid: np.ndarray, window: float
           ) -> TriggerPlan:
        """The plan of ``triggers`` on ``grid`` (which holds every day from :meth:`days`)."""
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
        return cls(tuple(triggers), tuple(visits), tuple(dose_k), tuple(dose_end),
                   np.array(last, dtype=float))

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

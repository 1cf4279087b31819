"""Result of a simulation: arrays plus tidy/wide tables with units and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ciksim.errors import CikError

if TYPE_CHECKING:
    from ciksim.model import Model
    from ciksim.protocol import Protocol


@dataclass(frozen=True)
class Result:
    """Trajectories of one run or a batch.

    ``states`` has shape (n_times, n_species, n_batch); ``times`` is in days; ``kept`` is the
    cumulative fraction of the culture kept through discarding splits (1 = nothing thrown
    away). ``result["name"]`` gives a species or derived quantity as (n_times, n_batch).
    """

    model: Model
    times: np.ndarray
    states: np.ndarray
    parameters: np.ndarray
    kept: np.ndarray
    protocol: Protocol | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.states.shape[2]

    @cached_property
    def _assigned(self) -> dict[str, np.ndarray]:
        nt, ns, n = self.states.shape
        y = np.moveaxis(self.states, 0, 1).reshape(ns, nt * n)
        p = np.tile(self.parameters, (1, nt))
        tt = np.repeat(self.times, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = self.model.compiled.assignments(tt, y, p)
        return {k: np.asarray(v).reshape(nt, n) for k, v in values.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        names = self.model.species_names
        if name in names:
            return self.states[:, names.index(name), :]
        if name in self._assigned:
            return self._assigned[name]
        if name in self.model.parameter_by_name:
            return np.broadcast_to(
                self.parameters[self.model.parameter_names.index(name)], self.states[:, 0].shape
            )
        raise CikError(
            f"result has no variable {name!r}; species: {', '.join(names)}; "
            f"derived: {', '.join(self._assigned)}"
        )

    @property
    def variables(self) -> list[str]:
        return [*self.model.species_names, *(a.name for a in self.model.assignments)]

    def units(self) -> dict[str, str]:
        """Unit of every variable in the tables."""
        return {v: self.model.unit_of(v) for v in self.variables}

    def at(self, day: float) -> dict[str, np.ndarray]:
        """All variables at output time ``day`` (must be one of ``times``)."""
        hits = np.nonzero(np.isclose(self.times, day))[0]
        if hits.size == 0:
            raise CikError(f"day {day:g} is not an output time; add it to times=")
        return {v: self[v][hits[0]] for v in self.variables}

    def wide(self) -> pd.DataFrame:
        """One row per (batch member, time); one column per variable."""
        nt, _, n = self.states.shape
        data: dict[str, np.ndarray] = {
            "batch": np.repeat(np.arange(n), nt),
            "time": np.tile(self.times, n),
        }
        for v in self.variables:
            data[v] = self[v].T.ravel()
        df = pd.DataFrame(data)
        df.attrs["units"] = {"time": self.model.time_unit, **self.units()}
        df.attrs["meta"] = self.meta
        return df

    def tidy(self) -> pd.DataFrame:
        """Long table: batch, time (day), variable, value, unit."""
        wide = self.wide()
        long = wide.melt(id_vars=["batch", "time"], var_name="variable", value_name="value")
        long["unit"] = long["variable"].map(self.units())
        long.attrs["meta"] = self.meta
        return long

"""Culture runs over many donors: daily summaries with donor bands, products, harvest plans."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ciksim.engines import Result, simulate
from ciksim.errors import DataError
from ciksim.model.variability import sample_parameters
from ciksim.models.culture import Donor, culture_model
from ciksim.protocol import Protocol
from ciksim.schemas.options import check_count, check_horizon

#: Columns of the daily summary, with units.
SUMMARY_UNITS = {
    "day": "day",
    "total_cells": "cells",
    "total_fold": "1",
    "cd3cd56_pct": "%",
    "cd3cd56_fold": "1",
    "cd3_pct": "%",
    "nk_pct": "%",
    "il2_iu_ml": "IU/mL",
    "viability_pct": "%",
}
QUANTILES = {"": 0.5, "_p05": 0.05, "_p95": 0.95}


@dataclass(frozen=True)
class CultureRun:
    """A protocol run for a batch of donors (donor ``i`` has parameter draw ``i``).

    ``total_cells`` and the folds count cells as if nothing had been discarded at splits
    (cumulative expansion); with ``cells = "keep"`` splits this is the real count.
    """

    protocol: Protocol
    result: Result
    seed: int
    start_cells: float
    donor: str = "healthy"

    @property
    def donors(self) -> int:
        return self.result.batch_size

    @property
    def days(self) -> np.ndarray:
        return self.result.times

    @cached_property
    def per_donor(self) -> dict[str, np.ndarray]:
        """Each summary quantity as an array (n_days, n_donors)."""
        r = self.result
        kept = r.kept
        total = r["total_cells"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return {
                "total_cells": total / kept,
                "total_fold": (total / kept) / total[0],
                "cd3cd56_pct": 100 * r["cd3cd56_cells"] / total,
                "cd3cd56_fold": (r["cd3cd56_cells"] / kept) / r["cd3cd56_cells"][0],
                "cd3_pct": 100 * r["cd3_cells"] / total,
                "nk_pct": 100 * r["NK"] / total,
                "il2_iu_ml": r["IL2"].clip(min=0),
                "viability_pct": 100 * r["viability"],
            }

    def summary(self) -> pd.DataFrame:
        """One row per day: donor median of each quantity and its 5th/95th percentiles."""
        cols: dict[str, np.ndarray] = {"day": self.days}
        for name, values in self.per_donor.items():
            for suffix, q in QUANTILES.items():
                cols[name + suffix] = np.quantile(values, q, axis=1)
        df = pd.DataFrame(cols)
        df.attrs["units"] = SUMMARY_UNITS
        return df

    def donor_table(self) -> pd.DataFrame:
        """Tidy per-donor table: protocol, donor, day and every summary quantity."""
        n_days, n = self.per_donor["total_cells"].shape
        data = {
            "protocol": self.protocol.name,
            "donor": np.repeat(np.arange(n), n_days),
            "day": np.tile(self.days, n),
        }
        for name, values in self.per_donor.items():
            data[name] = values.T.ravel()
        return pd.DataFrame(data)

    def cells_on(self, day: float, which: str = "cd3cd56") -> np.ndarray:
        """Harvestable cells of a kind (``cd3cd56``, ``cd3``, ``total``) per donor on a day."""
        key = {"cd3cd56": "cd3cd56_cells", "cd3": "cd3_cells", "total": "total_cells"}
        if which not in key:
            raise DataError(f"cells: unknown kind {which!r}; use cd3cd56, cd3 or total")
        idx = np.nonzero(np.isclose(self.days, day))[0]
        if idx.size == 0:
            raise DataError(f"day {day:g} is outside the culture (0-{self.days[-1]:g} days)")
        return self.result[key[which]][idx[0]]

    def product(self, day: float | None = None) -> dict[str, float]:
        """Median donor's product on ``day`` (default: harvest day): cells by phenotype."""
        day = float(day if day is not None else self.days[-1])
        r = self.result
        idx = int(np.argmin(np.abs(self.days - day)))
        t_cells = sum(r[s][idx] for s in ("T_rest", "T_g1a", "T_g1b", "T_act"))
        return {
            "day": day,
            "cd3cd56_cells": float(np.median(r["CIK"][idx])),
            "cd3_cd56neg_cells": float(np.median(t_cells)),
            "nk_cells": float(np.median(r["NK"][idx])),
            "other_cells": float(np.median(r["Other"][idx])),
        }


def time_progress(progress: Callable[[int, int], None] | None, horizons: Sequence[float],
              k: int, scale: float = 1.0) -> Callable[[float], None] | None:
    """A ``progress(done, total)`` counter of simulated time, in whole days × ``scale``, over
    runs one after another lasting ``horizons`` days: returns the function to tell the day
    run ``k`` has reached (the runs before it count whole), or None without ``progress``."""
    if progress is None:
        return None
    before, exact = sum(horizons[:k]) * scale, sum(horizons) * scale
    total = math.ceil(exact)

    def tell(t: float) -> None:
        x = before + t * scale
        progress(total if x >= exact else int(x), total)

    return tell


def culture_days(protocol: Protocol, days: float | None = None) -> float:
    """Days a run of ``protocol`` simulates: ``days`` (checked against the horizon limit),
    else the protocol's harvest day, else 21."""
    return check_horizon("max_culture_days",
                         days if days is not None else (protocol.harvest_day or 21.0),
                         field="days")


def run_culture(
    protocol: str | Path | Protocol = "cik-standard",
    *,
    days: float | None = None,
    donors: int = 200,
    seed: int = 0,
    start_cells: float | None = None,
    parameters: Mapping[str, float] | None = None,
    donor: str | Path | Donor = "healthy",
    progress: Callable[[float], None] | None = None,
) -> CultureRun:
    """Simulate a culture protocol for ``donors`` donors (log-normal parameter spread).

    ``days`` defaults to the protocol's harvest day (21 if it has none); output is daily.
    ``donors=1`` simulates the typical donor (every parameter at its value). ``donor`` is
    the starting material (``healthy``, ``patient-post-chemo`` or a TOML file): its
    parameters, and those the protocol sets, are the medians donors are drawn around.
    ``start_cells`` (PBMC seeded) defaults to the protocol's, else the model's 1e8.
    ``progress(day)`` is told the culture day the donors' batched solve has reached (it
    does not change the numbers).
    """
    proto = protocol if isinstance(protocol, Protocol) else Protocol.load(protocol)
    start_material = donor if isinstance(donor, Donor) else Donor.load(donor)
    model = culture_model()
    medians = {**proto.parameter_values(model), **start_material.parameters}
    if start_cells is None:
        start_cells = medians.get("start_cells", model.parameter_by_name["start_cells"].value)
    if not np.isfinite(start_cells) or start_cells <= 0:
        raise DataError(f"start_cells: must be > 0 cells, got {start_cells!r}")
    check_count("max_donors", donors, field="donors")
    t_end = culture_days(proto, days)
    pars: dict[str, object] = dict(medians)
    if donors > 1:
        pars.update(sample_parameters(model, donors, seed, medians=medians))
    pars.update(parameters or {})
    pars["start_cells"] = float(start_cells)
    times = np.arange(0.0, np.floor(t_end) + 1.0)
    result = simulate(model, proto, t_end, times=times, parameters=pars, seed=seed,
                      progress=progress)
    return CultureRun(protocol=proto, result=result, seed=seed, start_cells=float(start_cells),
                      donor=start_material.name)


@dataclass(frozen=True)
class HarvestPlan:
    """When the cells for a treatment course are ready, and the starting PBMC needed."""

    required_cells: float
    cells: str
    day_median: float | None
    day_p05: float | None
    by_day: float
    start_cells: float
    start_needed_median: float
    start_needed_p05: float

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def plan_harvest(
    run: CultureRun,
    *,
    dose: float,
    per: str = "kg",
    weight: float = 70.0,
    infusions: int = 1,
    cells: str = "cd3cd56",
    by_day: float | None = None,
) -> HarvestPlan:
    """Earliest day the median and the 5th-percentile donor reach ``dose``×course.

    Required cells = dose × weight (per ``kg``) or dose (per ``infusion``) × infusions.
    Starting PBMC needed by ``by_day`` (default: last culture day) scale linearly with the
    seeded cells, because the culture is seeded at a fixed density (every concentration and
    rate is then independent of scale).
    """
    if not np.isfinite(dose) or dose <= 0:
        raise DataError(f"dose: must be > 0 cells, got {dose!r}")
    if per not in ("kg", "infusion"):
        raise DataError(f"per: use 'kg' (dose per kg body weight) or 'infusion', not {per!r}")
    if per == "kg" and (not np.isfinite(weight) or weight <= 0):
        raise DataError(f"weight: must be > 0 kg, got {weight!r}")
    if isinstance(infusions, bool) or not isinstance(infusions, int) or infusions < 1:
        raise DataError(f"infusions: need a whole number >= 1, got {infusions!r}")
    required = dose * (weight if per == "kg" else 1.0) * infusions
    by = float(by_day if by_day is not None else run.days[-1])
    series = np.array([run.cells_on(d, cells) for d in run.days])
    med = np.quantile(series, 0.5, axis=1)
    p05 = np.quantile(series, 0.05, axis=1)

    def first(values: np.ndarray) -> float | None:
        hit = np.nonzero(values >= required)[0]
        return float(run.days[hit[0]]) if hit.size else None

    at_by = run.cells_on(by, cells)
    return HarvestPlan(
        required_cells=required,
        cells=cells,
        day_median=first(med),
        day_p05=first(p05),
        by_day=by,
        start_cells=run.start_cells,
        start_needed_median=run.start_cells * required / float(np.quantile(at_by, 0.5)),
        start_needed_p05=run.start_cells * required / float(np.quantile(at_by, 0.05)),
    )

"""Virtual post-transplant patients: relapse, acute GvHD and chimerism per patient.

A first endpoint layer for the allo model (issue 13): each patient of an
:class:`~ciksim.models.allo.AlloScenario` is drawn with an explicit seed and simulated with
the stochastic engine (exact leukemia-initiating cells); relapse is the first day the blast
fraction reaches the scenario's threshold (the engine's interpolated crossing), acute GvHD
grade II-IV the first grid day the overall grade reaches 2. Competing-risk estimation, NRM,
chronic GvHD and GRFS are not here yet (docs/models/allo.md, plan).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ciksim.engines.stochastic import simulate_stochastic
from ciksim.errors import DataError
from ciksim.model.variability import sample_parameters
from ciksim.models.allo import STOCHASTIC, AlloScenario, allo_model

#: Overall grade from which acute GvHD counts as clinically significant (grade II-IV).
AGVHD_GRADE = 2.0


@dataclass(frozen=True)
class AlloCohort:
    """Per-patient outcomes (days after the stem-cell infusion; NaN: did not happen by
    ``horizon_days``) and the seed that reproduces them."""

    table: pd.DataFrame
    seed: int
    horizon_days: float

    def share(self, column: str) -> float:
        """Share of patients in whom the event in ``column`` happened by the horizon."""
        return float(np.isfinite(self.table[column].to_numpy()).mean())


def simulate_allo_cohort(scenario: AlloScenario, n: int, seed: int, *,
                         horizon_days: float = 365.0, indices: np.ndarray | None = None
                         ) -> AlloCohort:
    """Simulate ``n`` patients of ``scenario`` (patient ``i`` gets the same draws and random
    stream for a given ``seed`` whatever the batch). Columns: ``relapse_day``,
    ``agvhd_day`` (grade >= II), ``peak_grade``, ``donor_chimerism`` at the horizon (or at
    relapse), ``cured`` (no leukemia-initiating cell left)."""
    if not np.isfinite(horizon_days) or horizon_days <= 0:
        raise DataError(f"horizon_days: give the follow-up in days (> 0), got {horizon_days!r}")
    model = allo_model()
    pars = sample_parameters(model, n, seed, medians=scenario.parameters,
                             variability=scenario.variability, indices=indices)
    res = simulate_stochastic(model, scenario.protocol, horizon_days, stochastic=STOCHASTIC,
                              parameters=pars, seed=seed, indices=indices,
                              watch="blast_fraction", threshold=scenario.relapse_threshold,
                              stop_after_crossing=False, record=True, engine="reference")
    grade = res.series("gvhd_grade")
    reached = grade >= AGVHD_GRADE
    first = np.where(reached.any(axis=0), res.grid[np.argmax(reached, axis=0)], np.nan)
    lic = res.series("LIC")
    table = pd.DataFrame({
        "patient": res.indices,
        "relapse_day": res.crossing_time,
        "agvhd_day": first,
        "peak_grade": grade.max(axis=0),
        "donor_chimerism": res.series("donor_chimerism")[-1],
        "cured": lic[-1] == 0,
    })
    table.attrs.update({"seed": seed, "horizon_days": horizon_days,
                        "scenario": scenario.name, "donor": scenario.donor,
                        "conditioning": scenario.conditioning})
    return AlloCohort(table, seed, float(horizon_days))

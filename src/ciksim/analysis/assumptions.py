"""How much the chemotherapy-only arm depends on the patient model's assumed parameters.

One at a time, each assumed parameter (source "assumed", no direct measurement) is set to
the low and the high end of its declared plausible range in the ``aml-cr1`` population (all
else at the scenario's values and spreads, the same virtual patients and random streams),
and the arm's relapse share, median relapse-free survival and 5-year death in remission are
recomputed. The table is quoted in ``docs/models/patient.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from ciksim.analysis.patient import run_patients
from ciksim.errors import DataError
from ciksim.models.patient import Scenario, patient_model
from ciksim.trial.estimands import cumulative_incidence, event_labels, incidence_at

#: Assumed parameters that act on the chemotherapy-only arm (CIK-only and assay parameters,
#: which cannot change it, are left out).
CHEMO_ASSUMED = ("k_aq", "k_qa", "d_B", "logkill_Q", "N0_frac", "logkill_N", "nrm_late")


def _arm(scen: Scenario, patients: int, seed: int) -> dict[str, float]:
    from lifelines import KaplanMeierFitter

    df = run_patients(scen, replicates=patients, years=6.0, seed=seed).outcomes()
    km = KaplanMeierFitter().fit(df["duration"], event_labels(df["event"]) != "censored")
    med = float(km.median_survival_time_)
    nrm = cumulative_incidence(df, "death")
    return {"relapse_share": float((df["event"] == "relapse").mean()),
            "median_rfs_months": med if math.isfinite(med) else float("nan"),
            "nrm_5y": incidence_at(nrm, 60.0)}


def chemo_sensitivity(parameters: Sequence[str] = CHEMO_ASSUMED, *, patients: int = 1000,
                      seed: int = 0, scenario: str = "aml-cr1") -> pd.DataFrame:
    """One row per (parameter, setting): the chemo-only arm at the range's ends and at the
    default (``setting`` = low / default / high)."""
    model = patient_model()
    bad = [p for p in parameters if p not in model.parameter_by_name]
    if bad:
        raise DataError(f"parameters: unknown patient-model parameter(s) {', '.join(bad)}")
    base = Scenario.load(scenario)
    rows = [{"parameter": "(all at default)", "setting": "default", "value": np.nan,
             **_arm(base, patients, seed)}]
    for name in parameters:
        p = model.parameter_by_name[name]
        for setting, value in (("low", p.low), ("high", p.high)):
            scen = replace(base, parameters={**base.parameters, name: value},
                           variability={**base.variability, name: 0.0})
            rows.append({"parameter": name, "setting": setting, "value": value,
                         **_arm(scen, patients, seed)})
    return pd.DataFrame(rows)

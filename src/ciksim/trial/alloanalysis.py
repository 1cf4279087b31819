"""Summary of an allo trial: per arm GRFS, OS and RFS (Kaplan-Meier), cumulative
incidences of relapse, NRM, acute GvHD II-IV and chronic GvHD (Aalen-Johansen), and every
later arm compared with the first on the primary endpoint (hazard ratio with the
proportional-hazards test, log-rank p, milestone and RMST differences). Every number is
lifelines' (:mod:`ciksim.trial.estimands`) on the per-patient table of
:mod:`ciksim.trial.allosim`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ciksim.trial.estimands import (
    ENDPOINTS,
    cox,
    cumulative_incidence,
    incidence_at,
    kaplan_meier,
    logrank_p,
    milestone,
    rmst,
    survival_difference,
)

#: Milestones (months) reported per arm, those within follow-up.
MILESTONES = (6, 12, 24, 36)
#: Survival endpoints (Kaplan-Meier) and cumulative incidences (Aalen-Johansen) per arm.
SURVIVAL = ("grfs", "os", "rfs")
INCIDENCE = {"cir": "relapse", "nrm": "death", "agvhd": "agvhd", "cgvhd": "cgvhd"}
#: Plain labels of the per-arm keys (reports, CLI).
LABELS = {"grfs": "GRFS", "os": "overall survival", "rfs": "relapse-free survival",
          "cir": "relapse (cumulative incidence)", "nrm": "non-relapse mortality",
          "agvhd": "acute GvHD II-IV (cumulative incidence)",
          "cgvhd": "chronic GvHD (cumulative incidence)"}


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def allo_arm_endpoints(df: pd.DataFrame, follow_up_months: float,
                       horizon_months: float, endpoint: str = "grfs") -> list[dict[str, Any]]:
    """Per arm: n, every survival and incidence at each milestone within follow-up, RMST of
    the primary ``endpoint`` up to ``horizon_months``, the share given donor cells and the
    median day of their first infusion, and what ended GRFS first (shares)."""
    out = []
    for name, g in _ok(df).groupby("arm", sort=False):
        row: dict[str, Any] = {"name": str(name), "n": len(g)}
        kms = {e: kaplan_meier(g, e) for e in SURVIVAL}
        cifs = {k: cumulative_incidence(g, of) for k, of in INCIDENCE.items()}
        for m in MILESTONES:
            inside = m <= follow_up_months + 1e-9
            for e, km in kms.items():
                row[f"{e}_{m}m"] = milestone(km, m) if inside else None
            for k, c in cifs.items():
                row[f"{k}_{m}m"] = incidence_at(c, m) if inside else None
        row["rmst_months"] = (rmst(kms[endpoint], horizon_months)[0]
                              if horizon_months <= follow_up_months + 1e-9 else None)
        first = g["first_infusion_day"].to_numpy(float)
        row["given_donor_cells"] = float(np.isfinite(first).mean())
        med = float(np.nanmedian(first)) if np.isfinite(first).any() else math.nan
        row["median_first_infusion_day"] = med if math.isfinite(med) else None
        row["grfs_ended_by"] = {str(k): float(v) for k, v in
                                g["grfs_first"].value_counts(normalize=True).items()}
        out.append(row)
    return out


def allo_compare(df: pd.DataFrame, control: str, other: str, endpoint: str,
                 horizon_months: float) -> dict[str, Any]:
    """``other`` vs ``control`` on ``endpoint``: Cox HR (95% CI) with the PH test, log-rank
    p, and the milestone and RMST differences at ``horizon_months``."""
    d = _ok(df)
    c = cox(d, control, other, endpoint)
    return {"arm": other, "versus": control, "endpoint": endpoint,
            "logrank_p": logrank_p(d, control, other, endpoint),
            "hazard_ratio": c["hazard_ratio"], "hazard_ratio_ci": c["hazard_ratio_ci"],
            "ph_test_p": c["ph_test_p"],
            **survival_difference(d, control, other, horizon_months, endpoint)}


def summarize_allo(df: pd.DataFrame, arm_names: Sequence[str], follow_up_months: float,
                   endpoint: str = "grfs", horizon_months: float = 24.0) -> dict[str, Any]:
    """The allo trial's summary: arms, and every later arm compared with the first."""
    horizon = min(horizon_months, follow_up_months)
    arms = allo_arm_endpoints(df, follow_up_months, horizon, endpoint)
    comparisons = [allo_compare(df, arm_names[0], n, endpoint, horizon)
                   for n in arm_names[1:]]
    first = comparisons[0] if comparisons else {}
    from ciksim.trial.allosim import EVENT_NAMES, not_modelled

    return {
        "setting": "allo", "endpoint": endpoint, "endpoint_label": ENDPOINTS[endpoint],
        "arms": arms,
        "hazard_ratio": first.get("hazard_ratio"),
        "hazard_ratio_ci": first.get("hazard_ratio_ci"),
        "ph_test_p": first.get("ph_test_p"), "logrank_p": first.get("logrank_p"),
        "comparisons": comparisons, "rmst_horizon_months": horizon,
        "milestones_months": [m for m in MILESTONES if m <= follow_up_months + 1e-9],
        "not_modelled": [EVENT_NAMES[c] for c in not_modelled()],
        "failed_patients": int((df["status"] != "ok").sum()),
    }

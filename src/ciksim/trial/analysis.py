"""Survival analysis of a trial with lifelines: Kaplan-Meier, log-rank, Cox, power.

The estimands themselves (RMST, milestone survival, Aalen-Johansen cumulative incidences,
Cox with its proportional-hazards test) are :mod:`ciksim.trial.estimands`; this module
summarises a trial's arms and comparisons (intention to treat, and per protocol).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ciksim.errors import DataError
from ciksim.trial.delivery import per_protocol
from ciksim.trial.estimands import (
    arm_endpoints,
    cox,
    endpoint_data,
    event_labels,
    kaplan_meier,
    logrank_p,
)

YEARS = (1, 2, 3, 4)


def _analysable(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def arm_summary(df: pd.DataFrame, follow_up_months: float) -> list[dict[str, Any]]:
    """Per arm: n, relapse, death-in-remission and cure fractions, RFS at 1-4 years, median
    RFS (months; relapse and death in remission both end RFS)."""
    out = []
    for name, g in _analysable(df).groupby("arm", sort=False):
        km = kaplan_meier(g, "rfs")
        labels = event_labels(g["event"])
        row: dict[str, Any] = {"name": str(name), "n": len(g),
                               "relapse_fraction": float((labels == "relapse").mean()),
                               "death_in_remission_fraction": float((labels == "death").mean()),
                               "cure_fraction": float(g["cured"].mean())}
        for y in YEARS:
            t = 12.0 * y
            row[f"rfs_{y}y"] = (float(km.survival_function_at_times(t).iloc[0])
                                if t <= follow_up_months + 1e-9 else None)
        med = float(km.median_survival_time_)
        row["median_rfs_months"] = med if math.isfinite(med) else None
        out.append(row)
    return out


def compare(df: pd.DataFrame, control: str, other: str) -> dict[str, Any]:
    """Cox hazard ratio (other vs control) with 95% CI and lifelines' proportional-hazards
    test next to it, and the log-rank p-value (estimands: lifelines on the same data)."""
    d = _analysable(df)
    c = cox(d, control, other)
    return {"arm": other, "versus": control, "logrank_p": logrank_p(d, control, other),
            "hazard_ratio": c["hazard_ratio"], "hazard_ratio_ci": c["hazard_ratio_ci"],
            "ph_test_statistic": c["ph_test_statistic"], "ph_test_p": c["ph_test_p"]}


def summarize(df: pd.DataFrame, arm_names: Sequence[str], follow_up_months: float
              ) -> dict[str, Any]:
    """The trial's summary: arms, and every later arm compared with the first."""
    arms = arm_summary(df, follow_up_months)
    ok = _analysable(df)
    horizon = min(36.0, follow_up_months)
    extra = {r["name"]: r for r in arm_endpoints(ok, follow_up_months, YEARS, horizon)}
    for row in arms:
        row.update({k: v for k, v in extra[row["name"]].items() if k not in row})
        if "delivery" in df:
            g = df[df["arm"] == row["name"]]
            row["delivery"] = {str(k): int(v) for k, v in g["delivery"].value_counts().items()}
    comparisons = [compare(df, arm_names[0], n) for n in arm_names[1:]]
    pp = per_protocol(df)
    per_prot = [compare(pp, arm_names[0], n) for n in arm_names[1:]
                if (pp["arm"] == n).any()] if "delivery" in df else []
    first = comparisons[0] if comparisons else {}
    return {
        "arms": arms,
        "hazard_ratio": first.get("hazard_ratio"),
        "hazard_ratio_ci": first.get("hazard_ratio_ci"),
        "ph_test_p": first.get("ph_test_p"),
        "logrank_p": first.get("logrank_p"),
        "comparisons": comparisons,
        "per_protocol": per_prot,
        "rmst_horizon_months": horizon,
        "failed_patients": int((df["status"] != "ok").sum()),
    }


def power_from_pool(pool: pd.DataFrame, control: str, other: str, ns: Sequence[int],
                    repeats: int, alpha: float = 0.05, endpoint: str = "rfs"
                    ) -> pd.DataFrame:
    """Share of significant log-rank tests on ``endpoint`` (rfs, os or, in allo trials,
    grfs) for trials of n patients per arm.

    Repeat r of size n uses patients r·n … (r+1)·n − 1 of each arm's pool, so the repeats
    of one size are independent trials.
    """
    from lifelines.statistics import logrank_test
    from scipy import stats

    d = _analysable(pool)
    a = d[d["arm"] == control].sort_values("patient")
    b = d[d["arm"] == other].sort_values("patient")
    rows = []
    for n in ns:
        if (repeats * n) > min(len(a), len(b)):
            raise DataError(f"power: the pool has too few patients for {repeats} x {n}")
        hits = 0
        for r in range(repeats):
            sa, sb = a.iloc[r * n:(r + 1) * n], b.iloc[r * n:(r + 1) * n]
            (ta, ea), (tb, eb) = endpoint_data(sa, endpoint), endpoint_data(sb, endpoint)
            p = logrank_test(ta, tb, ea, eb).p_value
            hits += p < alpha
        ci = stats.binomtest(hits, repeats).proportion_ci(0.95)
        rows.append({"n_per_arm": int(n), "power": hits / repeats, "power_ci_low": ci.low,
                     "power_ci_high": ci.high, "repeats": repeats, "alpha": alpha})
    return pd.DataFrame(rows)

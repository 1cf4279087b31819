"""Survival analysis of a trial with lifelines: Kaplan-Meier, log-rank, Cox, power.

Relapse is the only event (deaths in remission are not modelled), so the cumulative
incidence of relapse is 1 − Kaplan-Meier relapse-free survival.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ciksim.errors import DataError

YEARS = (1, 2, 3, 4)


def _analysable(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"]


def arm_summary(df: pd.DataFrame, follow_up_months: float) -> list[dict[str, Any]]:
    """Per arm: n, relapse and cure fractions, RFS at 1-4 years, median RFS (months)."""
    from lifelines import KaplanMeierFitter

    out = []
    for name, g in _analysable(df).groupby("arm", sort=False):
        km = KaplanMeierFitter().fit(g["duration"], g["event"])
        row: dict[str, Any] = {"name": str(name), "n": len(g),
                               "relapse_fraction": float(g["event"].mean()),
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
    """Cox hazard ratio (other vs control) with 95% CI, and the log-rank p-value."""
    from lifelines import CoxPHFitter
    from lifelines.statistics import logrank_test

    d = _analysable(df)
    a, b = d[d["arm"] == control], d[d["arm"] == other]
    if a.empty or b.empty:
        raise DataError(f"compare: arm {control!r} or {other!r} has no patients")
    lr = logrank_test(a["duration"], b["duration"], a["event"], b["event"])
    result: dict[str, Any] = {"arm": other, "versus": control,
                              "logrank_p": float(lr.p_value), "hazard_ratio": None,
                              "hazard_ratio_ci": None}
    if a["event"].sum() + b["event"].sum() > 0:
        data = pd.DataFrame({"duration": np.concatenate([a["duration"], b["duration"]]),
                             "event": np.concatenate([a["event"], b["event"]]),
                             "treated": np.r_[np.zeros(len(a)), np.ones(len(b))]})
        cph = CoxPHFitter().fit(data, "duration", "event")
        ci = np.exp(cph.confidence_intervals_.loc["treated"].to_numpy())
        result["hazard_ratio"] = float(cph.hazard_ratios_["treated"])
        result["hazard_ratio_ci"] = [float(ci[0]), float(ci[1])]
    return result


def summarize(df: pd.DataFrame, arm_names: Sequence[str], follow_up_months: float
              ) -> dict[str, Any]:
    """The trial's summary: arms, and every later arm compared with the first."""
    arms = arm_summary(df, follow_up_months)
    comparisons = [compare(df, arm_names[0], n) for n in arm_names[1:]]
    first = comparisons[0] if comparisons else {}
    return {
        "arms": arms,
        "hazard_ratio": first.get("hazard_ratio"),
        "hazard_ratio_ci": first.get("hazard_ratio_ci"),
        "logrank_p": first.get("logrank_p"),
        "comparisons": comparisons,
        "failed_patients": int((df["status"] != "ok").sum()),
    }


def power_from_pool(pool: pd.DataFrame, control: str, other: str, ns: Sequence[int],
                    repeats: int, alpha: float = 0.05) -> pd.DataFrame:
    """Share of significant log-rank tests for trials of n patients per arm.

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
            p = logrank_test(sa["duration"], sb["duration"], sa["event"], sb["event"]).p_value
            hits += p < alpha
        ci = stats.binomtest(hits, repeats).proportion_ci(0.95)
        rows.append({"n_per_arm": int(n), "power": hits / repeats, "power_ci_low": ci.low,
                     "power_ci_high": ci.high, "repeats": repeats, "alpha": alpha})
    return pd.DataFrame(rows)

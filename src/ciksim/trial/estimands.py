"""Trial estimands, all computed by lifelines on one per-patient event table.

A trial's per-patient table has a ``duration`` (months from remission to the patient's first
event or to the end of follow-up) and an ``event`` label: ``relapse``, ``death`` (death in
remission, non-relapse mortality) or ``censored`` (older tables code relapse as 1 and
censoring as 0). Overall survival uses ``os_duration`` (months) and ``os_event`` (1: died).

Endpoints (DESIGN "Competing events"):

* relapse-free survival (RFS): relapse or death in remission, whichever comes first;
* overall survival (OS): death from any cause;
* cumulative incidence of relapse (CIR) and of non-relapse mortality (NRM): lifelines'
  Aalen-Johansen estimator, the other event competing;
* in the allogeneic setting (tables of :mod:`ciksim.trial.allosim`) also GvHD-free,
  relapse-free survival (GRFS: ``grfs_duration``/``grfs_event``) and the cumulative
  incidences of acute GvHD grade II-IV and of chronic GvHD, relapse and death competing
  (``agvhd_*``/``cgvhd_*`` columns coded 1 GvHD, 2 competing event, 0 censored).

Measures: Kaplan-Meier milestone survival, restricted mean survival time (RMST, lifelines'
``restricted_mean_survival_time`` on the Kaplan-Meier curve), the Cox hazard ratio always
reported with lifelines' proportional-hazards test (``proportional_hazard_test``), the
log-rank test, and the fixed-time survival difference test (Klein 2007). Nothing here is a
hand-written estimator: every number is lifelines' on the same data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ciksim.errors import DataError

#: Labels of the ``event`` column.
EVENTS = ("relapse", "death", "censored")
#: Integer codes of the labels for lifelines' Aalen-Johansen estimator.
EVENT_CODES = {"censored": 0, "relapse": 1, "death": 2}
#: Endpoints a trial's primary analysis may use (time-to-event, one event indicator).
ENDPOINTS = {"rfs": "relapse-free survival", "os": "overall survival",
             "grfs": "GvHD-free, relapse-free survival"}
#: Cumulative incidences (Aalen-Johansen) and what competes with each.
INCIDENCES = {"relapse": "relapse (non-relapse mortality competing)",
              "death": "non-relapse mortality (relapse competing)",
              "agvhd": "acute GvHD grade II-IV (relapse and death competing)",
              "cgvhd": "chronic GvHD (relapse and death competing)"}
#: Primary analyses and what they test.
ANALYSES = {"logrank": "log-rank test", "cox": "Cox proportional hazards (Wald test)",
            "rmst": "difference in restricted mean survival time",
            "milestone": "difference in milestone survival (Klein 2007 log(-log) test)"}


def event_labels(events: pd.Series | np.ndarray | Sequence[Any]) -> np.ndarray:
    """The ``event`` column as labels; integer codes 1/0 (older tables) mean relapse/censored.

    Raises ``DataError`` naming any unknown label.
    """
    e = np.asarray(events)
    if e.dtype.kind in "biu":
        if not np.isin(e, (0, 1)).all():
            raise DataError("event: integer events must be 1 (relapse) or 0 (censored)")
        return np.where(e == 1, "relapse", "censored").astype(object)
    e = e.astype(str)
    unknown = sorted(set(e.tolist()) - set(EVENTS))
    if unknown:
        raise DataError(f"event: unknown label(s) {', '.join(unknown)}; use "
                        f"{', '.join(EVENTS)}")
    return e.astype(object)


def endpoint_data(df: pd.DataFrame, endpoint: str = "rfs") -> tuple[np.ndarray, np.ndarray]:
    """Durations (months) and event indicators (1: event, 0: censored) of ``endpoint``."""
    if endpoint == "rfs":
        return (df["duration"].to_numpy(float),
                (event_labels(df["event"]) != "censored").astype(int))
    if endpoint == "os":
        if "os_duration" not in df or "os_event" not in df:
            raise DataError("endpoint os: the table has no os_duration/os_event columns "
                            "(simulate the trial with this version of ciksim)")
        return df["os_duration"].to_numpy(float), df["os_event"].to_numpy(int)
    if endpoint == "grfs":
        if "grfs_duration" not in df or "grfs_event" not in df:
            raise DataError("endpoint grfs: the table has no grfs_duration/grfs_event columns; "
                            "GRFS needs an allo trial (population scenario allo-aml-cr)")
        return df["grfs_duration"].to_numpy(float), df["grfs_event"].to_numpy(int)
    raise DataError(f"endpoint: {endpoint!r} is not a time-to-event endpoint a trial can be "
                    f"analysed on; use {' or '.join(ENDPOINTS)}")


def kaplan_meier(df: pd.DataFrame, endpoint: str = "rfs", label: str | None = None) -> Any:
    """lifelines' ``KaplanMeierFitter`` fitted to ``endpoint`` of ``df``."""
    from lifelines import KaplanMeierFitter

    t, e = endpoint_data(df, endpoint)
    return KaplanMeierFitter(label=label or endpoint).fit(t, e)


def milestone(km: Any, months: float) -> float:
    """Kaplan-Meier survival at ``months``."""
    return float(km.survival_function_at_times(months).iloc[0])


def rmst(km: Any, months: float, variance: bool = False) -> tuple[float, float | None]:
    """Restricted mean survival time up to ``months`` (months) and, if asked, its variance
    (months²; lifelines integrates the step curve with ``quad``, whose subdivision warning
    is silenced)."""
    import warnings

    from lifelines.utils import restricted_mean_survival_time
    from scipy.integrate import IntegrationWarning

    if not variance:
        return float(restricted_mean_survival_time(km, t=months)), None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=IntegrationWarning)
        value, var = restricted_mean_survival_time(km, t=months, return_variance=True)
    return float(value), float(var)


def cumulative_incidence(df: pd.DataFrame, of: str = "relapse", seed: int = 0) -> pd.Series:
    """Aalen-Johansen cumulative incidence of ``of`` indexed by months: ``relapse`` or
    ``death`` (the other competing), or in allo tables ``agvhd``/``cgvhd`` (relapse and
    death competing). Tied times are broken by lifelines' seeded jitter."""
    from lifelines import AalenJohansenFitter

    if of not in INCIDENCES:
        raise DataError(f"cumulative incidence: of must be one of {', '.join(INCIDENCES)}, "
                        f"not {of!r}")
    if of in ("relapse", "death"):
        labels = event_labels(df["event"])
        codes = np.array([EVENT_CODES[x] for x in labels], dtype=int)
        times, target = df["duration"].to_numpy(float), EVENT_CODES[of]
    else:
        if f"{of}_duration" not in df or f"{of}_event" not in df:
            raise DataError(f"cumulative incidence of {of}: the table has no {of}_duration/"
                            f"{of}_event columns (an allo trial has them)")
        times, codes, target = (df[f"{of}_duration"].to_numpy(float),
                                df[f"{of}_event"].to_numpy(int), 1)
    if not (codes == target).any():
        return pd.Series([0.0], index=[0.0], name=f"CIF_{of}")
    aj = AalenJohansenFitter(seed=seed, calculate_variance=False)
    aj.fit(times, codes, event_of_interest=target)
    return aj.cumulative_density_.iloc[:, 0].rename(f"CIF_{of}")


def incidence_at(curve: pd.Series, months: float) -> float:
    """A cumulative-incidence step curve evaluated at ``months``."""
    before = curve[curve.index <= months]
    return float(before.iloc[-1]) if len(before) else 0.0


def _two_arms(df: pd.DataFrame, control: str, treated: str) -> tuple[pd.DataFrame,
                                                                       pd.DataFrame]:
    a, b = df[df["arm"] == control], df[df["arm"] == treated]
    if a.empty or b.empty:
        raise DataError(f"compare: arm {control!r} or {treated!r} has no patients; the "
                        f"arms are {', '.join(map(str, df['arm'].unique()))}")
    return a, b


def cox(df: pd.DataFrame, control: str, treated: str, endpoint: str = "rfs",
        ph_test: bool = True) -> dict[str, Any]:
    """Cox hazard ratio (``treated`` vs ``control``) with its 95% CI, standard error of the
    log HR and Wald p, with lifelines' proportional-hazards test (rank time transform) next
    to it (``ph_test`` False skips it, for internal use where no HR is reported). ``None``
    values when there are no events."""
    from lifelines import CoxPHFitter
    from lifelines.statistics import proportional_hazard_test

    a, b = _two_arms(df, control, treated)
    ta, ea = endpoint_data(a, endpoint)
    tb, eb = endpoint_data(b, endpoint)
    out: dict[str, Any] = {"hazard_ratio": None, "hazard_ratio_ci": None, "log_hr": None,
                           "log_hr_se": None, "cox_p": None, "ph_test_statistic": None,
                           "ph_test_p": None}
    if ea.sum() + eb.sum() == 0:
        return out
    data = pd.DataFrame({"duration": np.concatenate([ta, tb]),
                         "event": np.concatenate([ea, eb]),
                         "treated": np.r_[np.zeros(len(ta)), np.ones(len(tb))]})
    import warnings

    from lifelines.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # separation (an arm without events) in small trials:
        warnings.simplefilter("ignore", ConvergenceWarning)  # the CI then says so
        cph = CoxPHFitter().fit(data, "duration", "event")
    with np.errstate(over="ignore"):  # no events in one arm: the CI's end is infinite
        ci = np.exp(cph.confidence_intervals_.loc["treated"].to_numpy())
    out.update({
        "hazard_ratio": float(cph.hazard_ratios_["treated"]),
        "hazard_ratio_ci": [float(ci[0]), float(ci[1])],
        "log_hr": float(cph.params_["treated"]),
        "log_hr_se": float(cph.standard_errors_["treated"]),
        "cox_p": float(cph.summary.loc["treated", "p"]),
    })
    if ph_test:
        ph = proportional_hazard_test(cph, data, time_transform="rank")
        out["ph_test_statistic"] = float(np.ravel(ph.test_statistic)[0])
        out["ph_test_p"] = float(np.ravel(ph.p_value)[0])
    return out


def logrank_p(df: pd.DataFrame, control: str, treated: str, endpoint: str = "rfs") -> float:
    """lifelines' log-rank p-value of ``endpoint`` between two arms."""
    from lifelines.statistics import logrank_test

    a, b = _two_arms(df, control, treated)
    ta, ea = endpoint_data(a, endpoint)
    tb, eb = endpoint_data(b, endpoint)
    return float(logrank_test(ta, tb, ea, eb).p_value)


@dataclass(frozen=True)
class Analysis:
    """A trial's planned primary analysis: endpoint, test, horizon and success rule.

    ``horizon_months`` is the RMST restriction time and the milestone time. The trial
    succeeds when the test's p-value is below ``alpha`` (two-sided) and the treated arm is
    better (longer survival).
    """

    endpoint: str = "rfs"
    test: str = "logrank"
    horizon_months: float = 36.0
    alpha: float = 0.05

    def check(self, follow_up_months: float, where: str = "analysis") -> None:
        """Raise ``DataError`` when the endpoint cannot support this analysis."""
        if self.endpoint not in ENDPOINTS:
            raise DataError(f"{where}.endpoint: {self.endpoint!r} cannot be a trial's primary "
                            f"endpoint; use {' or '.join(ENDPOINTS)} (cumulative incidences "
                            "of relapse and death are reported, not tested)")
        if self.test not in ANALYSES:
            raise DataError(f"{where}.test: unknown {self.test!r}; use {', '.join(ANALYSES)}")
        if not (0 < self.alpha < 1):
            raise DataError(f"{where}.alpha: must be in (0, 1), got {self.alpha!r}")
        if not (math.isfinite(self.horizon_months) and self.horizon_months > 0):
            raise DataError(f"{where}.horizon_months: must be > 0 months")
        if self.test in ("rmst", "milestone") and self.horizon_months > follow_up_months + 1e-9:
            raise DataError(f"{where}.horizon_months: {self.horizon_months:g} months is beyond "
                            f"the follow-up ({follow_up_months:g} months); a {self.test} "
                            "analysis cannot look past it: shorten the horizon or lengthen "
                            "follow_up_years")

    def evaluate(self, df: pd.DataFrame, control: str, treated: str) -> dict[str, Any]:
        """The analysis on a trial's table: p-value, direction and success."""
        from lifelines.statistics import survival_difference_at_fixed_point_in_time_test
        from scipy import stats

        a, b = _two_arms(df, control, treated)
        if self.test == "logrank":
            p = logrank_p(df, control, treated, self.endpoint)
            ka, kb = kaplan_meier(a, self.endpoint), kaplan_meier(b, self.endpoint)
            better = rmst(kb, self.horizon_months)[0] > rmst(ka, self.horizon_months)[0]
        elif self.test == "cox":
            c = cox(df, control, treated, self.endpoint)
            p = c["cox_p"] if c["cox_p"] is not None else 1.0
            better = c["log_hr"] is not None and c["log_hr"] < 0
        elif self.test == "rmst":
            (ra, va) = rmst(kaplan_meier(a, self.endpoint), self.horizon_months, True)
            (rb, vb) = rmst(kaplan_meier(b, self.endpoint), self.horizon_months, True)
            se = math.sqrt(va + vb)
            p = float(2 * stats.norm.sf(abs(rb - ra) / se)) if se > 0 else 1.0
            better = rb > ra
        else:
            ka, kb = kaplan_meier(a, self.endpoint), kaplan_meier(b, self.endpoint)
            sa, sb = milestone(ka, self.horizon_months), milestone(kb, self.horizon_months)
            if 0 < sa < 1 and 0 < sb < 1:
                p = float(survival_difference_at_fixed_point_in_time_test(
                    self.horizon_months, ka, kb).p_value)
            else:
                p = 1.0
            better = sb > sa
        return {"p": float(p), "better": bool(better), "success": bool(p < self.alpha
                                                                        and better)}

    def as_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "test": self.test,
                "horizon_months": self.horizon_months, "alpha": self.alpha,
                "description": f"{ANALYSES[self.test]} on {ENDPOINTS[self.endpoint]}, "
                               f"two-sided alpha {self.alpha:g}; success: p < alpha and the "
                               "treated arm better"}


def survival_difference(df: pd.DataFrame, control: str, treated: str,
                        horizon_months: float = 36.0, endpoint: str = "rfs"
                        ) -> dict[str, float]:
    """Difference (treated − control) in milestone survival at ``horizon_months``
    (fraction) and in RMST up to it (months), from the arms' Kaplan-Meier curves."""
    a, b = _two_arms(df, control, treated)
    ka, kb = kaplan_meier(a, endpoint), kaplan_meier(b, endpoint)
    return {"delta_milestone": milestone(kb, horizon_months) - milestone(ka, horizon_months),
            "delta_rmst": rmst(kb, horizon_months)[0] - rmst(ka, horizon_months)[0]}


def effect(df: pd.DataFrame, control: str, treated: str, horizon_months: float = 36.0,
           endpoint: str = "rfs", ph_test: bool = True) -> dict[str, Any]:
    """The treatment effect on ``endpoint`` at ``horizon_months``: difference in milestone
    survival (treated − control, fraction), difference in RMST (months), log HR and its
    standard error (with the proportional-hazards test's p unless ``ph_test`` is False)."""
    c = cox(df, control, treated, endpoint, ph_test)
    return {**survival_difference(df, control, treated, horizon_months, endpoint),
            "log_hr": c["log_hr"], "log_hr_se": c["log_hr_se"],
            **({"ph_test_p": c["ph_test_p"]} if ph_test else {})}


def arm_endpoints(df: pd.DataFrame, follow_up_months: float,
                  years: Sequence[int] = (1, 2, 3, 4), horizon_months: float = 36.0
                  ) -> list[dict[str, Any]]:
    """Per arm: RFS and OS at whole years (Kaplan-Meier), CIR and NRM (Aalen-Johansen) and
    RMST of RFS/OS at ``horizon_months``. Values past follow-up are None."""
    out = []
    for name, g in df.groupby("arm", sort=False):
        km = kaplan_meier(g, "rfs")
        km_os = kaplan_meier(g, "os") if "os_duration" in g else None
        cir, nrm = cumulative_incidence(g, "relapse"), cumulative_incidence(g, "death")
        row: dict[str, Any] = {"name": str(name), "n": len(g)}
        for y in years:
            t = 12.0 * y
            inside = t <= follow_up_months + 1e-9
            row[f"rfs_{y}y"] = milestone(km, t) if inside else None
            row[f"os_{y}y"] = milestone(km_os, t) if inside and km_os is not None else None
            row[f"cir_{y}y"] = incidence_at(cir, t) if inside else None
            row[f"nrm_{y}y"] = incidence_at(nrm, t) if inside else None
        inside = horizon_months <= follow_up_months + 1e-9
        row["rmst_rfs_months"] = rmst(km, horizon_months)[0] if inside else None
        row["rmst_os_months"] = (rmst(km_os, horizon_months)[0]
                                 if inside and km_os is not None else None)
        out.append(row)
    return out

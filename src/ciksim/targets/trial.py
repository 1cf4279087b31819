"""Trial targets T1-T2, computed from the default trial (examples/aml-adjuvant-cik.toml)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pandas as pd

from ciksim.targets.base import TargetCheck, within
from ciksim.trial.analysis import summarize
from ciksim.trial.estimands import event_labels
from ciksim.trial.runner import TrialRun, run_trial
from ciksim.trial.spec import TrialSpec

#: Product composition used by the target trials (the cik-gmp typical donor, culture model).
COMPOSITION = {"f_cik": 0.49, "f_t": 0.47, "f_nk": 0.035}

DEFAULT_TRIAL = {
    "name": "aml-adjuvant-cik", "seed": 2026, "patients_per_arm": 2000, "follow_up_years": 6,
    "population": {"scenario": "aml-cr1"},
    "arms": [{"name": "chemotherapy"},
             {"name": "chemotherapy + CIK",
              "cik": {"dose_per_kg": 5e7, "infusions": 3, "interval_days": 21,
                      "first_day": 30}}],
}


@cache
def control_arm() -> TrialRun:
    """The default cohort's chemotherapy-alone arm, 2000 patients followed 6 years."""
    spec = TrialSpec.from_dict({**DEFAULT_TRIAL, "arms": DEFAULT_TRIAL["arms"][:1]})
    return run_trial(spec, workers=1, composition=COMPOSITION)


def t1_control_arm() -> TargetCheck:
    df = control_arm().patients
    arm = summarize(df, ["chemotherapy"], 72)["arms"][0]
    within_3y = float((df.loc[df["event"] == "relapse", "relapse_day"] <= 3 * 365.25).mean())
    v = {"n": arm["n"], "relapse_fraction": arm["relapse_fraction"],
         "share_within_3y": within_3y, "median_rfs_months": arm["median_rfs_months"]}
    ok = (arm["n"] >= 2000 and within(v["relapse_fraction"], 0.5, 0.7) and within_3y >= 0.9
          and v["median_rfs_months"] is not None and within(v["median_rfs_months"], 10, 15))
    return TargetCheck("T1", "default cohort's chemotherapy arm (n >= 2000) reproduces P4", v,
                       "P4 ranges", ok, "targets.md P4")


@cache
def small_trial() -> TrialRun:
    spec = TrialSpec.from_dict({**DEFAULT_TRIAL, "patients_per_arm": 300,
                                "follow_up_years": 3})
    return run_trial(spec, workers=1, composition=COMPOSITION)


def t2_lifelines_agreement() -> TargetCheck:
    """ciksim's survival summary vs lifelines called directly, and vs a hand-made KM."""
    from lifelines import CoxPHFitter, KaplanMeierFitter
    from lifelines.statistics import logrank_test

    df = small_trial().patients
    names = [a["name"] for a in DEFAULT_TRIAL["arms"]]
    s = summarize(df, names, 36)
    worst = 0.0
    for arm in s["arms"]:
        g = df[df["arm"] == arm["name"]]
        km = KaplanMeierFitter().fit(g["duration"], event_labels(g["event"]) != "censored")
        for y in (1, 2, 3):
            ref = float(km.survival_function_at_times(12.0 * y).iloc[0])
            worst = max(worst, abs(arm[f"rfs_{y}y"] / ref - 1))
        surv = 1.0
        ended = g["event"] != "censored"
        times = np.sort(g.loc[ended, "duration"].unique())
        for ti in times[times <= 24]:
            at_risk = (g["duration"] >= ti).sum()
            surv *= 1 - ((g["duration"] == ti) & ended).sum() / at_risk
        worst = max(worst, abs(arm["rfs_2y"] / surv - 1))
    a, b = df[df["arm"] == names[0]], df[df["arm"] == names[1]]
    ea = (event_labels(a["event"]) != "censored").astype(int)
    eb = (event_labels(b["event"]) != "censored").astype(int)
    lr = logrank_test(a["duration"], b["duration"], ea, eb)
    worst = max(worst, abs(s["logrank_p"] / lr.p_value - 1))
    data = pd.DataFrame({"duration": pd.concat([a["duration"], b["duration"]]),
                         "event": np.r_[ea, eb],
                         "treated": [0] * len(a) + [1] * len(b)})
    hr = float(CoxPHFitter().fit(data, "duration", "event").hazard_ratios_["treated"])
    worst = max(worst, abs(s["hazard_ratio"] / hr - 1))
    return TargetCheck("T2", "survival statistics equal lifelines' (KM, log-rank, Cox HR)",
                       worst, "<= 1e-9 relative", worst <= 1e-9, "targets.md T2")


def t4_estimands_equal_lifelines() -> TargetCheck:
    """RMST, milestone survival, the PH test next to Cox, and Aalen-Johansen incidences of
    the small default trial (every third relapse relabelled a death in remission, so the
    events compete) vs lifelines called directly."""
    from lifelines import AalenJohansenFitter, CoxPHFitter, KaplanMeierFitter
    from lifelines.statistics import proportional_hazard_test
    from lifelines.utils import restricted_mean_survival_time

    from ciksim.trial import estimands as est

    df = small_trial().patients.copy()
    lab = est.event_labels(df["event"])
    lab[np.flatnonzero(lab == "relapse")[::3]] = "death"
    df["event"] = lab
    names = [a["name"] for a in DEFAULT_TRIAL["arms"]]
    worst = 0.0
    for name in names:
        g = df[df["arm"] == name]
        e = (g["event"] != "censored").astype(int)
        km = KaplanMeierFitter().fit(g["duration"], e)
        ours = est.kaplan_meier(g)
        worst = max(worst, abs(est.milestone(ours, 24) /
                               float(km.survival_function_at_times(24).iloc[0]) - 1),
                    abs(est.rmst(ours, 36)[0] / restricted_mean_survival_time(km, t=36) - 1))
        codes = g["event"].map({"censored": 0, "relapse": 1, "death": 2}).to_numpy()
        for of, code in (("relapse", 1), ("death", 2)):
            ref = AalenJohansenFitter(seed=0, calculate_variance=False).fit(
                g["duration"], codes, event_of_interest=code).cumulative_density_.iloc[:, 0]
            mine = est.cumulative_incidence(g, of).to_numpy()
            r = ref.to_numpy()
            worst = max(worst, float(np.max(np.abs(mine - r) / np.maximum(np.abs(r), 1e-300))))
    a, b = df[df["arm"] == names[0]], df[df["arm"] == names[1]]
    data = pd.DataFrame({"duration": pd.concat([a["duration"], b["duration"]]),
                         "event": pd.concat([a["event"], b["event"]]).ne("censored")
                         .astype(int), "treated": [0] * len(a) + [1] * len(b)})
    cph = CoxPHFitter().fit(data, "duration", "event")
    ph = float(np.ravel(proportional_hazard_test(cph, data, time_transform="rank").p_value)[0])
    c = est.cox(df, names[0], names[1])
    worst = max(worst, abs(c["log_hr"] / float(cph.params_["treated"]) - 1),
                abs(c["ph_test_p"] / ph - 1))
    return TargetCheck("T4", "RMST, milestone survival, PH test with Cox, Aalen-Johansen "
                       "incidences equal lifelines'", worst, "<= 1e-9 relative",
                       worst <= 1e-9, "targets.md T4")


def t5_intention_to_treat() -> TargetCheck:
    """Delivery drawn per patient reproduces the declared defaults; the CIK arm keeps every
    randomised patient."""
    from ciksim.trial.delivery import AS_PLANNED, BELOW_TARGET, NOT_MANUFACTURED, Delivery

    plan = Delivery().draw(2026, np.arange(20000))
    share = plan["delivery"].value_counts(normalize=True)
    made = 1 - float(share.get(NOT_MANUFACTURED, 0.0))
    full = float(share[AS_PLANNED] / (share[AS_PLANNED] + share[BELOW_TARGET]))
    df = small_trial().patients
    cik = df[df["arm"] == DEFAULT_TRIAL["arms"][1]["name"]]
    kept = len(cik) == 300 and (cik["delivery"] != AS_PLANNED).any()
    v = {"manufactured": round(made, 4), "target_dose_reached": round(full, 4),
         "cik_arm_size": len(cik)}
    ok = within(made, 44 / 47 - 0.01, 44 / 47 + 0.01) and \
        within(full, 36 / 44 - 0.015, 36 / 44 + 0.015) and kept
    return TargetCheck("T5", "intention to treat: products that fail manufacture or are not "
                       "infused stay in their arm", v, "94% manufactured, 82% target dose",
                       ok, "targets.md T5 (clinical_more M14)")


def all_trial_targets() -> list[Callable[[], TargetCheck]]:
    return [t1_control_arm, t2_lifelines_agreement, t4_estimands_equal_lifelines,
            t5_intention_to_treat]

"""T4 (estimands equal lifelines' on the same data, 1e-9) and T5 (intention to treat)."""

from functools import cache

import numpy as np
import pandas as pd
import pytest

from ciksim.errors import CikError
from ciksim.trial import estimands as est
from ciksim.trial.analysis import summarize
from ciksim.trial.delivery import (
    AS_PLANNED,
    BELOW_TARGET,
    NO_PRODUCT,
    NOT_INFUSED,
    NOT_MANUFACTURED,
    Delivery,
)
from ciksim.trial.runner import run_trial, simulate_chunk
from ciksim.trial.spec import TrialSpec

COMPOSITION = {"f_cik": 0.49, "f_t": 0.47, "f_nk": 0.035}
REL = 1e-9


def spec(n=80, **extra):
    return TrialSpec.from_dict({
        "name": "estimands", "seed": 5, "patients_per_arm": n, "follow_up_years": 4,
        "population": {"scenario": "aml-cr1"},
        "arms": [{"name": "chemo"}, {"name": "cik", "cik": {"dose_per_kg": 1e8}}], **extra})


@cache
def trial() -> pd.DataFrame:
    return run_trial(spec(), workers=1, composition=COMPOSITION).patients


def _mixed_events(df: pd.DataFrame) -> pd.DataFrame:
    """The trial with some relapses relabelled as deaths in remission (competing events)."""
    out = df.copy()
    lab = est.event_labels(out["event"])
    rel = np.flatnonzero(lab == "relapse")
    lab[rel[::3]] = "death"
    out["event"] = lab
    return out


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def test_T4_estimands_equal_lifelines():
    from lifelines import AalenJohansenFitter, CoxPHFitter, KaplanMeierFitter
    from lifelines.statistics import logrank_test, proportional_hazard_test
    from lifelines.utils import restricted_mean_survival_time

    df = _mixed_events(trial())
    a, b = df[df["arm"] == "chemo"], df[df["arm"] == "cik"]
    ea = (a["event"] != "censored").astype(int)
    eb = (b["event"] != "censored").astype(int)
    # milestone survival and RMST
    km_ref = KaplanMeierFitter().fit(b["duration"], eb)
    ours = est.kaplan_meier(b)
    assert est.milestone(ours, 36) == pytest.approx(
        float(km_ref.survival_function_at_times(36).iloc[0]), rel=REL)
    r_ref, v_ref = restricted_mean_survival_time(km_ref, t=36, return_variance=True)
    r, v = est.rmst(ours, 36, variance=True)
    assert r == pytest.approx(r_ref, rel=REL) and v == pytest.approx(v_ref, rel=REL)
    # Cox and its proportional-hazards test, log-rank
    data = pd.DataFrame({"duration": np.r_[a["duration"], b["duration"]],
                         "event": np.r_[ea, eb], "treated": np.r_[np.zeros(len(a)),
                                                                  np.ones(len(b))]})
    cph = CoxPHFitter().fit(data, "duration", "event")
    ph = proportional_hazard_test(cph, data, time_transform="rank")
    c = est.cox(df, "chemo", "cik")
    assert c["log_hr"] == pytest.approx(cph.params_["treated"], rel=REL)
    assert c["log_hr_se"] == pytest.approx(cph.standard_errors_["treated"], rel=REL)
    assert c["ph_test_p"] == pytest.approx(float(np.ravel(ph.p_value)[0]), rel=REL)
    assert est.logrank_p(df, "chemo", "cik") == pytest.approx(
        logrank_test(a["duration"], b["duration"], ea, eb).p_value, rel=REL)
    # Aalen-Johansen cumulative incidence of relapse and of death in remission
    codes = b["event"].map({"censored": 0, "relapse": 1, "death": 2}).to_numpy()
    for of, code in (("relapse", 1), ("death", 2)):
        aj = AalenJohansenFitter(seed=0, calculate_variance=False).fit(
            b["duration"], codes, event_of_interest=code)
        ref = aj.cumulative_density_.iloc[:, 0]
        curve = est.cumulative_incidence(b, of)
        np.testing.assert_allclose(curve.to_numpy(), ref.to_numpy(), rtol=REL)
        t = float(ref.index[len(ref) // 2])
        assert est.incidence_at(curve, t) == pytest.approx(float(ref.loc[:t].iloc[-1]),
                                                           rel=REL)
    # the CIR with a competing death is below 1 - KM that censors deaths
    km_rel = KaplanMeierFitter().fit(b["duration"], (b["event"] == "relapse").astype(int))
    assert est.incidence_at(est.cumulative_incidence(b, "relapse"), 40) <= \
        1 - float(km_rel.survival_function_at_times(40).iloc[0]) + 1e-12


def test_trial_summary_reports_rmst_milestones_ph_test_and_os():
    s = summarize(trial(), ["chemo", "cik"], 48)
    arm = s["arms"][1]
    for key in ("rfs_3y", "os_3y", "cir_3y", "nrm_3y", "rmst_rfs_months", "rmst_os_months"):
        assert arm[key] is not None, key
    assert 0 <= s["ph_test_p"] <= 1
    assert arm["os_3y"] >= arm["rfs_3y"]  # death comes after relapse
    assert s["per_protocol"] and s["per_protocol"][0]["arm"] == "cik"


@pytest.mark.parametrize("test", ["logrank", "cox", "rmst", "milestone"])
def test_planned_analysis(test):
    a = est.Analysis("rfs", test, 36.0, 0.05)
    a.check(48)
    r = a.evaluate(trial(), "chemo", "cik")
    assert 0 <= r["p"] <= 1 and r["success"] == (r["p"] < 0.05 and r["better"])


@pytest.mark.parametrize("analysis, message", [
    (est.Analysis("cir", "logrank"), "endpoint"),
    (est.Analysis("rfs", "rmst", 60.0), "beyond the follow-up"),
    (est.Analysis("rfs", "wilcoxon"), "unknown"),
    (est.Analysis("rfs", "logrank", 36, 1.5), "alpha"),
])
def test_analysis_the_endpoint_cannot_support(analysis, message):
    with pytest.raises(CikError, match=message):
        analysis.check(48)


def test_T5_intention_to_treat_defaults_and_arm_membership():
    d = Delivery()
    assert d.manufactured == pytest.approx(44 / 47) and d.target_dose_reached == \
        pytest.approx(36 / 44)
    plan = d.draw(123, np.arange(20000))
    share = plan["delivery"].value_counts(normalize=True)
    made = 1 - share[NOT_MANUFACTURED]
    assert made == pytest.approx(44 / 47, abs=0.01)
    full = share[AS_PLANNED] / (share[AS_PLANNED] + share[BELOW_TARGET])
    assert full == pytest.approx(36 / 44, abs=0.015)
    assert share[NOT_INFUSED] / made == pytest.approx(14 / 44, abs=0.015)
    reasons = plan.loc[plan["delivery"] == NOT_INFUSED, "not_infused_reason"]
    assert reasons.value_counts(normalize=True)["progression"] == pytest.approx(0.5, abs=0.03)
    # the stream of patient i does not depend on which patients are drawn with it
    pd.testing.assert_frame_equal(d.draw(123, np.arange(10, 15)).reset_index(drop=True),
                                  plan.iloc[10:15].reset_index(drop=True))
    # patients without an infusion stay in their arm and are simulated without CIK
    df = trial()
    cik = df[df["arm"] == "cik"]
    assert len(cik) == 80 and set(cik["delivery"]) <= {AS_PLANNED, BELOW_TARGET,
                                                       NOT_INFUSED, NOT_MANUFACTURED}
    assert set(df.loc[df["arm"] == "chemo", "delivery"]) == {NO_PRODUCT}
    assert (cik.loc[~cik["delivery"].isin([AS_PLANNED, BELOW_TARGET]),
                    "dose_fraction"] == 0).all()


def test_untreated_patient_equals_same_patient_in_control_arm():
    """A CIK patient without an infusion has the outcome he would have had without CIK."""
    s = spec(30, delivery={"manufactured": 0.0})
    none = simulate_chunk(s, 1, 0, 30, COMPOSITION)
    assert set(none["delivery"]) == {NOT_MANUFACTURED}
    plain = TrialSpec.from_dict({**s.raw, "arms": [{"name": "chemo"}, {"name": "cik"}]})
    ctrl = simulate_chunk(plain, 1, 0, 30, COMPOSITION)
    np.testing.assert_allclose(none["duration"], ctrl["duration"])


@pytest.mark.parametrize("field, value", [("manufactured", 1.2), ("target_dose_reached", -0.1),
                                          ("not_infused", "half")])
def test_rates_outside_0_1_name_field_and_fix(field, value):
    with pytest.raises(CikError, match=rf"delivery\.{field}.*\[0, 1\]"):
        spec(10, delivery={field: value})

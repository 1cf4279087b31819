"""Trials after allogeneic transplantation (issue 13, trial side): routing of an allo spec,
GRFS and competing-risk estimands equal to lifelines on the table, bad input, worker-count
invariance, trials over draws of allo parameters, and the CLI report."""

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ciksim.cli import app
from ciksim.errors import CikError
from ciksim.trial.allo import AlloArmSchema, AlloTrialSpec, _arm
from ciksim.trial.alloanalysis import summarize_allo
from ciksim.trial.allosim import (
    DAYS_PER_MONTH,
    allo_prior_source,
    draw_scenario,
    outcome_table,
    reference_parameters,
)
from ciksim.trial.runner import run_trial
from ciksim.trial.spec import TrialSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def allo_dict(**extra):
    data = {
        "name": "allo", "seed": 11, "patients_per_arm": 8, "follow_up_years": 0.5,
        "population": {"scenario": "allo-aml-cr", "donor": "sibling", "conditioning": "mac"},
        "arms": [{"name": "DLI", "donor_cells": {"cells": "dli", "dose_per_kg": 1e7,
                                                 "first_day": 60}},
                 {"name": "CIK", "donor_cells": {"cells": "cik", "dose_per_kg": 1e7,
                                                 "infusions": 3, "interval_days": 28,
                                                 "escalation": 5, "first_day": 60}}],
        "posterior": {"source": "prior", "draws": 2, "cohort": 20},
    }
    data.update(extra)
    return data


def test_allo_population_routes_to_the_allo_trial():
    spec = TrialSpec.from_dict(allo_dict())
    assert isinstance(spec, AlloTrialSpec) and spec.setting == "allo"
    assert spec.analysis.endpoint == "grfs" and spec.grfs_agvhd == "III-IV"
    cik = spec.arms[1]
    # the recipient's immunosuppression is withdrawn on the day of the first infusion
    assert [(e["day"], e["dose"], e["amount"]) for e in cik.events] == [
        (60, "is_withdrawal", 1.0), (60, "cik", 1e7), (88, "cik", 5e7), (116, "cik", 2.5e8)]
    scen = spec.arm_scenario(1)
    assert [(ev.day, ev.dose) for ev in scen.protocol.events] == [
        (60, "is_withdrawal"), (60, "cik"), (88, "cik"), (116, "cik")]
    kept = allo_dict()
    kept["arms"][1]["donor_cells"]["immunosuppression"] = "kept"
    assert [e["dose"] for e in TrialSpec.from_dict(kept).arms[1].events] == ["cik"] * 3
    assert spec.with_patients(3).patients_per_arm == 3 and spec.with_seed(4).seed == 4
    # the autologous spec still routes to TrialSpec
    assert type(TrialSpec.from_dict({"name": "a", "population": {"scenario": "aml-cr1"},
                                     "arms": [{"name": "x"}]})) is TrialSpec


def test_triggered_shorthand_is_the_protocol_trigger_format():
    raw = {"name": "pre-emptive", "donor_cells": {
        "cells": "cik", "dose_per_kg": 1e7, "infusions": 2, "interval_days": 30,
        "when": {"watch": "mrd", "above": 1e-4,
                 "monitor": {"first": 30, "every": 30, "last": 360}}}}
    a = _arm(AlloArmSchema.model_validate(raw), raw, 0, "t")
    assert a.events == ()
    assert a.triggers == ({"name": "cik-mrd", "watch": "mrd", "above": 1e-4,
                           "monitor": {"first": 30, "every": 30, "last": 360},
                           "doses": [{"offset": 0, "dose": "is_withdrawal", "amount": 1.0},
                                     {"offset": 0, "dose": "cik", "amount": 1e7},
                                     {"offset": 30, "dose": "cik", "amount": 1e7}]},)


@pytest.mark.parametrize("change, message", [
    ({"population": {"scenario": "allo-aml-cr", "donor": "cousin"}},
     r"population\.donor 'cousin'.*sibling"),
    ({"population": {"scenario": "allo-aml-cr", "conditioning": "none"}},
     r"population\.conditioning.*mac"),
    ({"population": {"scenario": "allo-aml-cr", "chimerism": 1.5}}, r"population\.chimerism"),
    ({"population": {"scenario": "allo-aml-cr", "parameters": {"nope": 1}}},
     r"nope is not a allo-model parameter"),
    ({"arms": [{"name": "x", "donor_cells": {"cells": "dli", "dose_per_kg": 1e7,
                                             "first_day": 10}}]},
     r"before engraftment.*engraftment_day = 21"),
    ({"arms": [{"name": "x", "donor_cells": {"cells": "dli", "dose_per_kg": 1e7,
                                             "when": {"watch": "mrd", "above": 1e-4}}}]},
     r"arms\[0\]\.donor_cells\.when: monitor: a trigger needs a monitoring schedule"),
    ({"arms": [{"name": "x", "donor_cells": {
        "cells": "dli", "dose_per_kg": 1e7,
        "when": {"watch": "mrd", "above": 1e-4, "monitor": {"first": 30}}}}]},
     r"when\.monitor: give first, every and last"),
    ({"arms": [{"name": "x", "triggers": [{"name": "t", "watch": "mrd", "above": 1e-4,
                                           "doses": [{"offset": 0, "dose": "dli",
                                                      "amount": 1e7}]}]}]},
     r"arms\[0\]\.triggers\[0\]: give the monitoring schedule"),
    ({"arms": [{"name": "x", "donor_cells": {
        "cells": "cik", "dose_per_kg": 1e7,
        "when": {"watch": "mrd", "above": 1e-4,
                 "monitor": {"first": 7, "every": 7, "last": 70}}}}]},
     r"day 7, before engraftment"),
    ({"arms": [{"name": "x", "donor_cells": {"cells": "t-cells", "dose_per_kg": 1e7,
                                             "first_day": 60}}]},
     r"arms\[0\]\.donor_cells\.cells"),
    ({"arms": [{"name": "x", "donor_cells": {"cells": "dli", "dose_per_kg": 1e7}}]},
     r"first_day.*or when"),
    ({"analysis": {"endpoint": "cir"}}, r"analysis\.endpoint"),
    ({"product": {"culture_protocol": "cik-gmp"}}, r"product"),
])
def test_bad_allo_input_names_the_field_and_the_fix(change, message):
    with pytest.raises(CikError, match=message):
        TrialSpec.from_dict(allo_dict(**change))


def test_grfs_needs_an_allo_population():
    with pytest.raises(CikError, match=r"grfs.*allo population"):
        TrialSpec.from_dict({"name": "a", "population": {"scenario": "aml-cr1"},
                             "arms": [{"name": "x"}, {"name": "y"}],
                             "analysis": {"endpoint": "grfs"}})


def _cohort(n=400, seed=0):
    """A synthetic allo cohort table with every contract column (days; NaN = not by the
    horizon of 730 days)."""
    rng = np.random.default_rng(seed)

    def maybe(p, scale):
        t = rng.exponential(scale, n).round(1)
        return np.where((rng.random(n) < p) & (t < 730), t, np.nan)

    rel, ag, cg, nrm = maybe(0.3, 200), maybe(0.5, 60), maybe(0.3, 250), maybe(0.15, 300)
    nrm = np.where(np.isfinite(rel) & (nrm > rel), np.nan, nrm)
    ag34 = np.where(rng.random(n) < 0.4, ag + 5, np.nan)
    death = np.fmin(nrm, np.where(np.isfinite(rel) & (rng.random(n) < 0.5), rel + 90, np.nan))
    death = np.where(death < 730, death, np.nan)
    return pd.DataFrame({"patient": np.arange(n), "relapse_day": rel, "agvhd_day": ag,
                         "agvhd34_day": ag34, "cgvhd_day": cg, "nrm_day": nrm,
                         "death_day": death, "peak_grade": rng.random(n) * 4,
                         "donor_chimerism": np.ones(n), "cured": np.isnan(rel)})


@cache
def _table():
    spec = TrialSpec.from_dict(allo_dict(follow_up_years=2))
    return spec, pd.concat([outcome_table(_cohort(seed=0), spec, 0),
                            outcome_table(_cohort(seed=1), spec, 1)], ignore_index=True)


def test_outcome_table_events_and_competing_codes():
    _, df = _table()
    c = _cohort(seed=0)
    a = df[df["arm"] == "DLI"].reset_index(drop=True)
    first = np.fmin(c["relapse_day"], c["nrm_day"])
    assert ((a["event"] == "relapse") == (np.isfinite(c["relapse_day"])
                                          & (c["relapse_day"] == first))).all()
    assert ((a["event"] == "death") == (np.isfinite(c["nrm_day"]) & (c["nrm_day"] == first)
                                        & ~(c["relapse_day"] == first))).all()
    ends = np.fmin(np.fmin(np.fmin(c["agvhd34_day"], c["cgvhd_day"]), c["relapse_day"]),
                   c["death_day"])
    np.testing.assert_allclose(a["grfs_duration"], np.where(np.isnan(ends), 730.5, ends)
                               / DAYS_PER_MONTH)
    assert (a["grfs_event"] == np.isfinite(ends)).all()
    competing = np.fmin(c["relapse_day"], c["death_day"])
    expect = np.where(np.isfinite(c["agvhd_day"]) & ~(c["agvhd_day"] > competing), 1,
                      np.where(np.isfinite(competing), 2, 0))
    assert (a["agvhd_event"].to_numpy() == expect).all()
    assert set(a.loc[a["grfs_event"] == 1, "grfs_first"]) <= {
        "acute GvHD grade III-IV", "chronic GvHD", "relapse", "death"}


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
def _cif(event, competing, h, months, cause=1):
    """lifelines' Aalen-Johansen cumulative incidence at ``months`` of ``cause`` (1: the
    ``event`` day comes first, 2: the ``competing`` day does; NaN: neither; censored at
    ``h`` days)."""
    from lifelines import AalenJohansenFitter

    first = np.fmin(event, competing)
    code = np.where(np.isnan(first), 0, np.where(event == first, 1, 2))
    aj = AalenJohansenFitter(seed=0, calculate_variance=False).fit(
        np.where(np.isnan(first), h, first) / DAYS_PER_MONTH, code, event_of_interest=cause)
    cif = aj.cumulative_density_.iloc[:, 0]
    return float(cif[cif.index <= months].iloc[-1])


def test_allo_estimands_equal_lifelines_on_the_table():
    from lifelines import CoxPHFitter, KaplanMeierFitter
    from lifelines.statistics import logrank_test, proportional_hazard_test

    _, df = _table()
    s = summarize_allo(df, ["DLI", "CIK"], 24, "grfs", 24)
    c = _cohort(seed=1)
    h = 730.5
    # GRFS: first of acute GvHD III-IV, chronic GvHD, relapse, death (from the raw days)
    ends = np.fmin(np.fmin(np.fmin(c["agvhd34_day"], c["cgvhd_day"]), c["relapse_day"]),
                   c["death_day"])
    km = KaplanMeierFitter().fit(np.where(np.isnan(ends), h, ends) / DAYS_PER_MONTH,
                                 np.isfinite(ends))
    arm = s["arms"][1]
    assert arm["grfs_12m"] == pytest.approx(
        float(km.survival_function_at_times(12).iloc[0]), rel=1e-9)
    death = c["death_day"]
    km_os = KaplanMeierFitter().fit(np.where(np.isnan(death), h, death) / DAYS_PER_MONTH,
                                    np.isfinite(death))
    assert arm["os_24m"] == pytest.approx(float(km_os.survival_function_at_times(24).iloc[0]),
                                          rel=1e-9)
    # Aalen-Johansen: relapse (NRM competing) and acute GvHD II-IV (relapse, death competing)
    assert arm["cir_12m"] == pytest.approx(_cif(c["relapse_day"], c["nrm_day"], h, 12),
                                           rel=1e-9)
    comp = np.fmin(c["relapse_day"], c["death_day"])
    assert arm["agvhd_6m"] == pytest.approx(_cif(c["agvhd_day"], comp, h, 6), rel=1e-9)
    # chronic GvHD (relapse, death competing) and NRM (relapse competing) at 24 months
    assert arm["cgvhd_24m"] == pytest.approx(_cif(c["cgvhd_day"], comp, h, 24), rel=1e-9)
    assert arm["nrm_24m"] == pytest.approx(_cif(c["relapse_day"], c["nrm_day"], h, 24,
                                                cause=2), rel=1e-9)
    # comparison on the primary endpoint: Cox and log-rank as lifelines computes them
    a, b = df[df["arm"] == "DLI"], df[df["arm"] == "CIK"]
    data = pd.DataFrame({"t": np.r_[a["grfs_duration"], b["grfs_duration"]],
                         "e": np.r_[a["grfs_event"], b["grfs_event"]],
                         "treated": np.r_[np.zeros(len(a)), np.ones(len(b))]})
    cph = CoxPHFitter().fit(data, "t", "e")
    comp = s["comparisons"][0]
    assert comp["hazard_ratio"] == pytest.approx(float(cph.hazard_ratios_["treated"]),
                                                 rel=1e-9)
    assert comp["logrank_p"] == pytest.approx(logrank_test(
        a["grfs_duration"], b["grfs_duration"], a["grfs_event"], b["grfs_event"]).p_value,
        rel=1e-9)
    ph = proportional_hazard_test(cph, data, time_transform="rank")
    assert comp["ph_test_p"] == pytest.approx(float(np.ravel(ph.p_value)[0]), rel=1e-9)


def test_same_patients_for_any_worker_count_and_chunk_size():
    spec = TrialSpec.from_dict(allo_dict(patients_per_arm=6, follow_up_years=0.4))
    one = run_trial(spec, workers=1).patients
    two = run_trial(spec, workers=2, chunk_size=4).patients
    pd.testing.assert_frame_equal(one, two)
    assert (one["status"] == "ok").all() and len(one) == 12
    cik = one[one["arm"] == "CIK"]
    # day 60 unless acute GvHD II-IV, chronic GvHD or death came first (then withheld)
    before = np.fmin(np.fmin(cik["agvhd_day"], cik["cgvhd_day"]), cik["death_day"]) <= 60
    expected = np.where(before, np.nan, 60.0)
    np.testing.assert_array_equal(cik["first_infusion_day"].to_numpy(), expected)


def test_draws_keep_the_donor_factor_and_come_from_the_declared_ranges():
    src = allo_prior_source()
    draws = src.draws(50, 3)
    from ciksim.models.allo import allo_model

    pars = allo_model().parameter_by_name
    for col in draws:
        assert draws[col].between(pars[col].low, pars[col].high).all(), col
    spec = TrialSpec.from_dict(allo_dict(population={"scenario": "allo-aml-cr",
                                                     "donor": "unrelated"}))
    scen = draw_scenario(spec.arm_scenario(0), reference_parameters(spec),
                         {"f_allo_t": 3e-3, "k_dmg": 0.2})
    assert scen.parameters["f_allo_t"] == pytest.approx(6e-3)  # unrelated: 2x sibling
    assert scen.parameters["k_dmg"] == 0.2


def test_cli_trial_of_an_allo_spec_reports_grfs_gvhd_and_assurance(tmp_path):
    spec_file = tmp_path / "s.toml"
    import tomli_w

    spec_file.write_bytes(tomli_w.dumps(allo_dict(follow_up_years=1)).encode())
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["trial", str(spec_file), "--n-per-arm", "10", "--workers",
                                 "1", "--out", str(out), "--json", "--prior", "--draws", "2",
                                 "--cohort", "20"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["setting"] == "allo" and [a["name"] for a in data["arms"]] == ["DLI", "CIK"]
    # the JSON's figures are lifelines' on the written table, the assurance its draws'
    from lifelines import AalenJohansenFitter, KaplanMeierFitter

    pat = pd.read_parquet(out / "patients.parquet")
    dli = pat[pat["arm"] == "DLI"]
    for key, dur, ev in (("grfs_12m", "grfs_duration", "grfs_event"),
                         ("os_12m", "os_duration", "os_event")):
        km = KaplanMeierFitter().fit(dli[dur], dli[ev])
        assert data["arms"][0][key] == pytest.approx(
            float(km.survival_function_at_times(12).iloc[0]), rel=1e-9), key
    rfs_code = dli["event"].map({"censored": 0, "relapse": 1, "death": 2})
    for key, dur, code, of in (("cir_12m", "duration", rfs_code, 1),
                               ("nrm_12m", "duration", rfs_code, 2),
                               ("agvhd_6m", "agvhd_duration", dli["agvhd_event"], 1),
                               ("cgvhd_12m", "cgvhd_duration", dli["cgvhd_event"], 1)):
        months = int(key.split("_")[1][:-1])
        if not (code == of).any():
            assert data["arms"][0][key] == 0.0, key
            continue
        cif = AalenJohansenFitter(seed=0, calculate_variance=False).fit(
            dli[dur], code, event_of_interest=of).cumulative_density_.iloc[:, 0]
        assert data["arms"][0][key] == pytest.approx(
            float(cif[cif.index <= months].iloc[-1]), rel=1e-9), key
    draws = pd.read_parquet(out / "draws" / "draws.parquet")
    assert data["assurance_n_per_arm"] == 10 and len(draws) == 2
    assert data["assurance"] == draws["success_10"].mean()
    assert data["source"]["kind"] == "prior"
    html = (out / "report.html").read_text()
    for text in ("Kaplan-Meier GRFS", "Acute GvHD grade II-IV (relapse and death competing)",
                 "Chronic GvHD (relapse and death competing)",
                 "Non-relapse mortality (relapse competing)", "Assurance", "Holtan",
                 "donor CIK 1e+07 CD3+/kg on day 60"):
        assert text in html, text
    for name in ("km.png", "incidence.png", "assurance.png", "patients.parquet"):
        assert (out / name).is_file()


def test_triggered_arm_doses_when_monitoring_finds_the_threshold():
    spec = TrialSpec.from_dict(allo_dict(
        population={"scenario": "allo-aml-cr", "conditioning": "ric"},
        arms=[{"name": "pre-emptive DLI", "donor_cells": {
            "cells": "dli", "dose_per_kg": 1e7,
            "when": {"watch": "donor_chimerism", "below": 0.95,
                     "monitor": {"first": 30, "every": 30, "last": 150}}}}]))
    trig = spec.arms[0].triggers[0]
    assert trig["name"] == "dli-donor_chimerism" and trig["below"] == 0.95
    df = run_trial(spec, workers=1).patients
    first = df["first_infusion_day"].to_numpy()
    fired = first[np.isfinite(first)]
    assert fired.size > 0 and set(fired) <= {30.0, 60.0, 90.0, 120.0, 150.0}
    scen = spec.arm_scenario(0)
    assert [t.name for t in scen.protocol.triggers] == ["dli-donor_chimerism"]


@pytest.mark.parametrize("name", ["cik-vs-dli", "allo-dose-finding"])
def test_allo_examples_are_allo_trials(name):
    spec = TrialSpec.load(EXAMPLES / f"{name}.toml")
    assert isinstance(spec, AlloTrialSpec) and spec.analysis.endpoint == "grfs"
    cells = {a.cells for a in spec.arms}
    assert {"dli", "cik"} <= cells
    if name == "cik-vs-dli":  # pre-emptive, MRD-triggered, matched CD3+ doses
        doses = [[(d["offset"], d["amount"]) for d in a.triggers[0]["doses"]]
                 for a in spec.arms]
        assert doses[0] == doses[1] and all(a.triggers[0]["watch"] == "mrd"
                                            for a in spec.arms)


def test_cli_run_of_cik_vs_dli_skips_the_culture_and_reports_the_trial(tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(EXAMPLES / "cik-vs-dli.toml"), "--out", str(out),
                                 "--workers", "1", "--n-per-arm", "12", "--draws", "2",
                                 "--cohort", "20", "--prior", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["setting"] == "allo" and "not cultured" in data["skipped"][0]
    assert data["trial"]["arms"][0]["n"] == 12
    draws = pd.read_parquet(out / "trial" / "draws" / "draws.parquet")
    n = data["trial"]["assurance_n_per_arm"]
    assert len(draws) == 2 and data["trial"]["assurance"] == draws[f"success_{n}"].mean()
    html = (out / "report.html").read_text()
    for text in ("product: not cultured", "Kaplan-Meier GRFS", "GvL against GvHD",
                 "Assurance", "who got donor cells", "when mrd is above 0.0001",
                 "meets A1", "but not A3 (donor-CIK acute GvHD",
                 "cannot say how donor CIK compare with DLI in GvHD at "
                 "equal CD3+ dose", "default (uncalibrated)", "NOT the posterior"):
        assert text in html, text
    assert (out / "trial" / "patients.parquet").is_file()


def test_draws_same_numbers_for_workers_and_chunks_and_assurance_cli(tmp_path):
    from ciksim.trial.draws import DrawDesign, run_over_draws

    spec = TrialSpec.from_dict(allo_dict(follow_up_years=0.5))
    src = allo_prior_source()
    one = run_over_draws(spec, src, DrawDesign(draws=2, cohort=20, sizes=(5,), chunk_draws=1),
                         workers=1).table
    two = run_over_draws(spec, src, DrawDesign(draws=2, cohort=20, sizes=(5,), chunk_draws=2),
                         workers=2).table
    pd.testing.assert_frame_equal(one, two)
    # fixed day 60 within follow-up, withheld after acute GvHD II-IV, chronic GvHD or death
    from ciksim.trial.allosim import prior_dimensions, simulate_allo_draws

    names = [d.name for d in prior_dimensions()]
    pat = simulate_allo_draws(spec, one[names], 0, "DLI", "CIK", 20)
    cik = pat[pat["arm"] == "CIK"]
    before = np.fmin(np.fmin(cik["agvhd_day"], cik["cgvhd_day"]), cik["death_day"]) <= 60
    expected = (~before).groupby(cik["draw"]).mean().to_numpy()
    np.testing.assert_allclose(one["share_given_treated"].to_numpy(), expected)
    spec_file = tmp_path / "s.toml"
    import tomli_w

    spec_file.write_bytes(tomli_w.dumps(allo_dict(follow_up_years=0.5)).encode())
    r = CliRunner().invoke(app, ["trial", "assurance", str(spec_file), "--prior", "--n",
                                 "5,10", "--draws", "2", "--cohort", "20", "--workers", "1",
                                 "--json"])
    assert r.exit_code == 0, r.output
    curve = json.loads(r.output)["assurance_curve"]
    assert [c["n_per_arm"] for c in curve] == [5, 10]
    both = run_over_draws(spec, src, DrawDesign(draws=2, cohort=20, sizes=(5, 10)),
                          workers=1).table  # the same draws and design as the CLI's
    assert [c["assurance"] for c in curve] == [both["success_5"].mean(),
                                               both["success_10"].mean()]


def test_no_donor_cells_once_acute_gvhd_ii_iv_or_chronic_gvhd_has_begun():
    from ciksim.analysis.allo import simulate_allo_cohort
    from ciksim.models.allo import AlloScenario
    from ciksim.trial.allosim import _without_doses, donor_cell_doses, withheld_cohort

    scen = AlloScenario.load("allo-aml-cr", events=[
        {"action": "dose", "dose": "dli", "amount": 1e8, "days": [30, 60, 90, 120, 150]}],
        triggers=[{"name": "mrd-cik", "watch": "mrd", "above": 1e-4,
                   "monitor": {"first": 30, "every": 30, "last": 150},
                   "doses": [{"offset": 0, "dose": "is_withdrawal", "amount": 1},
                             {"offset": 0, "dose": "cik", "amount": 1e7},
                             {"offset": 28, "dose": "cik", "amount": 5e7}]}])
    idx = np.arange(16)
    raw = simulate_allo_cohort(scen, 16, 5, horizon_days=240, indices=idx).table
    table, given, redone = withheld_cohort(scen, 240.0, 5, idx)

    def onset(t):
        return np.fmin(t["agvhd_day"], t["cgvhd_day"]).to_numpy(float)

    raw_doses = donor_cell_doses(scen, raw)
    alive = raw["death_day"].fillna(np.inf).to_numpy(float)  # no dose is withheld after death
    late = [i for i in range(16)
            if any(onset(raw)[i] <= d < alive[i] for d, _, _ in raw_doses[i])]
    assert late and set(np.flatnonzero(redone)) >= set(late)  # the rule had work to do
    sev, death = onset(table), table["death_day"].to_numpy(float)
    for i in range(16):
        assert all(not (sev[i] <= d) and not (death[i] <= d) for d, _, _ in given[i]), i
        # the course up to the first withheld dose is unchanged: the same GvHD onset
        assert sev[i] == onset(raw)[i] or (np.isnan(sev[i]) and np.isnan(onset(raw)[i])), i
    kept = [i for i in range(16) if not redone[i]]
    pd.testing.assert_frame_equal(table.iloc[kept], raw.reset_index(drop=True).iloc[kept],
                                  check_dtype=False)
    # a re-simulated patient keeps the withdrawal of immunosuppression its trigger gave
    # with the first infusion, as a fixed event on the trigger day (triggers are dropped)
    [doses] = donor_cell_doses(scen, pd.DataFrame({"mrd-cik_day": [60.0]}))
    assert [(d, name) for d, name, _ in doses if name != "dli"] == [
        (60.0, "is_withdrawal"), (60.0, "cik"), (88.0, "cik")]
    keep = np.array([d < 88 for d, _, _ in doses])
    events = _without_doses(scen, doses, keep).protocol
    assert not events.triggers
    assert [(e.day, e.dose) for e in events.events] == [
        (30.0, "dli"), (60.0, "dli"), (60.0, "is_withdrawal"), (60.0, "cik")]


def test_arm_text_names_the_withdrawal_and_the_cells():
    from ciksim.report.allotrial import arm_text

    spec = TrialSpec.from_dict(allo_dict())
    text = arm_text(spec.arms[1])
    assert text.startswith("immunosuppression withdrawn on day 60; donor CIK 1e+07 CD3+/kg "
                           "on day 60; donor CIK 5e+07 CD3+/kg on day 88")
    kept = allo_dict()
    kept["arms"][0]["donor_cells"]["immunosuppression"] = "kept"
    assert arm_text(TrialSpec.from_dict(kept).arms[0]) == "DLI 1e+07 CD3+/kg on day 60"

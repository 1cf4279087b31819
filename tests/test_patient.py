"""Patient model: targets P1-P8 computed from the model, CIK behaviour, CLI and bad input."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ciksim.analysis.patient import CikSchedule, patient_protocol, run_patients
from ciksim.cli import app
from ciksim.engines import simulate
from ciksim.errors import DataError
from ciksim.models.patient import Scenario, patient_model
from ciksim.protocol import Protocol
from ciksim.targets import patient as targets


def test_target_P1(check):
    check(targets.p1_burden())


def test_target_P2(check):
    check(targets.p2_relapse_definitions())


def test_target_P3(check):
    check(targets.p3_doubling())


def test_target_P4(check):
    check(targets.p4_chemo_alone())


def test_target_P5(check):
    check(targets.p5_elderly())


def test_target_P6(check):
    check(targets.p6_dosing())


def test_target_P7(check):
    check(targets.p7_persistence())


def test_target_P8(check):
    check(targets.p8_normal_sparing())


def test_killing_law_and_parameters_come_from_the_killing_model():
    from ciksim.models.killing import killing_model

    pm, km = patient_model(), killing_model()
    for name in ("k_cik", "k_t", "k_nk"):
        assert pm.parameter_by_name[name].value == pytest.approx(
            24 * km.parameter_by_name[name].value)
    assert str(pm.expression("rec_cik_pos")) == str(km.expression("rec_cik_pos"))


def cik_log_kill(burden):
    """log10 fall of leukemic cells over 30 days from one infusion (deterministic model)."""
    model = patient_model()
    proto = Protocol("one", tuple(CikSchedule(infusions=1, first_day=0.0).events()))
    pars = {"start_burden": burden, "lig_frac": 1.0}
    t = [0.0, 30.0]
    with_cik = simulate(model, proto, 30.0, times=t, parameters=pars)["L_tot"][-1, 0]
    without = simulate(model, None, 30.0, times=t, parameters=pars)["L_tot"][-1, 0]
    return float(np.log10(without / with_cik))


def test_small_burden_is_easy_overt_relapse_is_not():
    mrd, overt = cik_log_kill(1e-5), cik_log_kill(0.2)
    assert mrd > 0.3  # minimal residual disease loses most of its cells (blasts regrow from
    # the initiating cells, which are killed less, so the fall is not deeper)
    assert overt < 0.05 * mrd  # effectors are swamped by an overt relapse


def test_initiating_cells_are_seen_without_ligands():
    """LIC carry no NKG2D ligands (Paczulla 2019) but are seen through TCR/MHC (Linn 2009):
    they are killed less than ligand-positive blasts, but not spared."""
    model = patient_model()
    proto = Protocol("one", tuple(CikSchedule(infusions=1, first_day=0.0).events()))
    pars = {"start_burden": 1e-5, "lig_frac": 1.0}
    r = simulate(model, proto, 10.0, times=[0.0, 10.0], parameters=pars)
    r0 = simulate(model, None, 10.0, times=[0.0, 10.0], parameters=pars)
    kill_lic = r0["LIC"][-1, 0] / r["LIC"][-1, 0]
    kill_blast = r0["B"][-1, 0] / r["B"][-1, 0]
    assert np.log(kill_blast) > np.log(kill_lic) > 0.2 * np.log(kill_blast)


def test_lone_initiating_cell_extinction_equals_closed_form():
    """Cure stays exact: a lone active LIC under constant rates (no therapy, burden far below
    K_L) dies out with probability mu_S / birth_S = (lam_L - r_a) / lam_L. Quiescence does
    not change it (quiescent LIC do not die, so e_q = e_a solves the backward equations).
    Followed 12 years, so that no lineage is still waiting in quiescence: each either dies
    out or founds a relapse."""
    from ciksim.targets.leukemia import lone_lic

    n = 3000
    res = lone_lic(None, n=n, years=12.0)
    model = patient_model()
    p = model.default_parameters()
    r = np.log(2) / p["T_double"]
    r_a = r + p["k_aq"] * r / (p["k_qa"] + r)
    closed = (p["lam_L"] - r_a) / p["lam_L"]
    extinct = float(np.mean(~np.isnan(res.extinction_time)))
    se = np.sqrt(closed * (1 - closed) / n)
    assert abs(extinct - closed) < 3.5 * se, (extinct, closed)
    assert np.all(np.isnan(res.extinction_time) != np.isnan(res.crossing_time))


def test_cik_lowers_relapse_and_more_is_better():
    kw = dict(replicates=1500, years=4, seed=5)
    chemo = run_patients("aml-cr1", **kw).summary()["relapse"]["value"]
    cik = run_patients("aml-cr1", cik=CikSchedule(), **kw).summary()["relapse"]["value"]
    more = run_patients("aml-cr1", cik=CikSchedule(dose_per_kg=1e8, infusions=6),
                        **kw).summary()["relapse"]["value"]
    assert more < cik < chemo


def test_same_seed_same_numbers_and_patient_independent_of_batch():
    a = run_patients("aml-cr1", replicates=40, years=2, seed=3, cik=CikSchedule()).outcomes()
    b = run_patients("aml-cr1", replicates=40, years=2, seed=3, cik=CikSchedule()).outcomes()
    assert a.equals(b)
    part = run_patients("aml-cr1", replicates=10, years=2, seed=3, cik=CikSchedule(),
                        indices=np.arange(30, 40)).outcomes()
    np.testing.assert_array_equal(part["duration"].to_numpy(), a["duration"].to_numpy()[30:])
    np.testing.assert_array_equal(part["cured"].to_numpy(), a["cured"].to_numpy()[30:])


def test_outcomes_are_consistent():
    run = run_patients("aml-cr1", replicates=300, years=5, seed=1)
    df = run.outcomes()
    assert set(df["event"]) <= {"relapse", "death", "censored"}
    assert not (df["cured"] & (df["event"] == "relapse")).any()
    assert df["relapse_day"].notna().eq(df["event"] == "relapse").all()
    assert df["death_day"].notna().eq(df["event"] == "death").all()
    assert (df["event"] == "death").mean() > 0.02  # death in remission is modelled
    assert (df["cured"] | (df["event"] != "censored")).mean() > 0.95  # fates settle in 5 y
    assert (df.loc[df["event"] == "censored", "duration"] == 60).all()
    assert df["normal_nadir_fraction"].between(0, 1).all()
    assert (df.loc[df["cured"], "extinction_day"] >= 0).all()  # 0: no LIC left by induction
    assert (df["npm1_ratio_day0"] >= 0).all() and (df["flow_mrd_day0"] >= 0).all()


def test_subtype_changes_growth_and_unknown_subtype_is_rejected():
    slow = run_patients("aml-cr1", subtype="cbfb-myh11", replicates=300, years=3, seed=0)
    fast = run_patients("aml-cr1", subtype="npm1", replicates=300, years=3, seed=0)
    assert slow.result.parameters[patient_model().parameter_names.index("T_double")].mean() > 30
    assert np.nanmedian(slow.outcomes()["relapse_day"]) > np.nanmedian(
        fast.outcomes()["relapse_day"])
    with pytest.raises(DataError, match="unknown subtype 'flt3'"):
        run_patients("aml-cr1", subtype="flt3")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"cik": "dose"}, None), ({"start_burden": 0.0}, "start-burden"),
     ({"start_burden": 1.5}, "start-burden"), ({"scenario": "aml-cr2"}, "unknown scenario"),
     ({"relapse": "clinical"}, "relapse"), ({"replicates": 0}, "replicates"),
     ({"years": -1}, "years")],
)
def test_bad_input(kwargs, message):
    if message is None:
        for bad in (dict(dose_per_kg=0), dict(first_day=-7), dict(infusions=0),
                    dict(interval_days=0)):
            with pytest.raises(DataError):
                CikSchedule(**bad)
        return
    with pytest.raises(DataError, match=message):
        run_patients(**kwargs)


def test_scenario_file_errors(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('name = "x"\n[parameters]\nweigth = 70\n')
    with pytest.raises(DataError, match="weigth is not a patient-model parameter"):
        Scenario.load(f)
    f.write_text('name = "x"\n[[events]]\nday = 3\naction = "dose"\ndose = "radiation"\n'
                 'amount = 1\n')
    with pytest.raises(DataError, match="declares no dose 'radiation'"):
        Scenario.load(f)


def test_cli_single_patient_figure_and_many_patients_json(tmp_path):
    runner = CliRunner()
    out = tmp_path / "p"
    r = runner.invoke(app, ["patient", "--seed", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["patient.png", "patient_summary.json",
                                                     "patients.csv", "report.html"]
    r = runner.invoke(app, ["patient", "--replicates", "200", "--years", "2", "--no-cik",
                            "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert set(data) == {"replicates", "cure_fraction", "relapse_fraction",
                         "relapse_fraction_3y", "median_rfs_months", "normal_nadir_fraction",
                         "death_in_remission_fraction"}
    assert data["replicates"] == 200 and data["relapse_fraction_3y"] is None
    r = runner.invoke(app, ["patient", "--first-infusion-day", "-3"])
    assert r.exit_code == 2 and "first-infusion-day" in r.output


def test_product_from_culture_folder_sets_composition(tmp_path):
    runner = CliRunner()
    folder = tmp_path / "lak"
    assert runner.invoke(app, ["culture", "--protocol", "lak", "--donors", "5", "--out",
                               str(folder)]).exit_code == 0
    run = run_patients("aml-cr1", cik=CikSchedule(), product=folder, replicates=3, years=1)
    names = patient_model().parameter_names
    nk_share = run.result.parameters[names.index("prod_nk")][0]
    assert nk_share > 0.2  # an IL-2-only product is NK-rich
    doses = [e.dose for e in patient_protocol(run.scenario, run.cik).events]
    assert doses.count("cik") == 3 and doses.count("chemo") == 3

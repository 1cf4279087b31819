"""The post-transplant (allo) model: A7 structure, scenario input errors, exact leukemia."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from pandas.testing import assert_frame_equal

from ciksim.engines.ode import simulate
from ciksim.engines.stochastic import simulate_stochastic
from ciksim.errors import CikError, SimulationWarning
from ciksim.model.variability import sample_parameters
from ciksim.models.allo import STOCHASTIC, AlloScenario, allo_model
from ciksim.models.patient import patient_model
from ciksim.protocol import Protocol

ALLO_CELLS = {"P_t", "P_cik", "X_t", "X_cik", "M", "C_m", "X_m"}


def _depends_on(name_or_key: str) -> set[str]:
    """Every species and parameter an expression reaches through the assignments."""
    model = allo_model()
    todo = set(model.expression(name_or_key).symbols)
    seen: set[str] = set()
    while todo:
        sym = todo.pop()
        if sym in seen:
            continue
        seen.add(sym)
        if sym in model.assignment_by_name:
            todo |= set(model.expression(sym).symbols)
    return seen


def test_shared_parameters_are_the_patient_models():
    pm, am = patient_model(), allo_model()
    for name in ("weight", "marrow_per_kg", "lam_L", "T_double", "K_L", "r_N"):
        assert am.parameter_by_name[name] == pm.parameter_by_name[name]
    assert all(p.source.strip() and p.low <= p.value <= p.high for p in am.parameters)


def test_a7_donor_haematopoiesis_is_not_an_allo_target():
    model = allo_model()
    for proc in model.processes:
        if proc.changes.get("D", 0) < 0:
            pytest.fail(f"{proc.name} removes donor haematopoietic cells")
        if "D" in proc.changes:
            assert not _depends_on(proc.name) & (ALLO_CELLS | {"kill_allo"}), proc.name
    # every recipient haematopoietic population is killed by the alloreactive cells
    killed = {sp for p in model.processes if "kill_allo" in _depends_on(p.name)
              for sp, c in p.changes.items() if c < 0}
    assert killed == {"S_a", "S_q", "B", "H"}


def test_a7_gvhd_is_host_tissue_damage_and_gvl_gvhd_share_the_same_cells():
    assert _depends_on("gvhd_grade") == {"dmg_grade", "Dmg"}
    assert _depends_on("cgvhd_hazard") == {"h_cgvhd", "Fib"}
    assert {"X_t", "X_cik"} <= _depends_on("tissue_damage")
    assert {"X_t", "X_cik"} <= _depends_on("gvl_blasts")
    assert {"X_t", "X_cik"} <= _depends_on("gvl_active")


def test_memory_is_recalled_by_recipient_haematopoiesis_and_gives_gvl_without_gvhd():
    """Memory (S71's share and terminal loss) is formed from every alloreactive effector,
    recalled only by recipient haematopoietic antigen (not the host-tissue floor), and its
    effectors kill recipient haematopoietic cells but do not damage host tissue."""
    model = allo_model()
    into_memory = {p.name for p in model.processes if p.changes.get("M", 0) > 0}
    assert into_memory == {"memory_t", "memory_cik", "memory_m"}
    for name in into_memory:
        assert "f_mem" in _depends_on(name)
    recall = _depends_on("recall")
    assert {"M", "donor_chimerism", "is_on"} <= recall and "apc_floor" not in recall
    assert "X_m" in _depends_on("gvl_blasts") and "X_m" in _depends_on("host_haem_kill")
    assert "X_m" not in _depends_on("tissue_damage")
    assert model.parameter_by_name["f_mem"].value == pytest.approx(0.0079)
    assert model.parameter_by_name["k_mem"].value == pytest.approx(0.0032)


def test_memory_needs_less_antigen_than_priming_and_forms_less_under_immunosuppression():
    """Recall saturates at a tenth of the recipient share priming needs (K_recall =
    K_stim / 10), and immunosuppression (is_on) cuts the share of contracting effectors
    that become memory, not only their number."""
    model = allo_model()
    par = model.parameter_by_name
    assert par["K_recall"].value == pytest.approx(par["K_stim"].value / 10)
    assert "K_recall" in _depends_on("recall") and "K_stim" not in _depends_on("recall")
    for j in ("t", "cik", "m"):
        assert "IS" in _depends_on(f"memory_{j}")
        assert "IS" in _depends_on(f"contract_{j}")  # the share, not a loss of cells

    def memory_share(is_0: float) -> float:
        """Memory formed per effector contracted, no infusion, the graft's response."""
        res = simulate(allo_model(), Protocol("x"), 60.0, times=np.linspace(0, 60, 121),
                       parameters={**_FEW, "is_0": is_0, "k_taper": 0.005, "k_mem": 0.001,
                                   "graft_cd3": 2e8, "f_allo_t": 1e-4})
        x = res["X_t"][:, 0] + res["X_cik"][:, 0] + res["X_m"][:, 0]
        contracted = np.trapezoid(x, dx=0.5) * model.parameter_by_name["k_con"].value
        return res["M"][-1, 0] / contracted

    free, held = memory_share(0.0), memory_share(1.0)
    assert held < 0.35 * free                       # is_block 0.8 at full prophylaxis


def _regrowth(f_mem: float) -> tuple[float, float, float]:
    """A day-30 DLI into a patient whose residual leukemia regrows: (leukemic cells on day
    200, the most memory-derived effectors, the most host-tissue damage after day 100).
    With memory the leukemia falls for two months, then regrows more slowly."""
    proto = Protocol.from_dict({"name": "x", "events": [_DLI]})
    res = simulate(allo_model(), proto, 200.0, times=np.linspace(0.0, 200.0, 401),
                   parameters={**_FEW, "f_mem": f_mem})
    late = np.linspace(0.0, 200.0, 401) > 100
    return res["L_tot"][-1, 0], res["X_m"][:, 0].max(), res["Dmg"][late, 0].max()


def test_memory_guards_a_remission_without_more_gvhd():
    few, memory = _regrowth(0.001), _regrowth(0.0079)
    assert memory[0] < 0.1 * few[0]           # the regrowing leukemia recalls memory: GvL
    assert memory[1] > 10 * few[1]
    assert memory[2] <= few[2] * 1.01         # ... with no more host-tissue damage


# Deterministic (ODE) runs of one patient with few graft alloreactive cells, no GvHD
# prophylaxis (it is held for months) and a leukemia as recognisable as normal recipient
# haematopoiesis, a day-30 infusion; few memory cells (f_mem at its low bound, so recall
# does not amplify: the infusion's own response is what is measured).
_FEW = {"start_burden": 1e-4, "graft_cd3": 1e7, "f_allo_t": 1e-5, "H0_frac": 0.01, "is_0": 0.0,
        "leuk_ag": 1.0, "f_mem": 0.001}
_DLI = {"action": "dose", "dose": "dli", "amount": 1e8, "days": [30]}


def _run_dose(events: list[dict]) -> tuple[float, float, np.ndarray]:
    """(leukemic cells, host-tissue damage) on day 80 and the donor haematopoiesis."""
    proto = Protocol.from_dict({"name": "x", "events": events})
    res = simulate(allo_model(), proto, 80.0, parameters=_FEW)
    return res["L_tot"][-1, 0], res["Dmg"][-1, 0], res["D"][:, 0]


def test_a7_dynamics_one_infusion_raises_gvl_and_gvhd_immunosuppression_blunts_both():
    runs = {label: _run_dose(events) for label, events in (
        ("none", []), ("dli", [_DLI]), ("dli+is", [_DLI, {**_DLI, "dose": "immunosuppression",
                                                           "amount": 1}]))}
    assert runs["dli"][0] < 0.5 * runs["none"][0]           # GvL
    assert runs["dli"][1] > runs["none"][1] + 0.03          # GvHD
    assert runs["dli+is"][0] > runs["dli"][0]               # immunosuppression blunts GvL
    assert runs["dli+is"][1] < runs["dli"][1]               # ... and GvHD
    # the infusion never lowers donor haematopoiesis (it only frees space by killing host cells)
    assert (runs["dli"][2] >= runs["none"][2] * (1 - 1e-4)).all()


def test_cik_carry_fewer_alloreactive_cells_and_less_gvhd_than_dli_at_the_same_dose():
    dli, cik = _run_dose([_DLI])[1], _run_dose([{**_DLI, "dose": "cik"}])[1]
    assert cik < dli - 0.03


def test_scenario_options_and_bad_input_name_the_field():
    base = AlloScenario.load("allo-aml-cr")
    assert (base.donor, base.conditioning) == ("sibling", "mac")
    with pytest.warns(SimulationWarning, match="post-transplant cyclophosphamide .PTCy."):
        haplo = AlloScenario.load("allo-aml-cr", donor="haploidentical", conditioning="ric")
    assert len(haplo.caveats) == 1 and "not comparable" in haplo.caveats[0]
    assert base.caveats == ()
    assert haplo.parameters["f_allo_t"] > base.parameters["f_allo_t"]
    assert haplo.parameters["H0_frac"] > base.parameters["H0_frac"]
    d0 = allo_model().parameter_by_name["D0_frac"].value
    for chimerism in (0.5, 0.9):     # the donor share of the normal marrow on day 0
        h0 = AlloScenario.load("allo-aml-cr", chimerism=chimerism).parameters["H0_frac"]
        assert d0 / (d0 + h0) == pytest.approx(chimerism)
    bad = [({"donor": "cousin"}, "donor 'cousin'"),
           ({"conditioning": "nma"}, "conditioning 'nma'"),
           ({"chimerism": 1.2}, "chimerism 1.2 must lie in .0, 1. .donor share of the "
                                "marrow on day 0"),
           ({"chimerism": 0.001}, "chimerism 0.001 needs a recipient marrow share .* on "
                                  "day 0 above H0_frac's range"),
           ({"chimerism": -0.1}, "chimerism -0.1"),
           ({"events": [{"action": "dose", "dose": "cik", "amount": 1e7, "days": [10]}]},
            "before engraftment")]
    for kwargs, fragment in bad:
        with pytest.raises(CikError, match=fragment):
            AlloScenario.load("allo-aml-cr", **kwargs)
    ok = AlloScenario.load("allo-aml-cr", events=[
        {"action": "dose", "dose": "cik", "amount": 1e7, "days": [30, 60]}])
    assert [e.day for e in ok.protocol.events] == [30.0, 60.0]


def test_leukemia_stays_exact_and_reproducible_per_individual():
    model = allo_model()
    pars = {"start_burden": np.array([1e-4, 3e-4, 1e-3]), "graft_cd3": 1e7}

    def run(indices, seed=5):
        sub = {k: (v[indices] if isinstance(v, np.ndarray) else v) for k, v in pars.items()}
        return simulate_stochastic(model, None, 60.0, stochastic=STOCHASTIC, parameters=sub,
                                   seed=seed, indices=indices, engine="reference")

    whole = run(np.array([0, 1, 2]))
    again = run(np.array([0, 1, 2]))
    alone = run(np.array([2]))
    sidx = [model.species_names.index(s) for s in STOCHASTIC]
    final = whole.final[sidx]
    assert np.array_equal(final, np.round(final)) and (final >= 0).all()
    assert np.array_equal(whole.final, again.final)
    np.testing.assert_array_equal(whole.final[:, 2], alone.final[:, 0])


def test_a6_control_arm_relapse_hazard_peaks_at_3_to_6_months():
    """A6 (clinical S109): relapse hazard per 100 patient-years by interval after allo-HSCT,
    from simulated patients of the scenario (no donor-cell infusion). The median residual
    burden was fitted to this peak, so this checks the fit and the shape."""
    model, scen = allo_model(), AlloScenario.load("allo-aml-cr")
    n = 600
    pars = sample_parameters(model, n, 3, medians=scen.parameters, variability=scen.variability)
    res = simulate_stochastic(model, scen.protocol, 3 * 365.25, stochastic=STOCHASTIC,
                              parameters=pars, seed=3, watch="blast_fraction",
                              threshold=scen.relapse_threshold, engine="reference")
    months = res.crossing_time / (365.25 / 12)
    hazard = {}
    for lo, hi in ((0, 3), (3, 6), (6, 12), (12, 36)):
        time_at_risk = np.clip(np.where(np.isfinite(months), months, 36.0), lo, hi) - lo
        events = ((months >= lo) & (months < hi)).sum()
        hazard[(lo, hi)] = 100 * events / (time_at_risk.sum() / 12)
    assert 15 <= hazard[(3, 6)] <= 45
    assert hazard[(3, 6)] == max(hazard.values())


def test_cohort_table_contract_reproducible_for_any_chunking():
    from ciksim.analysis.allo import COLUMNS, simulate_allo_cohort

    base = AlloScenario.load("allo-aml-cr")
    a = simulate_allo_cohort(base, 40, 7, horizon_days=200.0)
    assert list(a.table.columns) == ["patient", *COLUMNS]
    b = simulate_allo_cohort(base, 40, 7, horizon_days=200.0, chunk=7)
    part = simulate_allo_cohort(base, 2, 7, horizon_days=200.0, indices=np.array([5, 9]))
    assert_frame_equal(a.table, b.table)
    assert_frame_equal(a.table.iloc[[5, 9]].reset_index(drop=True),
                       part.table.reset_index(drop=True))
    t = a.table
    assert t["donor_chimerism"].between(0, 1).all()
    # grade I comes no later than grade II; nothing happens after death
    both = t["agvhd_day"].notna()
    assert (t.loc[both, "gvhd_any_day"] <= t.loc[both, "agvhd_day"]).all()
    for col in ("relapse_day", "remission_day", "gvhd_any_day", "agvhd_day", "cgvhd_day"):
        assert not (t[col] > t["death_day"]).any(), col
    assert (t["nrm_day"].dropna() == t.loc[t["nrm_day"].notna(), "death_day"]).all()
    assert not (t["nrm_day"].notna() & (t["relapse_day"] <= t["nrm_day"])).any()
    assert not (t["remission_day"].notna() & t["relapse_day"].isna()).any()
    with pytest.raises(CikError, match="horizon_days"):
        simulate_allo_cohort(base, 2, 7, horizon_days=-1.0)
    with pytest.raises(CikError, match="unknown parameter"):
        simulate_allo_cohort(base, 2, 7, parameters={"nope": 1.0})
    with pytest.raises(CikError, match="one number or 2 values"):
        simulate_allo_cohort(base, 2, 7, parameters={"k_dmg": [0.1, 0.2, 0.3]})
    with pytest.raises(CikError, match="chunk"):
        simulate_allo_cohort(base, 2, 7, chunk=0)
    with pytest.raises(CikError, match="number of patients"):
        simulate_allo_cohort(base, 0, 7)


def _assignment(name: str, **state: float) -> float:
    """A derived quantity of the allo model at the default parameters and a given state
    (species not given are 0, but for a full donor marrow)."""
    model = allo_model()
    y = np.zeros((len(model.species), 1))
    state = {"D": model.parameter_by_name["K_L"].value, **state}
    for sp, value in state.items():
        y[model.species_names.index(sp), 0] = value
    p = np.array([[q.value] for q in model.parameters])
    return float(np.asarray(model.compiled.assignments(0.0, y, p)[name]).ravel()[0])


def test_mortality_and_chronic_gvhd_hazards_are_declared_mechanisms():
    model = allo_model()
    dmg_grade = model.parameter_by_name["dmg_grade"].value
    nrm = [_assignment("nrm_hazard", Dmg=g * dmg_grade) for g in (0, 1, 2, 3, 4)]
    assert all(b > a for a, b in pairwise(nrm))     # rises with the grade
    assert nrm[4] > 20 * nrm[1]                                        # steeply
    assert _assignment("nrm_hazard", Infl=1.0) > _assignment("nrm_hazard")  # toxicity
    assert _assignment("nrm_hazard", IS=1.0) > _assignment("nrm_hazard")    # infections
    k = model.parameter_by_name["K_L"].value / 10
    leuk = [_assignment("leuk_death_hazard", B=b * k) for b in (0.0, 0.1, 0.5, 1.0)]
    assert leuk[0] == 0 and all(b > a for a, b in pairwise(leuk))
    assert _depends_on("cgvhd_hazard") == {"h_cgvhd", "Fib"}
    assert {"Dmg"} <= _depends_on("fibrosis")
    # cumulative hazards are integrated from the declared hazards (one process each)
    for state, hazard in (("Lam_nrm", "nrm_hazard"), ("Lam_leuk", "leuk_death_hazard"),
                          ("Lam_cgvhd", "cgvhd_hazard")):
        procs = [p for p in model.processes if state in p.changes]
        assert len(procs) == 1 and procs[0].rate == hazard


def test_cohort_nrm_follows_gvhd_grade_and_mrd_is_an_observable():
    from ciksim.analysis.allo import simulate_allo_cohort

    # a cohort with more tissue damage than the defaults, for enough grade III-IV patients
    t = simulate_allo_cohort(AlloScenario.load("allo-aml-cr"), 300, 2, horizon_days=365.0,
                             parameters={"k_dmg": 0.3}).table
    severe, mild = t[t["peak_grade"] >= 3], t[t["peak_grade"] < 2]
    assert len(severe) >= 30 and len(mild) >= 50
    assert severe["nrm_day"].notna().mean() > 1.8 * mild["nrm_day"].notna().mean()
    assert t["cgvhd_day"].notna().any() and t["nrm_day"].notna().any()
    assert t.loc[t["cgvhd_day"].notna(), "agvhd_day"].notna().mean() > \
        t["agvhd_day"].notna().mean()                      # chronic follows acute damage
    mrd = allo_model().assignment_by_name["mrd"]
    assert "mrd" in mrd.roles and _depends_on("mrd") >= {"S_a", "S_q", "B", "H", "D"}


def test_cik_kill_leukemia_without_alloreactivity_dli_does_not():
    """Alloreactivity removed: only the CIK product's NKG2D-type killing (the patient
    model's law and parameters) is left; a DLI of the same CD3+ dose does nothing."""
    none_alloreactive = {**_FEW, "f_allo_t": 0.0}
    pm = patient_model()
    for name in ("k_cik", "f_nkg2d_cik", "t_half_E", "s_vivo", "f_marrow", "lig_frac"):
        assert allo_model().parameter_by_name[name] == pm.parameter_by_name[name]

    def leukemia(dose: str | None) -> float:
        events = [{**_DLI, "dose": dose, "amount": 1e8}] if dose else []
        res = simulate(allo_model(), Protocol.from_dict({"name": "x", "events": events}),
                       80.0, parameters=none_alloreactive)
        return res["L_tot"][-1, 0]

    assert leukemia("cik") < 0.7 * leukemia(None)
    assert leukemia("dli") == pytest.approx(leukemia(None), rel=1e-3)


def test_cik_persist_and_give_less_damage_than_dli_at_the_same_dose():
    proto = Protocol.from_dict({"name": "x", "events": [{**_DLI, "dose": "cik"}]})
    res = simulate(allo_model(), proto, 80.0, parameters=_FEW)
    e = res["E_tot"][:, 0]
    days = res.times
    half = allo_model().parameter_by_name["t_half_E"].value
    after = e[np.searchsorted(days, 30.0 + half)]
    assert 0.1 * e.max() < after < 0.9 * e.max()          # decays with the declared half-life
    dli, cik = _run_dose([_DLI])[1], _run_dose([{**_DLI, "dose": "cik"}])[1]
    assert cik < dli - 0.03


def test_compiled_and_reference_engines_give_the_same_cohort():
    from ciksim.analysis.allo import simulate_allo_cohort

    scen = AlloScenario.load("allo-aml-cr", events=[
        {"action": "dose", "dose": "cik", "amount": 5e7, "days": [60, 90]},
        {"action": "dose", "dose": "dli", "amount": 1e7, "days": [120]}])
    kw = dict(horizon_days=400.0)
    ref = simulate_allo_cohort(scen, 300, 5, engine="reference", **kw).table
    comp = simulate_allo_cohort(scen, 300, 5, engine="compiled", chunk=128, **kw).table
    assert_frame_equal(ref, comp, check_exact=False, rtol=1e-9)
    assert ref["relapse_day"].notna().any() and ref["agvhd_day"].notna().any()


def test_ciksim_patient_draws_one_allo_patient_and_refuses_bad_doses(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from ciksim.cli import app
    from ciksim.jobs.allo import allo_patient_job, dose_events

    runner = CliRunner()
    out = tmp_path / "one"
    r = runner.invoke(app, ["patient", "--scenario", "allo-aml-cr", "--donor", "unrelated",
                            "--cik", "5e7@60,90", "--dli", "1e7@120", "--years", "1",
                            "--seed", "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "unrelated donor" in r.output
    course = pd.read_csv(out / "allo_course.csv")
    assert {"LIC", "mrd", "X_t", "X_cik", "E_tot", "Dmg", "gvhd_grade",
            "donor_chimerism"} <= set(course.columns)
    table = pd.read_csv(out / "allo_patients.csv")
    assert len(table) == 1 and (out / "allo_patient.png").stat().st_size > 0
    assert course["E_tot"].max() > 0                       # the CIK product reached marrow
    many = allo_patient_job("allo-aml-cr", replicates=20, years=0.5, seed=1)
    assert many.cohort.courses is None and len(many.cohort.table) == 20
    assert dose_events("dli", ["1e7@90,60"]) == [
        {"action": "dose", "dose": "dli", "amount": 1e7, "day": d} for d in (60.0, 90.0)]
    for args, fragment in ((["--dli", "1e7"], "AMOUNT@DAY"),
                           (["--cik", "-1@60"], "AMOUNT@DAY"),
                           (["--dli", "1e7@5"], "before engraftment"),
                           (["--conditioning", "nma"], "conditioning 'nma'"),
                           (["--chimerism", "1.5"], "chimerism 1.5")):
        r = runner.invoke(app, ["patient", "--scenario", "allo-aml-cr", *args])
        assert r.exit_code == 2 and fragment in r.output, (args, r.output)
    r = runner.invoke(app, ["patient", "--donor", "sibling"])
    assert r.exit_code == 2 and "allo scenarios" in r.output


_PRE_EMPTIVE = {"name": "pre-emptive", "watch": "mrd", "above": 1e-4,
                "monitor": {"first": 30, "every": 30, "last": 720},
                "doses": [{"offset": 0, "dose": "cik", "amount": 1e7},
                          {"offset": 28, "dose": "cik", "amount": 5e7}]}


def test_triggers_fire_per_patient_and_bad_triggers_name_the_field():
    from ciksim.analysis.allo import COLUMNS, simulate_allo_cohort

    at_relapse = {"name": "at-relapse", "watch": "blast_fraction", "above": 0.05,
                  "monitor": {"first": 30, "every": 7, "last": 720},
                  "doses": [{"offset": 0, "dose": "dli", "amount": 1e8}]}
    scen = AlloScenario.load("allo-aml-cr", triggers=[_PRE_EMPTIVE, at_relapse])
    ref = simulate_allo_cohort(scen, 200, 3, horizon_days=540.0, engine="reference").table
    comp = simulate_allo_cohort(scen, 200, 3, horizon_days=540.0, chunk=64).table
    assert list(comp.columns) == ["patient", *COLUMNS, "pre-emptive_day", "at-relapse_day"]
    assert_frame_equal(ref, comp, check_exact=False, rtol=1e-9)
    fired = comp["pre-emptive_day"].dropna()
    assert len(fired) > 0 and fired.isin(np.arange(30.0, 721.0, 30.0)).all()
    relapsed = comp["at-relapse_day"].dropna()
    assert len(relapsed) > 0 and (relapsed >= comp.loc[relapsed.index, "relapse_day"]).all()
    assert not (comp["pre-emptive_day"] > comp["death_day"]).any()
    for bad, fragment in (({"watch": "npm1_ratio"}, "watch 'npm1_ratio'"),
                          ({"monitor": {"first": 7, "every": 7, "last": 70}},
                           "before engraftment"),
                          ({"doses": [{"offset": 0, "dose": "chemo", "amount": 1}]},
                           "chemo")):
        with pytest.raises(CikError, match=fragment):
            AlloScenario.load("allo-aml-cr", triggers=[{**_PRE_EMPTIVE, **bad}])


def test_allo_report_lists_the_infusions_and_triggers():
    from ciksim.jobs.allo import allo_patient_job
    from ciksim.models.allo import AlloScenario

    res = allo_patient_job("allo-aml-cr", dli=["1e7@90"], years=0.3, seed=1)
    html = res.report_html()
    assert "DLI 1e+07 CD3+/kg on day 90" in html
    trig = AlloScenario.load("allo-aml-cr", triggers=[_PRE_EMPTIVE])
    html = type(res)(trig, res.cohort).report_html()
    assert "trigger &#x27;pre-emptive&#x27;: when mrd is above 0.0001" in html \
        or "trigger 'pre-emptive': when mrd is above 0.0001" in html
    assert "donor CIK 5e+07 CD3+/kg 28 days later" in html
    stop = AlloScenario.load("allo-aml-cr", events=[
        {"day": 90, "action": "dose", "dose": "is_withdrawal", "amount": 1}])
    html = type(res)(stop, res.cohort).report_html()
    assert "immunosuppression withdrawn on day 90" in html  # a share, not cells/kg


def test_ciksim_patient_warns_that_haploidentical_lacks_ptcy(tmp_path):
    from typer.testing import CliRunner

    from ciksim.cli import app

    out = tmp_path / "haplo"
    r = CliRunner().invoke(app, ["patient", "--scenario", "allo-aml-cr", "--donor",
                                 "haploidentical", "--years", "0.1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "PTCy" in r.output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Not modelled: donor haploidentical: post-transplant cyclophosphamide" in html


def test_immunosuppression_is_held_then_tapered():
    res = simulate(allo_model(), None, 200.0)
    days, level = res.times, res["IS"][:, 0]
    at = {d: level[np.searchsorted(days, d)] for d in (30, 60, 120, 180)}
    assert at[30] > 0.99 and at[60] > 0.9          # held for about two months
    assert at[120] < 0.5 and at[180] < 0.15         # then tapered
    assert all(b <= a for a, b in pairwise(level))


def test_withdrawing_immunosuppression_stops_it_and_lets_the_graft_expand():
    """The ``is_withdrawal`` dose (practice at a relapse) scales the level by 1 - amount;
    the graft's alloreactive cells then expand more than under the held prophylaxis."""
    stop = Protocol.from_dict({"name": "x", "events": [
        {"day": 40, "action": "dose", "dose": "is_withdrawal", "amount": 1}]})
    half = Protocol.from_dict({"name": "x", "events": [
        {"day": 40, "action": "dose", "dose": "is_withdrawal", "amount": 0.5}]})
    pars = {**_FEW, "is_0": 1.0, "graft_cd3": 2e8, "f_allo_t": 1e-4}
    kept = simulate(allo_model(), None, 80.0, parameters=pars)
    gone = simulate(allo_model(), stop, 80.0, parameters=pars)
    part = simulate(allo_model(), half, 80.0, parameters=pars)
    after = gone.times > 40
    assert kept["IS"][-1, 0] > 0.5 and gone["IS"][after, 0].max() == 0.0
    assert part["IS"][-1, 0] == pytest.approx(0.5 * kept["IS"][-1, 0], rel=1e-6)
    assert gone["X_t"][-1, 0] > 1.5 * kept["X_t"][-1, 0]


def test_expansion_follows_the_host_antigen_met():
    """The same DLI expands more at a relapse (leukemic cells are host cells) than in a
    full-donor remission, and a CIK infusion inflames while a DLI does not."""
    dli = Protocol.from_dict({"name": "x", "events": [{**_DLI, "days": [120]}]})
    peak = {}
    for label, burden in (("remission", 1e-6), ("relapse", 0.05)):
        res = simulate(allo_model(), dli, 160.0, parameters={
            **_FEW, "start_burden": burden, "leuk_ag": 0.0, "H0_frac": 0.0})
        peak[label] = res["X_t"][res.times > 125, 0].max()   # the DLI's, not the graft's
    assert peak["relapse"] > 3 * peak["remission"]
    infl = {}
    for dose in ("dli", "cik"):
        proto = Protocol.from_dict({"name": "x", "events": [{**_DLI, "dose": dose,
                                                             "days": [120]}]})
        res = simulate(allo_model(), proto, 121.0, parameters=_FEW)
        infl[dose] = res["Infl"][-1, 0]
    assert infl["cik"] > infl["dli"] + 0.2
    assert "leuk_ag" in _depends_on("gvl_blasts") and "leuk_ag" not in _depends_on(
        "host_haem_kill")


def test_gvhd_after_an_infusion_counts_new_onsets_and_rises_with_the_dli_dose():
    """A resolved grade I of the graft's own GvHD does not hide a new onset after a DLI
    (gvhd_any_day is the first onset ever); new onsets within 6 months of a day-180 DLI
    rise with the dose."""
    from ciksim.analysis.allo import onset_after, simulate_allo_cohort

    grid = np.arange(6.0)
    series = np.array([[0, 0, 2], [1.5, 0, 2], [0.5, 0, 2], [0.5, 1.2, 0.5],
                       [1.2, 0.5, 0.5], [1.5, 0.5, 1.5]], float)
    got = onset_after(grid, series, 1.0, np.array([2.0, 2.0, np.nan]))
    np.testing.assert_allclose(got[:2], [3 + 0.5 / 0.7, 2 + 1 / 1.2])
    assert np.isnan(got[2])
    share = {}
    for dose in (3e6, 1e8):
        scen = AlloScenario.load("allo-aml-cr", events=[
            {"action": "dose", "dose": "dli", "amount": dose, "days": [180]}])
        t = simulate_allo_cohort(scen, 150, 11, horizon_days=370.0).table
        alive = t["death_day"].isna() | (t["death_day"] > 180)
        assert (t.loc[alive, "infusion_day"] == 180).all()
        new = t["gvhd_after_infusion_day"]
        assert not (new <= 180).any()
        share[dose] = new[alive].notna().mean()
        if dose == 1e8:
            assert ((t["gvhd_any_day"] < 180) & new.notna()).any()
    assert share[1e8] > share[3e6] + 0.1
    none = simulate_allo_cohort(AlloScenario.load("allo-aml-cr"), 5, 11, horizon_days=60.0)
    assert none.table["infusion_day"].isna().all()
    assert none.table["gvhd_after_infusion_day"].isna().all()

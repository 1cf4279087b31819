"""Evidence files, cohorts and the effect mapping: validation before any simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ciksim.errors import CikError
from ciksim.evidence import cohort_study, load_evidence, parse_evidence, read_cohort
from ciksim.evidence.effect import (
    HALF_LIFE_BOUNDS,
    dimensions,
    effect_parameters,
    model_parameters,
)
from ciksim.schemas import formats
from conftest import evidence_refused


def test_shipped_evidence_loads_with_version_and_used_studies():
    ev = load_evidence()
    assert ev.version
    used = {s.id for s in ev.used}
    assert {"S18-dc-cik-mrd", "S19-nk-consolidation", "S45-linn-2012-autologous"} <= used
    assert ev.study("S19-nk-consolidation").proxy
    for s in ev.studies:
        assert s.use or s.reason


def _bad(mutate, *needles):
    return evidence_refused(parse_evidence, "clinical.toml", mutate, *needles)


def test_counts_above_n_name_study_field_and_fix():
    def m(d):
        d["studies"][0]["arms"][0]["events"] = 30
    _bad(m, "study 'S18-dc-cik-mrd'", "arms[0]", "above n = 24")


@pytest.mark.parametrize("value", ["24", True, 24.0])
def test_counts_are_whole_numbers_without_coercion(value):
    def m(d):
        d["studies"][0]["arms"][0]["n"] = value
    _bad(m, "study 'S18-dc-cik-mrd'", "arms[0].n", "valid integer")


def test_unknown_scenario_endpoint_protocol_and_parameter():
    def scen(d):
        d["studies"][1]["population"]["scenario"] = "aml-nowhere"
    _bad(scen, "S19-nk-consolidation", "population.scenario", "aml-nowhere")

    def endpoint(d):
        d["studies"][0]["endpoint"]["kind"] = "overall_survival"
    _bad(endpoint, "endpoint", "overall_survival", "mrd_negative")

    def proto(d):
        d["studies"][2]["arms"][0]["product"]["culture_protocol"] = "cik-unknown"
    _bad(proto, "S45-linn-2012-autologous", "culture_protocol", "cik-gmp")

    def par(d):
        d["studies"][0]["population"]["parameters"] = {"logkil_L": 0.3}
    _bad(par, "population.parameters.logkil_L")


def test_design_and_schedule_consistency():
    def single(d):
        d["studies"][0]["design"] = "single-arm"
    _bad(single, "single-arm takes one arm")

    def control_dose(d):
        d["studies"][0]["arms"][1]["dose_per_kg"] = 1e7
    _bad(control_dose, "control arm")

    def unused(d):
        d["studies"][0]["use"] = False
    _bad(unused, "needs a reason")

    def dup(d):
        d["studies"][1]["id"] = d["studies"][0]["id"]
    _bad(dup, "repeated")

    def hr(d):
        d["studies"][2]["endpoint"]["ci90"] = [1.2, 2.5]
    _bad(hr, "must contain estimate")


def _write(tmp_path, rows, header="patient,arm,time_months,event"):
    p = tmp_path / "cohort.csv"
    p.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return p


def _study_toml(tmp_path):
    p = tmp_path / "study.toml"
    p.write_text(formats()["study"].example, encoding="utf-8")
    return p


def test_cohort_becomes_survival_study(tmp_path):
    rows = [f"p{i},{'cik' if i % 2 else 'control'},{3 + i},{'relapse' if i % 3 else 'censored'}"
            for i in range(20)] + ["p99,control,4.5,death"]
    study = cohort_study(_write(tmp_path, rows), _study_toml(tmp_path))
    assert study.endpoint.kind == "survival"
    assert sum(a.n for a in study.arms) == 21
    ev = load_evidence().with_study(study)
    assert ev.study("my-cohort").arms[0].n == 10


@pytest.mark.parametrize(("row", "needle"), [
    ("p1,cik,-2,relapse", "time_months"),
    ("p1,cik,2,progressed", "unknown label"),
    ("p1,cik,two,relapse", "not a number"),
])
def test_bad_cohort_rows(tmp_path, row, needle):
    with pytest.raises(CikError, match=needle) as err:
        read_cohort(_write(tmp_path, ["p0,cik,1,censored", row]))
    assert "line 3" in str(err.value)


def test_cohort_arm_without_record(tmp_path):
    rows = ["p1,cik,2,relapse", "p2,placebo,3,censored"]
    with pytest.raises(CikError, match="placebo"):
        cohort_study(_write(tmp_path, rows), _study_toml(tmp_path))


def test_effect_mapping_keeps_factors_in_range_and_product_exact():
    pars = effect_parameters()
    pot = pars["potency"]
    from ciksim.models.patient import patient_model

    m = patient_model().parameter_by_name
    for value in (pot.low, 1e-3, pot.value, pot.high):
        out = model_parameters({"potency": value, "persistence_sd": 0.5}, np.full(3, 0.5))
        f, s = out["f_marrow"][0], out["s_vivo"][0]
        assert math.isclose(f * s, value, rel_tol=1e-9)
        assert m["f_marrow"].low - 1e-12 <= f <= m["f_marrow"].high + 1e-12
        assert m["s_vivo"].low - 1e-12 <= s <= m["s_vivo"].high + 1e-12
    from scipy import stats

    u = np.array([0.2, 0.5, 0.8])
    t = model_parameters({"persistence_sd": 0.5}, u)["t_half_E"]
    assert np.allclose(np.log(t / m["t_half_E"].value) / 0.5, stats.norm.ppf(u), atol=0.02)
    wide = model_parameters({"persistence_sd": 1.6}, np.linspace(0.0, 1.0, 101))["t_half_E"]
    assert wide.min() >= HALF_LIFE_BOUNDS[0] - 1e-9 and wide.max() <= HALF_LIFE_BOUNDS[1] + 1e-9
    assert np.unique(np.round(wide, 9)).size == wide.size  # no point masses at the bounds


def test_dimensions_bias_terms_follow_designs():
    dims = {d.name: d for d in dimensions(load_evidence())}
    assert dims["potency"].prior == "loguniform"
    assert dims["bias:S19-nk-consolidation"].b < dims["bias:S45-linn-2012-autologous"].b
    assert "offset:S18-dc-cik-mrd" in dims and "offset:S45-linn-2012-autologous" not in dims
    with pytest.raises(CikError, match="unknown"):
        dimensions(load_evidence(), effects=("potency", "nonsense"))
    with pytest.raises(CikError, match="unknown coordinate"):
        dimensions(load_evidence(), priors={"bias:nobody": (0.0, 1.0)})


def test_cohort_study_is_simulated_with_its_follow_up(tmp_path):
    from ciksim.evidence.simulate import distance, observed, prepare, simulate_batch, summaries

    rows = [f"p{i},{'cik' if i % 2 else 'control'},{2 + i % 7},"
            f"{'relapse' if i % 3 == 0 else 'censored'}" for i in range(16)]
    study = cohort_study(_write(tmp_path, rows), _study_toml(tmp_path))
    ev = load_evidence().with_study(study)
    from ciksim.evidence import Evidence

    only = Evidence(version="t", studies=(ev.study("my-cohort"),))
    prepared = prepare(only)
    obs = observed(prepared)
    assert len(obs) == 6 and all(0 < o.value < 1 and o.se > 0 for o in obs.values())
    theta = {"potency": 0.02, "persistence_sd": 0.5, "offset:my-cohort": 0.0}
    raw = simulate_batch(prepared, [theta], [1], seed=3)[0]["my-cohort"]
    cens = np.array(study.arms[0].times_months)
    assert np.all(raw["cik"]["time"] <= cens + 1e-9)  # censored at each patient's follow-up
    sim = summaries(prepared, {"my-cohort": raw}, theta)
    assert set(sim) == set(obs) and np.isfinite(distance(sim, obs))


def test_control_arms_are_drawn_from_a_pool_keyed_by_draw():
    from ciksim.evidence.simulate import pool_size, prepare, simulate_batch

    ev = load_evidence()
    prepared = prepare(ev)
    theta = {"potency": 0.02, "persistence_sd": 0.5}
    alone = simulate_batch(prepared, [theta], [7], seed=5)[0]
    batch = simulate_batch(prepared, [dict(theta, potency=0.05), theta], [3, 7], seed=5)
    study = "S19-nk-consolidation"
    for arm in ("nk-consolidation", "matched-controls"):
        for k, v in alone[study][arm].items():  # a draw's study does not depend on its batch
            assert np.array_equal(v, batch[1][study][arm][k]), (arm, k)
    ctrl = [b[study]["matched-controls"]["time"] for b in batch]
    assert ctrl[0].shape == (46,) and not np.array_equal(ctrl[0], ctrl[1])  # own draws
    assert pool_size(46) == 2048 and pool_size(400) == 6400 and pool_size(10**6) == 8192

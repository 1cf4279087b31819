"""Allo evidence (DLI and donor-CIK studies after allo-HSCT): records, validation before any
simulation, coordinates and priors, endpoints computed from the cohort table's columns."""

from __future__ import annotations

import copy
import dataclasses
import math
import re

import numpy as np
import pandas as pd
import pytest

from ciksim.errors import CikError
from ciksim.evidence import Posterior, calibrate
from ciksim.evidence.allo import (
    DEFAULT_PARAMETERS,
    allo_dimensions,
    allo_model_hash,
    arm_exposure,
    arm_outcome,
    arm_table,
    design_mask,
    load_allo_evidence,
    parse_allo_evidence,
    prepare,
    prepare_studies,
    simulate_batch,
    stop_days,
)
from ciksim.evidence.allo_records import AlloArm
from ciksim.models.allo import WITHDRAWAL, allo_model
from conftest import evidence_refused, shipped_evidence


def test_shipped_allo_evidence_records_a1_to_a3():
    ev = load_allo_evidence()
    assert ev.version
    ids = {s.id for s in ev.used}
    assert {"A1-bar-2013-dli-dose", "A2-dazzi-2000-escalating", "A3-introna-2007-cik",
            "A3-laport-2011-cik", "A3-linn-2012-cik", "A3-chongqing-2016-cik"} <= ids
    a1 = ev.study("A1-bar-2013-dli-dose")
    assert [a.n for a in a1.arms] == [66, 58, 84]  # the groups of Bar 2013's abstract
    # 12-month GvHD 55%, 45%, 21% (high to low initial dose) from the derived counts
    assert [round(a.events / a.n, 2) for a in a1.arms] == [0.55, 0.45, 0.21]
    a3 = {s.id: s.arms[0] for s in ev.used if s.id.startswith("A3")}
    assert sorted((a.events, a.n) for a in a3.values()) == [(2, 15), (2, 18), (3, 16), (4, 11)]
    assert all(a.cells == "cik" for a in a3.values())
    # given at relapse, as published: the design of the same patients' CR records (A4)
    for sid in ("A3-introna-2007-cik", "A3-laport-2011-cik", "A3-linn-2012-cik"):
        arm, study = a3[sid], ev.study(sid)
        assert arm.first_day is None and arm.trigger.watch == "blast_fraction"
        assert study.population.parameters == {"start_burden": 3e-4}
    for cik, cr in (("A3-introna-2007-cik", "A4-introna-2007-cr"),
                    ("A3-linn-2012-cik", "A4-linn-2012-cr")):
        a, b = a3[cik], ev.study(cr).arms[0]
        assert (a.doses, a.interval_days, a.trigger) == (b.doses, b.interval_days, b.trigger)
        assert ev.study(cik).population == ev.study(cr).population
    laport = a3["A3-laport-2011-cik"]  # the published dose levels
    assert [(lv.dose_per_kg, lv.n) for lv in laport.levels] == [(1e7, 4), (5e7, 6), (1e8, 8)]
    esc = ev.study("A2-dazzi-2000-escalating").arms[0]
    assert esc.doses == (1e7, 5e7) and esc.doses[0] < esc.doses[1]
    assert set(esc.stop) == {"gvhd", "response"}  # stopped at response or GvHD (S8)
    a6 = ev.study("A6-yanada-2021-relapse-hazard")
    assert a6.use and not a6.bias_term and a6.arms[0].cells == "none"
    assert (a6.endpoint.from_months, a6.endpoint.at_months) == (3.0, 6.0)
    assert a6.arms[0].rate_per_100py == 29.0 and a6.arms[0].n == 1265
    for s in ev.studies:
        assert s.notes and s.source


def _bad(mutate, *needles):
    return evidence_refused(parse_allo_evidence, "allo.toml", mutate, *needles)


def test_bad_records_name_study_field_and_fix():
    def counts(d):
        d["studies"][0]["arms"][1]["events"] = 80
    _bad(counts, "study 'A1-bar-2013-dli-dose'", "arms[1]", "above n = 58")

    def endpoint(d):
        d["studies"][0]["endpoint"]["kind"] = "grfs"
    _bad(endpoint, "endpoint", "not an endpoint the allo model can compute")

    def cells(d):
        d["studies"][2]["arms"][0]["cells"] = "car-t"
    _bad(cells, "A3-introna-2007-cik", "arms[0].cells")

    def schedule(d):
        d["studies"][2]["arms"][0]["doses_per_kg"] = [1e7, 2e7]
    _bad(schedule, "dose_per_kg with infusions")

    def interval(d):
        del d["studies"][2]["arms"][0]["interval_days"]
    _bad(interval, "interval_days")

    def setting(d):
        d["studies"][2]["setting"] = "mrd-positive-in-cr"
    _bad(setting, "donor-after-allo-hsct")

    def donor(d):
        d["studies"][4]["population"] = {"donor": "twin"}
    _bad(donor, "A3-linn-2012-cik", "population", "twin")

    def parameter(d):
        d["studies"][4]["population"] = {"parameters": {"potency": 0.1}}
    _bad(parameter, "population.parameters.potency", "not an allo-model parameter")

    def before_engraftment(d):
        d["studies"][5]["arms"][0]["first_day"] = 5
    _bad(before_engraftment, "A3-chongqing-2016-cik", "arms[0]", "engraftment")

    def control_with_doses(d):
        d["studies"][-1]["arms"][0].update({"dose_per_kg": 1e7, "infusions": 1})
    _bad(control_with_doses, "A6-yanada-2021-relapse-hazard", "takes no doses")

    def rate_as_events(d):
        arm = d["studies"][-1]["arms"][0]
        del arm["rate_per_100py"]
        arm["events"] = 90
    _bad(rate_as_events, "relapse-rate", "rate_per_100py")

    def rate_with_bias(d):
        d["studies"][-1]["bias"] = True
    _bad(rate_with_bias, "relapse-rate endpoint takes one arm and no bias term")

    def from_months(d):
        d["studies"][0]["endpoint"]["from_months"] = 3.0
    _bad(from_months, "from_months belongs to relapse-rate")

    def levels(d):
        d["studies"][3]["arms"][0]["levels"][0]["n"] = 5
    _bad(levels, "A3-laport-2011-cik", "add up to 19", "n = 18")

    def stop(d):
        d["studies"][1]["arms"][0]["stop"] = ["relapse"]
    _bad(stop, "A2-dazzi-2000-escalating", "stop")

    def fixed_day_in_remission(d):
        d["studies"][0]["arms"][0]["in_remission"] = True
    _bad(fixed_day_in_remission, "A1-bar-2013-dli-dose", "in_remission", "trigger")

    def landmark(d):
        d["studies"][-2]["population"]["alive_on_day"] = -1
    _bad(landmark, "A5-rettig-2021-preemptive", "alive_on_day")


def test_coordinates_are_allo_parameters_with_declared_range_priors():
    ev = load_allo_evidence()
    dims = allo_dimensions(ev)
    declared = allo_model().parameter_by_name
    effects = [d for d in dims if d.kind == "effect"]
    assert tuple(d.name for d in effects) == DEFAULT_PARAMETERS
    for d in effects:
        p = declared[d.name]
        lo, hi = d.interval(1.0)
        assert math.isclose(lo, p.low, rel_tol=1e-9) and math.isclose(hi, p.high, rel_tol=1e-9)
    # every non-randomised study has its bias term (but the registry of the reference
    # population, bias = false); studies with several arms an offset
    names = {d.name for d in dims}
    for s in ev.used:
        assert (f"bias:{s.id}" in names) == (s.id != "A6-yanada-2021-relapse-hazard")
        assert (f"offset:{s.id}" in names) == (len(s.arms) > 1)
    assert "start_burden" in DEFAULT_PARAMETERS  # fitted jointly with A6
    from ciksim.cli.calibrate import ALLO_DEFAULTS  # what `calibrate allo --help` shows

    assert tuple(ALLO_DEFAULTS.split(",")) == DEFAULT_PARAMETERS
    with pytest.raises(CikError, match="unknown potency"):
        allo_dimensions(ev, ["potency"])
    with pytest.raises(CikError, match="declared range"):
        allo_dimensions(ev, ["f_allo_t"], {"f_allo_t": (1e-6, 1e-3)})
    with pytest.raises(CikError, match="no calibration for 'car-t'"):
        calibrate(ev, out="unused", model="car-t")


def test_endpoints_from_the_cohort_columns():
    nan = np.nan
    table = pd.DataFrame({
        # 0: grade II-IV before the infusion (ineligible); 1: grade I after it (counted);
        # 2: grade I before it (still eligible), resolved, a new grade I after it (day 400),
        # grade II-IV after the 12-month window; 3: never acute, chronic after it; 4: died
        # before the infusion
        "gvhd_any_day": [100.0, 200.0, 120.0, nan, nan],
        "infusion_day": [nan, 180.0, 180.0, 180.0, nan],
        "gvhd_after_infusion_day": [nan, 200.0, 400.0, nan, nan],
        "agvhd_day": [110.0, nan, 600.0, nan, nan],
        "cgvhd_day": [nan, nan, nan, 300.0, nan],
        "death_day": [nan, nan, nan, nan, 150.0],
        "relapse_day": [nan, 170.0, 190.0, 120.0, 100.0],
        "remission_day": [nan, 230.0, nan, 500.0, nan],
    })
    eligible, hit = arm_outcome("gvhd", table, 180.0, 365.0)
    assert eligible.tolist() == [False, True, True, True, False]
    assert hit.tolist() == [False, True, True, True, False]
    _, acute = arm_outcome("agvhd", table, 180.0, 200.0)
    assert acute.tolist() == [False, True, False, False, False]
    _, later = arm_outcome("agvhd", table, 180.0, 365.0)  # the new onset on day 400 counts
    assert later.tolist() == [False, True, True, False, False]
    table["gvhd_after_infusion_day"] = nan  # without it (and with no grade II-IV by then)
    assert not arm_outcome("agvhd", table, 180.0, 365.0)[1][2]
    table["gvhd_after_infusion_day"] = [nan, 200.0, 400.0, nan, nan]
    eligible, cr = arm_outcome("cr", table, 180.0, 90.0)
    assert eligible.tolist() == [False, True, False, True, False]
    assert cr.tolist() == [False, True, False, False, False]
    eligible, alive = arm_outcome("os", table, np.array([180.0, 180.0, nan, 180.0, 180.0]),
                                  730.0)
    assert eligible.tolist() == [True, True, False, True, False]
    assert alive.tolist() == [True, True, False, True, False]
    # relapse rate over days (90, 180]: 0 never relapses, 1 and 2 relapse within it, 3
    # before it, 4 dies within it (day 150) without a relapse
    table["relapse_day"] = [nan, 170.0, 100.0, 60.0, nan]
    hit, days = arm_exposure(table, 0.0, 90.0, 180.0)
    assert hit.tolist() == [False, True, True, False, False]
    assert days.tolist() == [90.0, 80.0, 10.0, 0.0, 60.0]
    hit, days = arm_exposure(table, 0.0, 150.0, 180.0)  # 4 dead at its beginning
    assert days.tolist() == [30.0, 20.0, 0.0, 0.0, 0.0] and hit.sum() == 1
    # what stops later infusions: GvHD of any grade (0, 1, 2 and chronic in 3), response
    np.testing.assert_array_equal(stop_days(["gvhd"], table), [100, 200, 400, 300, nan])
    np.testing.assert_array_equal(stop_days(["significant-gvhd"], table),
                                  [110, nan, 600, 300, nan])
    np.testing.assert_array_equal(stop_days(["gvhd", "response"], table),
                                  [100, 200, 400, 300, nan])
    np.testing.assert_array_equal(stop_days(["response"], table), [nan, 230, nan, 500, nan])
    # only what happens after the first infusion stops the later ones
    np.testing.assert_array_equal(stop_days(["gvhd"], table, 180.0), [nan, 200, 400, 300, nan])


def test_landmark_and_pre_emptive_eligibility():
    """Rettig's design (A5): recipients in CR on day 30 and alive on day 100; a pre-emptive
    arm admits only those not in overt relapse at their first infusion."""
    nan = np.nan
    a5 = load_allo_evidence().study("A5-rettig-2021-preemptive")
    assert (a5.population.relapse_free_on_day, a5.population.alive_on_day) == (30.0, 100.0)
    assert [a.in_remission for a in a5.arms] == [True, False]
    pre, rel = prepare_studies([a5])[0].arms
    # 0 relapses on day 20 (not in CR on day 30); 1 dies on day 90; 2 relapses on day 150,
    # after its pre-emptive infusion on day 120; 3 relapses on day 110, before it; 4 never
    table = pd.DataFrame({"relapse_day": [20.0, nan, 150.0, 110.0, nan],
                          "death_day": [60.0, 90.0, 400.0, 300.0, nan]})
    start = np.array([30.0, 60.0, 120.0, 120.0, 150.0])
    assert design_mask(a5, pre, table, start).tolist() == [False, False, True, False, True]
    assert design_mask(a5, rel, table, start).tolist() == [False, False, True, True, True]
    a1 = load_allo_evidence().study("A1-bar-2013-dli-dose")
    assert design_mask(a1, prepare_studies([a1])[0].arms[0], table, start).all()


def test_a_monitoring_only_arm_counts_from_its_trigger_and_infuses_nothing():
    """cells = 'none' with a trigger: the same recipients and trigger day as the
    pre-emptive arm, no infusion (the A5 check's counterfactual); the arm's
    immunosuppression is still withdrawn on that day."""
    a5 = load_allo_evidence().study("A5-rettig-2021-preemptive")
    arm = a5.arms[0].model_dump(exclude_none=True)
    for key in ("dose_per_kg", "infusions"):
        del arm[key]
    watch = AlloArm.model_validate({**arm, "cells": "none"})
    study = a5.model_copy(update={"arms": (watch,)})
    [ps] = prepare_studies([study])
    [trig] = ps.arms[0].scenario.protocol.triggers
    assert ps.arms[0].start == "pre-emptive_day"
    assert [d.dose for d in trig.doses] == [WITHDRAWAL]
    assert not [e for e in ps.arms[0].scenario.protocol.events if e.action == "dose"]
    raw = simulate_batch([ps], [{}], [1], seed=3)[0][study.id]["pre-emptive"]
    assert 0 <= raw[0] <= raw[1] == 42


def test_prepared_studies_carry_their_schedules_and_observed_summaries():
    prepared = prepare(load_allo_evidence())
    a2 = next(ps for ps in prepared if ps.study.id == "A2-dazzi-2000-escalating")
    [esc] = a2.arms[0].scenario.protocol.triggers
    # immunosuppression withdrawn on the day of the first infusion (practice at relapse)
    assert [(d.offset, d.dose, float(d.amount)) for d in esc.doses] == [
        (0.0, WITHDRAWAL, 1.0), (0.0, "dli", 1e7), (90.0, "dli", 5e7)]
    [shorter] = a2.arms[0].shorter  # the escalation stopped after its first step
    assert [(d.dose, float(d.amount)) for d in shorter.protocol.triggers[0].doses] == [
        (WITHDRAWAL, 1.0), ("dli", 1e7)]
    assert a2.arms[0].days == (90.0,) and a2.arms[0].horizon > 365 + 365
    obs = {o.name: o.value for o in a2.observed}
    assert obs["A2-dazzi-2000-escalating/escalating"] == pytest.approx(2.5 / 21)
    laport = next(ps for ps in prepared if ps.study.id == "A3-laport-2011-cik")
    # each dose level given at relapse, found by weekly counts (as published)
    assert [(a.name, a.n, a.start, float(a.scenario.protocol.triggers[0].doses[1].amount))
            for a in laport.arms] == [("donor-cik", 4, "at-relapse_day", 1e7),
                                      ("donor-cik", 6, "at-relapse_day", 5e7),
                                      ("donor-cik", 8, "at-relapse_day", 1e8)]
    assert all(not a.scenario.protocol.events for a in laport.arms)
    a6 = next(ps for ps in prepared if ps.study.id == "A6-yanada-2021-relapse-hazard")
    assert not a6.arms[0].scenario.protocol.events and a6.rate
    # SE derived: all 1265 at risk for 3 months -> 91.7 relapses
    assert a6.observed[0].value == 29.0
    assert a6.observed[0].se == pytest.approx(29.0 / math.sqrt(0.29 * 1265 * 0.25))
    a4 = next(ps for ps in prepared if ps.study.id == "A4-introna-2007-cr")
    assert a4.arms[0].start == "at-relapse_day" and a4.arms[0].horizon == 365 + a4.window + 1
    assert a4.arms[0].scenario.parameters["start_burden"] == 3e-4
    [trigger] = a4.arms[0].scenario.protocol.triggers
    assert trigger.watch == "blast_fraction" and [d.amount for d in trigger.doses] == [
        1.0, 6.2e6, 6.2e6]
    chongqing = next(ps for ps in prepared if ps.study.id == "A3-chongqing-2016-cik")
    # CIK given with the transplant: the prophylaxis is kept
    assert [e.dose for e in chongqing.arms[0].scenario.protocol.events] == ["cik"] * 3
    assert len(allo_model_hash()) == 16


def test_term_shifts_follow_the_summaries():
    """The study terms integrated out of the acceptance shift what summaries() shifts."""
    from ciksim.evidence.allo import summaries, term_shifts

    prepared = prepare(load_allo_evidence())
    names, shifts, logodds = term_shifts(prepared)
    assert names == [o.name for ps in prepared for o in ps.observed]
    a1 = "A1-bar-2013-dli-dose"
    assert shifts[f"{a1}/dli-1e8-or-more"] == [f"offset:{a1}", f"bias:{a1}"]
    assert shifts[f"{a1}/dli-1e7-or-less"] == [f"offset:{a1}"]
    a6 = names.index("A6-yanada-2021-relapse-hazard/no-donor-cells")
    assert not logodds[a6] and sum(logodds) == len(names) - 1
    raw = {ps.study.id: {a.name: (3.0, 10.0) for a in ps.study.arms} for ps in prepared}
    theta = {f"bias:{a1}": 0.7, f"offset:{a1}": -0.2}
    got, plain = summaries(prepared, raw, theta), summaries(prepared, raw, {})
    for name in names:
        terms = [theta.get(t, 0.0) for t in shifts[name]]
        if logodds[names.index(name)]:
            want = 1 / (1 + math.exp(-(math.log(plain[name] / (1 - plain[name]))
                                       + sum(terms))))
        else:
            want = plain[name]
        assert got[name] == pytest.approx(want), name


def test_shipped_posteriors_by_model():
    with pytest.raises(CikError, match="no shipped posterior for 'nothing'"):
        Posterior.load(model="nothing")


def test_shipped_allo_posterior_loads_and_names_allo_parameters():
    from ciksim.evidence.calibration import evidence_hash
    from ciksim.targets.allo_calibrated import allo_predictive

    post = Posterior.load(model="allo")
    m = post.manifest
    assert m["model"] == "allo" and m["evidence_version"] == load_allo_evidence().version
    for key in ("seed", "package_version", "pyabc_version", "evidence_hash", "model_hash",
                "generations", "evaluations", "ppc"):
        assert key in m, key
    declared = allo_model().parameter_by_name
    assert post.effects and all(name in declared for name in post.effects)
    assert set(post.samples.columns) == {d.name for d in post.dimensions}
    # the fingerprint check: stale exactly when the model or evidence moved on
    p = allo_predictive(post, draws=2)
    expect = []
    if m["evidence_hash"] != evidence_hash(load_allo_evidence()):
        expect.append("allo evidence changed")
    if m["model_hash"] != allo_model_hash():
        expect.append("allo model changed")
    assert list(p.stale) == expect
    assert p.draws == 2 and all(v.shape == (2,) for v in p.predictive.values())



def test_trigger_days_are_cohort_columns():
    from ciksim.analysis.allo import simulate_allo_cohort
    from ciksim.models.allo import AlloScenario

    trig = {"name": "at-relapse", "watch": "blast_fraction", "above": 0.05,
            "monitor": {"first": 30, "every": 7, "last": 365},
            "doses": [{"offset": 0, "dose": "cik", "amount": 1e7}]}
    scen = AlloScenario.load("allo-aml-cr", triggers=[trig])
    scen = dataclasses.replace(scen, parameters={**scen.parameters, "start_burden": 1e-3})
    t = simulate_allo_cohort(scen, 12, 3, horizon_days=400).table
    day, relapse = t["at-relapse_day"].to_numpy(), t["relapse_day"].to_numpy()
    fired = np.isfinite(day)
    assert fired.any()
    # fired on a weekly monitoring day, at or after the relapse, never after death
    assert np.allclose((day[fired] - 30) % 7, 0)
    assert np.all(relapse[fired] <= day[fired] + 1e-9)
    assert not np.any(day > np.nan_to_num(t["death_day"].to_numpy(), nan=np.inf))


def test_remission_follows_a_recorded_relapse():
    """remission_day is a return below the threshold after the recorded course reached it
    (not the recorded step that lags the engine's interpolated crossing, which made
    remissions precede the at-relapse trigger and hid the response to it, A4)."""
    from ciksim.analysis.allo import simulate_allo_cohort
    from ciksim.models.allo import AlloScenario

    trig = {"name": "at-relapse", "watch": "blast_fraction", "above": 0.05,
            "monitor": {"first": 30, "every": 7, "last": 365},
            "doses": [{"offset": 0, "dose": "dli", "amount": 1e8}]}
    scen = AlloScenario.load("allo-aml-cr", triggers=[trig])
    scen = dataclasses.replace(scen, parameters={**scen.parameters, "start_burden": 1e-3})
    c = simulate_allo_cohort(scen, 16, 3, horizon_days=300, courses=True)
    back = c.table.dropna(subset=["remission_day"])
    assert len(back) >= 2
    for _, row in back.iterrows():
        course = c.courses[c.courses.patient == row.patient]
        seen = course[(course.day >= row.relapse_day) & (course.day < row.remission_day)]
        assert (seen.blast_fraction >= scen.relapse_threshold).any(), row.patient


def test_escalation_withheld_at_response_or_gvhd_and_levels_add_up():
    """A recipient's second escalation step is withheld once GvHD or a response came before
    it: the recipient is the one-step simulation then, else the two-step one (same
    streams); a dose-level arm reports its levels' patients together."""
    from ciksim.analysis.allo import simulate_allo_cohort
    from ciksim.evidence.allo import recipient_indices

    ev = load_allo_evidence()
    [ps] = prepare_studies([ev.study("A2-dazzi-2000-escalating")])
    pa = ps.arms[0]
    table, start = arm_table(ps, 0, 0, [{}], [3], seed=4)
    m = pa.n * pa.screen
    idx = recipient_indices(3, 0, 0, m)
    full = simulate_allo_cohort(pa.scenario, m, 4, horizon_days=pa.horizon, indices=idx).table
    one = simulate_allo_cohort(pa.shorter[0], m, 4, horizon_days=pa.horizon,
                               indices=idx).table
    stopped = stop_days(pa.stops, full, start) < start + 90.0
    assert stopped.any() and (np.isfinite(start) & ~stopped).any()
    cols = [c for c in table.columns if c != "patient"]
    pd.testing.assert_frame_equal(table[stopped][cols], one[stopped][cols])
    pd.testing.assert_frame_equal(table[~stopped][cols], full[~stopped][cols])
    laport = prepare_studies([ev.study("A3-laport-2011-cik")])
    raw = simulate_batch(laport, [{}], [1], seed=2)[0]["A3-laport-2011-cik"]["donor-cik"]
    assert 0 <= raw[0] <= raw[1] <= 18 and raw[1] > 6


#: Targets computed from the shipped allo posterior's predictive that today's allo model does
#: not meet (docs/inference.md, "What the allo posterior says"). Strict: a target that
#: becomes met fails its test until it is taken off this list (and tests/test_validate.py's).
UNMET = {
    "A3": "donor CIK give 4% acute GvHD in the four series pooled on the posterior "
          "predictive (target 10-35%; observed 11/60 = 18%), Introna's 4/11 above its 90% "
          "predictive interval; CIK far below DLI at the same designs: the single-arm "
          "series' bias terms absorb the gap and leave the CIK's alloreactive share at "
          "its prior",
}
TARGETS = ("A1", "A2", "A3", "A4", "A5", "A6")


def test_a5_reports_the_arms_without_their_dli(monkeypatch):
    """A5's value carries the counterfactual (the same arms, no DLI) beside the comparison,
    and says so when it could not be simulated."""
    from ciksim.targets import allo_calibrated as t

    sid = "A5-rettig-2021-preemptive"
    arms = {f"{sid}/pre-emptive": [0.5, 0.4], f"{sid}/at-relapse": [0.2, 0.2],
            f"{sid}{t.NO_DLI}/pre-emptive": [0.45, 0.45], f"{sid}{t.NO_DLI}/at-relapse": [0.1, -1]}
    model = {k: np.array(v) for k, v in arms.items()}
    stub = t.AlloPredictive(model, model, (), 2, {}, {})
    monkeypatch.setattr(t, "_shipped", lambda: stub)
    res = t.a5_preemptive_vs_relapse()
    assert res.passed and res.value["difference"] == pytest.approx(0.25)
    assert res.value["without_dli"] == {"pre-emptive": 0.45, "at-relapse": 0.1}
    for k in [k for k in model if t.NO_DLI in k]:
        del model[k]
    missing = t.a5_preemptive_vs_relapse().value["without_dli"]
    assert missing.startswith("not computable")


def test_a3_pools_the_series_and_checks_each_count_against_its_predictive(monkeypatch):
    """A3's range is for the series pooled (weighted by n); each series' observed count must
    lie in its 90% predictive interval; CIK below DLI pooled and above it in no series."""
    from ciksim.targets import allo_calibrated as t

    ev = load_allo_evidence()
    series = sorted(s.id for s in ev.studies if s.id.startswith("A3-"))
    n = {s: ev.study(s).arms[0].n for s in series}
    observed = {s: ev.study(s).arms[0].events / n[s] for s in series}
    half = {s: (ev.study(s).arms[0].events + 0.5) / (n[s] + 1) for s in series}
    pred = {f"{s}/donor-cik": np.full(40, half[s]) for s in series}  # summaries' half-count
    own = dict(pred)
    own.update({f"{s}{t.AS_DLI}/donor-cik": np.full(40, half[s] + 0.1) for s in series})
    stub = t.AlloPredictive(pred, own, (), 40, {}, {},
                            {f"{s}/donor-cik": np.full(40, float(n[s])) for s in series})
    monkeypatch.setattr(t, "_shipped", lambda: stub)
    res = t.a3_donor_cik_gvhd()
    pooled = sum(n[s] * observed[s] for s in series) / sum(n.values())  # 11/60
    assert res.passed and res.value["pooled"] == pytest.approx(pooled, abs=1e-9 + 5e-4)
    assert all(lo <= ev.study(s).arms[0].events <= hi
               for s, (lo, hi) in res.value["interval_90"].items())
    # a tie in one series is allowed, CIK above DLI in one is not
    chongqing = next(s for s in series if "chongqing" in s)
    own[f"{chongqing}{t.AS_DLI}/donor-cik"] = own[f"{chongqing}/donor-cik"]
    assert t.a3_donor_cik_gvhd().passed
    own[f"{chongqing}{t.AS_DLI}/donor-cik"] = own[f"{chongqing}/donor-cik"] - 0.05
    assert not t.a3_donor_cik_gvhd().passed
    own[f"{chongqing}{t.AS_DLI}/donor-cik"] = own[f"{chongqing}/donor-cik"] + 0.1
    # a series whose predictive cannot give its count fails, though the pool is in range
    pred[f"{chongqing}/donor-cik"] = np.full(40, 0.001)
    low = t.a3_donor_cik_gvhd()
    assert not low.passed and 0.10 <= low.value["pooled"] <= 0.35


def test_the_trial_reports_caveat_names_the_unmet_targets():
    from ciksim.report.allotrial import CALIBRATION_CAVEAT

    named = set(re.findall(r"A\d", CALIBRATION_CAVEAT.split("but not")[1].split(".")[0]))
    assert named == set(UNMET)


@pytest.mark.slow
@pytest.mark.parametrize("target", [
    pytest.param(t, marks=pytest.mark.xfail(strict=True, reason=UNMET[t])) if t in UNMET
    else t for t in TARGETS])
def test_targets_a1_to_a6_from_the_posterior_predictive(target, check):
    from ciksim.targets import allo_calibrated as t

    fn = {"A1": t.a1_dli_dose_gvhd, "A2": t.a2_escalating_dli, "A3": t.a3_donor_cik_gvhd,
          "A4": t.a4_donor_cik_cr, "A5": t.a5_preemptive_vs_relapse,
          "A6": t.a6_control_relapse_hazard}[target]
    check(fn())


def _tiny_allo() -> dict:
    data = shipped_evidence("allo.toml")
    study = copy.deepcopy(next(s for s in data["studies"] if s["id"] == "A3-laport-2011-cik"))
    del study["arms"][0]["levels"]
    study["arms"][0].update({"n": 5, "events": 1, "screen": 1, "dose_per_kg": 5e7})
    return {"version": "tiny-1", "studies": [study]}


@pytest.mark.slow
def test_allo_calibration_same_seed_same_posterior_any_workers(tmp_path):
    ev = parse_allo_evidence(_tiny_allo(), origin="tiny")
    args = {"particles": 3, "generations": 1, "seed": 5, "ppc_draws": 10, "model": "allo",
            "effects": ["f_allo_t", "cik_allo_rel"]}
    one = calibrate(ev, out=tmp_path / "w1", workers=1, **args)
    two = calibrate(ev, out=tmp_path / "w2", workers=2, **args)
    assert np.array_equal(one.posterior.samples.to_numpy(), two.posterior.samples.to_numpy())
    assert np.array_equal(one.posterior.weights, two.posterior.weights)
    post = Posterior.load(tmp_path / "w1")
    assert list(post.samples.columns) == ["f_allo_t", "cik_allo_rel",
                                          "bias:A3-laport-2011-cik"]
    assert post.manifest["model"] == "allo" and post.manifest["model_hash"] == allo_model_hash()
    assert list(post.ppc["summary"]) == ["A3-laport-2011-cik/donor-cik"]


def test_cli_calibrate_allo_bad_input_is_one_error(tmp_path):
    from typer.testing import CliRunner

    from ciksim.cli import app

    r = CliRunner().invoke(app, ["calibrate", "allo", "--parameters", "potency", "--out",
                                 str(tmp_path / "o")])
    assert r.exit_code == 2 and "unknown potency" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


def test_every_simulated_arm_has_its_own_recipients():
    from ciksim.errors import DataError
    from ciksim.evidence.allo import MAX_SIMULATED, recipient_indices

    seen: set[int] = set()
    for key in (0, 1, 7):
        for study in range(5):
            for arm in range(3):
                idx = recipient_indices(key, study, arm, MAX_SIMULATED)
                assert seen.isdisjoint(idx.tolist()), (key, study, arm)
                seen.update(idx.tolist())
    with pytest.raises(DataError, match="4 arms"):
        recipient_indices(0, 0, 4, 10)


def test_a_copy_given_its_originals_streams_simulates_the_same_recipients():
    """The A checks' counterfactuals (as DLI, without donor cells) reuse the original
    study's random streams: an exact copy with the original's number gives its numbers."""
    a4 = load_allo_evidence().study("A4-introna-2007-cr")
    small = a4.model_copy(update={"arms": (a4.arms[0].model_copy(update={"screen": 2}),)})
    copy_ = small.model_copy(update={"id": "copy"})
    prepared = prepare_studies([small, copy_])
    shared = simulate_batch(prepared, [{}, {}], [3, 4], seed=2, streams=[0, 0])
    own = simulate_batch(prepared, [{}, {}], [3, 4], seed=2)
    for draw in shared:
        assert draw["copy"] == draw[small.id]
    assert [d["copy"] for d in own] != [d[small.id] for d in own]
    with pytest.raises(CikError, match="streams"):
        simulate_batch(prepared, [{}], [3], seed=2, streams=[0])


def test_the_model_fingerprint_reads_what_doses_scale(monkeypatch):
    """A posterior must go stale when a dose's effect changes, also a dose that only
    scales a state (the withdrawal of immunosuppression)."""
    import dataclasses

    import ciksim.models.allo as allo

    before = allo_model_hash()
    model = allo.allo_model()
    doses = tuple(dataclasses.replace(d, scales={"IS": "1 - 0.5 * min(amount, 1)"})
                  if d.name == WITHDRAWAL else d for d in model.doses)
    monkeypatch.setattr(allo, "allo_model", lambda: dataclasses.replace(model, doses=doses))
    assert allo_model_hash() != before

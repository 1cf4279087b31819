"""Triggered doses: monitoring schedules, per-individual firing, both stochastic engines."""

import numpy as np
import pytest

from ciksim.engines.stochastic import StochasticSettings, simulate_stochastic
from ciksim.errors import ProtocolError
from ciksim.model import Assignment, Dose, Model, Parameter, Process, Species
from ciksim.protocol import Event, Protocol, Trigger


def par(name, value, unit="1/day"):
    return Parameter(name, value, unit, 0.0, 1e6, "assumed: engine test", name)


def toy() -> Model:
    """Leukemic cells X (exact, killed by an effector E), host share H decaying (donor
    chimerism 1 - H) and a dose counter M (no dynamics)."""
    return Model(
        "toy", "trigger test model",
        (Species("X", "cells", "leukemic cells", initial="X0"),
         Species("E", "1", "effector", initial="0"),
         Species("H", "1", "host share of the marrow", initial="1"),
         Species("M", "1", "doses given (marker)", initial="0")),
        (par("b", 0.5), par("d", 0.4), par("c", 3.0), par("k", 0.5), par("kh", 0.02),
         par("X0", 10, "cells"), par("N", 1000, "cells")),
        (Process("birth", "b * X", {"X": 1}, "division"),
         Process("death", "(d + c * E) * X", {"X": -1}, "death, more with effectors"),
         Process("decay", "k * E", {"E": -1}, "effector decay"),
         Process("host_loss", "kh * H", {"H": -1}, "host haematopoiesis lost")),
        assignments=(Assignment("mrd", "X / N", "1", "leukemic share"),
                     Assignment("chimerism", "1 - H", "1", "donor share")),
        doses=(Dose("eff", "1", "effector", adds={"E": "amount"}),
               Dose("chemo", "1", "course", scales={"X": "0.5 ** amount"}),
               Dose("mark", "1", "marker", adds={"M": "amount"})),
    )


SETTINGS = StochasticSettings(1.0, 0.25, 3.0)
N = 300


def pars(n=N):
    return {"X0": np.arange(n) % 20 + 1.0, "b": np.linspace(0.35, 0.6, n),
            "kh": np.linspace(0.005, 0.04, n)}


PRE = Trigger("pre-emptive", "mrd", above=0.05, monitor={"first": 5, "every": 5, "last": 60},
              doses=[{"offset": 0, "dose": "eff", "amount": 0.3},
                     {"offset": 2, "dose": "chemo", "amount": 1},
                     {"offset": 0, "dose": "mark", "amount": 1}])
CHIM = Trigger("chimerism", "H", below=0.6, monitor=[10, 20, 30],
               doses=[{"offset": 4, "dose": "eff", "amount": 1}])
PROTOCOL = Protocol("p", (Event(day=3.0, action="dose", dose="chemo", amount=1),),
                    triggers=(PRE, CHIM))


def run(engine, n=N, protocol=PROTOCOL, t_end=70.0, **kw):
    args = dict(stochastic=["X"], seed=5, parameters=pars(n), settings=SETTINGS,
                watch="mrd", threshold=0.1, track_min="E")
    args.update(kw)
    return simulate_stochastic(toy(), protocol, t_end, engine=engine, **args)


def assert_same(a, b):
    for name in ("extinction_time", "crossing_time", "minimum", "final"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert list(a.trigger_day) == list(b.trigger_day)
    for name in a.trigger_day:
        np.testing.assert_array_equal(a.trigger_day[name], b.trigger_day[name], err_msg=name)


def test_both_engines_give_identical_outcomes_and_trigger_days():
    ref, comp = run("reference"), run("compiled")
    assert_same(ref, comp)
    for name in ("pre-emptive", "chimerism"):
        fired = np.isfinite(comp.trigger_day[name])
        assert 0.05 < fired.mean() < 0.95, name  # fires for some, not for others
    assert set(np.unique(comp.trigger_day["chimerism"][np.isfinite(
        comp.trigger_day["chimerism"])])) <= {10.0, 20.0, 30.0}
    crossed, extinct = np.isfinite(comp.crossing_time), np.isfinite(comp.extinction_time)
    assert 0.02 < crossed.mean() < 0.98 and 0.02 < extinct.mean() < 0.98


def test_recorded_and_unstopped_runs_are_identical():
    ref = run("reference", n=60, record=True)
    comp = run("compiled", n=60, record=True)
    assert_same(ref, comp)
    np.testing.assert_array_equal(ref.trajectory, comp.trajectory)
    assert_same(run("reference", n=60, stop_after_crossing=False),
                run("compiled", n=60, stop_after_crossing=False))


@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_an_individual_alone_equals_it_in_a_batch(engine):
    whole = run(engine)
    for i in (3, 150, 299):
        alone = run(engine, n=1, indices=[i], parameters={k: v[i:i + 1]
                                                          for k, v in pars().items()})
        np.testing.assert_array_equal(alone.final[:, 0], whole.final[:, i])
        assert np.array_equal(alone.crossing_time, whole.crossing_time[i:i + 1],
                              equal_nan=True)
        for name, days in whole.trigger_day.items():
            assert np.array_equal(alone.trigger_day[name], days[i:i + 1], equal_nan=True)


@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_an_individual_whose_triggers_never_fire_runs_as_without_them(engine):
    """Possible dose days refine the shared grid, but an individual steps finely only after
    its own doses: where no trigger fired (visits on its own steps here), every number is
    that of the protocol without triggers."""
    kw = dict(stop_after_crossing=False, record=True)  # everyone to the end
    res = run(engine, n=150, **kw)
    plain = run(engine, n=150, protocol=Protocol("p", PROTOCOL.events), **kw)
    assert res.grid.size > plain.grid.size
    quiet = ~np.isfinite(res.trigger_day["pre-emptive"]) & ~np.isfinite(
        res.trigger_day["chimerism"])
    assert 0.05 < quiet.mean() < 0.95
    np.testing.assert_array_equal(res.final[:, quiet], plain.final[:, quiet])
    for name in ("crossing_time", "extinction_time", "minimum"):
        np.testing.assert_array_equal(getattr(res, name)[quiet], getattr(plain, name)[quiet])
    on_plain = np.searchsorted(res.grid, plain.grid)  # the plain grid is part of it
    np.testing.assert_array_equal(res.trajectory[on_plain][:, :, quiet],
                                  plain.trajectory[:, :, quiet])
    assert not np.array_equal(res.final[:, ~quiet], plain.final[:, ~quiet])


@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_a_monitoring_only_trigger_records_its_day_and_gives_nothing(engine):
    """A trigger without doses fires where the same trigger with doses would first fire,
    and everyone runs as under the protocol without it."""
    watch = Trigger("mrd-found", "mrd", above=0.05, monitor={"first": 5, "every": 5,
                                                             "last": 60})
    plain = Protocol("p", PROTOCOL.events)
    kw = dict(stop_after_crossing=False, record=True)  # everyone to the end
    res = run(engine, n=150, protocol=Protocol("p", PROTOCOL.events, triggers=(watch,)), **kw)
    base = run(engine, n=150, protocol=plain, **kw)
    dosed = run(engine, n=150, protocol=Protocol("p", PROTOCOL.events, triggers=(PRE,)), **kw)
    day = res.trigger_day["mrd-found"]
    assert 0.05 < np.isfinite(day).mean() < 0.95
    np.testing.assert_array_equal(day, dosed.trigger_day["pre-emptive"])
    np.testing.assert_array_equal(res.trajectory, base.trajectory)
    np.testing.assert_array_equal(res.crossing_time, base.crossing_time)
    for spec in ({**GOOD, "doses": []}, {k: v for k, v in GOOD.items() if k != "doses"}):
        from_toml = Protocol.from_dict({"name": "x", "triggers": [spec]})
        assert from_toml.triggers[0].doses == ()


def test_fires_once_on_the_first_visit_meeting_the_condition_and_doses_follow():
    res = run("compiled", n=120, record=True, stop_after_crossing=False)
    day = res.trigger_day["pre-emptive"]
    visits = np.arange(5.0, 61.0, 5.0)
    k_visit = np.searchsorted(res.grid, visits)
    np.testing.assert_allclose(res.grid[k_visit], visits)
    mrd = res.series("mrd")[k_visit]  # the marker dose does not change X
    holds = mrd >= 0.05
    first = np.where(holds.any(axis=0), visits[np.argmax(holds, axis=0)], np.nan)
    np.testing.assert_array_equal(day, first)
    marker = res.series("M")
    fired = np.isfinite(day)
    assert fired.any() and (~fired).any()
    np.testing.assert_array_equal(marker[-1], fired.astype(float))  # at most once
    k_day = np.searchsorted(res.grid, day[fired])
    cols = np.flatnonzero(fired)
    assert np.all(marker[k_day, cols] == 1) and np.all(marker[k_day - 1, cols] == 0)


def test_condition_is_evaluated_after_the_days_fixed_events():
    proto = Protocol("fixed", (Event(day=10.0, action="dose", dose="mark", amount=5),),
                     triggers=(Trigger("same-day", "M", above=4, monitor=[10],
                                       doses=[{"offset": 1, "dose": "mark", "amount": 1}]),
                               Trigger("day-before", "M", above=4, monitor=[9.5],
                                       doses=[{"offset": 0, "dose": "mark", "amount": 100}]),
                               Trigger("below", "M", below=4.5, monitor=[10, 12],
                                       doses=[{"offset": 0, "dose": "mark", "amount": 100}])))
    for engine in ("compiled", "reference"):
        res = run(engine, n=5, protocol=proto, t_end=20.0, stop_after_crossing=False)
        np.testing.assert_array_equal(res.trigger_day["same-day"], 10.0)
        assert np.all(np.isnan(res.trigger_day["day-before"]))
        assert np.all(np.isnan(res.trigger_day["below"]))  # M = 6 from day 11
        np.testing.assert_array_equal(res.final[3], 6.0)


def test_an_extinct_individual_waits_for_a_pending_trigger_and_its_doses():
    """Leukemia dies out early; a chimerism trigger monitored late must still fire, and its
    dose be given, although the individual's leukemic fate is settled."""
    late = Trigger("late", "chimerism", above=0.3, monitor=[50], doses=[
        {"offset": 5, "dose": "mark", "amount": 1}])
    proto = Protocol("late", (), triggers=(late,))
    kw = dict(parameters={"X0": np.full(40, 2.0), "d": np.full(40, 3.0),
                          "kh": np.full(40, 0.01)}, watch=None, threshold=None,
              track_min=None)
    for engine in ("compiled", "reference"):
        res = run(engine, n=40, protocol=proto, t_end=70.0, **kw)
        assert np.all(res.extinction_time < 10)
        np.testing.assert_array_equal(res.trigger_day["late"], 50.0)
        np.testing.assert_array_equal(res.final[3], 1.0)  # the dose on day 55 was given
        # then it stops: after the dose (day 55) and its window (3 days)
        np.testing.assert_allclose(res.final[2], np.exp(-0.01 * 58.0), rtol=1e-6)
    # without the trigger, the same individuals stop soon after extinction
    res = run("compiled", n=40, protocol=Protocol("none"), t_end=70.0, **kw)
    assert np.all(res.final[2] > np.exp(-0.01 * 20.0))


@pytest.mark.parametrize("engine", ["compiled", "reference"])
def test_never_in_remission_is_dated_only_once_no_trigger_is_pending(engine):
    """An individual above the crossing threshold from the start is a failure from the start
    once its fate is settled: after the fixed events, and after pending monitoring."""
    kw = dict(parameters={"X0": np.full(200, 5.0), "b": np.full(200, 0.45),
                          "d": np.full(200, 0.45)}, threshold=1e-3, track_min=None)
    pending = Trigger("pending", "M", above=100, monitor=[60],
                      doses=[{"offset": 0, "dose": "mark", "amount": 1}])
    plain = run(engine, protocol=Protocol("none"), **kw)
    waits = run(engine, protocol=Protocol("w", (), triggers=(pending,)), **kw)
    assert np.all(np.isnan(waits.trigger_day["pending"]))
    # dated 0 (and stopped) unless extinct first: at day 3 without, at day 60 with the trigger
    for res, settled in ((plain, 3.0), (waits, 60.0)):
        dated = res.crossing_time == 0.0
        np.testing.assert_array_equal(dated, np.isnan(res.extinction_time))
        assert np.all(res.extinction_time[~dated] <= settled)
    assert 0.05 < (waits.crossing_time == 0).mean() < (plain.crossing_time == 0).mean()
    early = plain.extinction_time <= 3.0
    np.testing.assert_array_equal(waits.extinction_time[early], plain.extinction_time[early])


def test_days_beyond_the_horizon_are_ignored():
    trig = Trigger("t", "M", below=1, monitor=[50, 80], doses=[
        {"offset": 0, "dose": "mark", "amount": 1}, {"offset": 10, "dose": "mark", "amount": 1}])
    for engine in ("compiled", "reference"):
        res = run(engine, n=3, protocol=Protocol("h", (), triggers=(trig,)), t_end=55.0,
                  stop_after_crossing=False)
        np.testing.assert_array_equal(res.trigger_day["t"], 50.0)
        np.testing.assert_array_equal(res.final[3], 1.0)


def test_no_triggers_leave_results_unchanged():
    plain = Protocol("p", PROTOCOL.events)
    res = run("compiled", n=30, protocol=plain)
    assert res.trigger_day == {}
    assert_same(res, run("reference", n=30, protocol=plain))


def test_toml_triggers_round_trip():
    p = Protocol.from_dict({"name": "x", "triggers": [
        {"name": "pre", "watch": "mrd", "above": 1e-4,
         "monitor": {"first": 30, "every": 30, "last": 100},
         "doses": [{"offset": 0, "dose": "eff", "amount": 1},
                   {"offset": 28, "dose": "eff", "amount": "5"}]},
        {"name": "relapse", "watch": "chimerism", "below": 0.9, "days": [7, 14],
         "doses": [{"dose": "mark", "amount": 1}]}]})
    pre, rel = p.triggers
    assert pre.monitor == (30.0, 60.0, 90.0) and pre.upward
    assert rel.monitor == (7.0, 14.0) and not rel.upward and rel.doses[0].offset == 0
    bound = p.bind_triggers(toy())
    assert bound[0].species == -1 and bound[0].threshold == 1e-4
    assert p.without("dose").triggers == p.triggers


GOOD = {"name": "t", "watch": "mrd", "above": 0.1, "monitor": {"days": [10]},
        "doses": [{"offset": 0, "dose": "eff", "amount": 1}]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"above": None, "below": None}, "exactly one of above or below"),
        ({"below": 0.2}, "exactly one of above or below"),
        ({"monitor": None}, "monitoring schedule"),
        ({"monitor": {"days": []}}, r"triggers\[0\]\.monitor\.days: 0 entries"),
        ({"monitor": {"first": 10, "every": 5}}, "give first, every and last"),
        ({"monitor": {"first": 10, "every": 5, "last": 5}}, "last .5. is before first"),
        ({"monitor": {"first": 0, "every": 0.01, "last": 1000}}, "limit max_visits"),
        ({"monitor": {"days": [5, 5]}}, "strictly increasing"),
        ({"monitor": {"days": [-5]}}, r"monitor\.days\[0\] = -5: must be >= 0"),
        ({"doses": [{"offset": -1, "dose": "eff", "amount": 1}]},
         r"doses\[0\]\.offset = -1: must be >= 0"),
        ({"doses": [{"dose": "eff"}]}, "missing field 'amount'"),
        ({"above": -1}, "negative"),
        ({"when": 3}, "unknown field"),
    ],
)
def test_bad_toml_triggers_name_field_and_fix(change, message):
    spec = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(ProtocolError, match=message):
        Protocol.from_dict({"name": "x", "triggers": [spec]})


def test_duplicate_trigger_names_are_refused():
    with pytest.raises(ProtocolError, match="used twice"):
        Protocol.from_dict({"name": "x", "triggers": [GOOD, GOOD]})
    with pytest.raises(ProtocolError, match="used twice"):
        Protocol("x", triggers=(Trigger(**GOOD), Trigger(**GOOD)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"watch": "blasts"}, "watch 'blasts' is not a species or derived quantity.*mrd"),
        ({"doses": [{"dose": "dli", "amount": 1}]}, r"doses\[0\].*declares no dose 'dli'"),
        ({"above": "5 cells"}, "above"),
    ],
)
def test_triggers_not_fitting_the_model_are_refused_when_bound(change, message):
    p = Protocol("x", triggers=(Trigger(**{**GOOD, **change}),))
    with pytest.raises(ProtocolError, match=message):
        p.bind(toy())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"monitor": ()}, "empty monitoring schedule"),
        ({"monitor": [10, 5]}, "strictly increasing"),
        ({"monitor": {"first": 1, "every": 1}}, r"monitor: give \{first"),
        ({"doses": {"dose": "eff", "amount": 1}}, "doses: give a list"),
        ({"doses": [{"offset": -2, "dose": "eff", "amount": 1}]}, r"doses\[0\]: offset -2"),
        ({"doses": [{"offset": 0, "dose": "eff", "amount": 0}]}, "amount must be > 0"),
        ({"above": None}, "exactly one of above or below"),
    ],
)
def test_python_triggers_are_checked(kwargs, message):
    with pytest.raises(ProtocolError, match=message):
        Trigger(**{**GOOD, **kwargs})


@pytest.mark.slow
def test_patient_scenario_with_a_molecular_trigger_same_in_both_engines():
    """A scenario file's [[triggers]] reach the patient model's engines: a second-line
    course at molecular relapse (NPM1 ratio monitored every 90 days)."""
    from ciksim.analysis.patient import run_patients
    from ciksim.data import load_toml
    from ciksim.errors import DataError
    from ciksim.models.patient import Scenario

    data, _ = load_toml("aml-cr1", "scenarios", "scenario", DataError, exclude=("subtypes",))
    data = {**data, "triggers": [
        {"name": "molecular", "watch": "npm1_ratio", "above": 0.01,
         "monitor": {"first": 120, "every": 90, "last": 720},
         "doses": [{"offset": 0, "dose": "chemo", "amount": 1},
                   {"offset": 35, "dose": "chemo", "amount": 1}]}]}
    scen = Scenario.from_dict(data, origin="test")
    runs = [run_patients(scen, replicates=80, years=2.0, seed=3, engine=engine).result
            for engine in ("compiled", "reference")]
    assert_same(*runs)
    fired = np.isfinite(runs[0].trigger_day["molecular"])
    assert 0.05 < fired.mean() < 0.95
    plain = run_patients("aml-cr1", replicates=80, years=2.0, seed=3).result
    assert not np.array_equal(plain.crossing_time, runs[0].crossing_time, equal_nan=True)
    with pytest.raises(DataError, match="npm1"):
        Scenario.from_dict({**data, "triggers": [{**data["triggers"][0], "watch": "npm2"}]})


def test_the_ode_engine_refuses_triggers():
    from ciksim.engines import simulate

    with pytest.raises(ProtocolError, match=r"has triggers.*simulate_stochastic"):
        simulate(toy(), PROTOCOL, 10.0)

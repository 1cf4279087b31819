"""Export jobs: set up as the run commands; libroadrunner reproduces every model under its
protocol; SED-ML/COMBINE archives; options a model lacks are refused."""

import numpy as np
import pytest

from ciksim.engines import SolverSettings, simulate
from ciksim.engines.sbml import consistency
from ciksim.errors import CikError
from ciksim.exchange.export import export_model
from ciksim.models.patient import Scenario
from ciksim.protocol import builtin_protocols
from conftest import whole_initiating_cells

libsbml = pytest.importorskip("libsbml")
roadrunner = pytest.importorskip("roadrunner")

TIGHT = SolverSettings(method="DOP853", rtol=1e-12, atol=1e-14)


def off_event_times(exp, n=40):
    """Output times between event days (both tools agree on values, not on which side of
    an event a value at the event time is reported)."""
    days = {float(e.day) for e in (exp.protocol.events if exp.protocol else ())}
    grid = np.linspace(0.0, exp.end_time, n + 1)
    return np.array([0.0] + [t for t in grid[1:] if min(abs(t - d) for d in days | {-1e9})
                             > 1e-3 * exp.end_time])


def roadrunner_matches(exp, rel=1e-6, settings=TIGHT):
    model = exp.model
    times = off_event_times(exp)
    text = exp.sbml()
    assert consistency(libsbml.readSBMLFromString(text)) == []  # units on: nothing at all
    rr = roadrunner.RoadRunner(text)
    rr.integrator.relative_tolerance = 1e-12
    rr.integrator.absolute_tolerance = 1e-14
    rr.integrator.setValue("maximum_num_steps", 500000)
    rr.timeCourseSelections = ["time", *model.species_names]
    theirs = rr.simulate(times=list(times))
    ours = simulate(model, exp.protocol, exp.end_time, times=times, parameters=exp.parameters,
                    settings=settings)
    for i, name in enumerate(model.species_names):
        a, b = theirs[:, i + 1], ours[name][:, 0]
        err = np.abs(a - b) / (np.abs(b) + 1e-6 * np.max(np.abs(b)) + 1e-12)
        assert np.max(err) < rel, f"{model.name} {name}: relative error {np.max(err):.2e}"


@pytest.mark.parametrize("protocol", builtin_protocols())
def test_culture_exports_match_roadrunner_under_every_builtin_protocol(protocol):
    roadrunner_matches(export_model("culture", protocol=protocol))


def test_killing_export_matches_roadrunner():
    exp = export_model("killing", target="aml-blast", et=5.0)
    assert exp.parameters["et_ratio"] == 5.0 and exp.model.time_unit == "hour"
    roadrunner_matches(exp)


def test_patient_exports_with_scenario_and_subtype_match_roadrunner():
    exp = export_model("patient", scenario="aml-elderly", subtype="npm1", years=1.0)
    scen = Scenario.load("aml-elderly").with_subtype("npm1")
    for name, value in scen.parameters.items():  # the scenario's parameters are exported
        assert exp.parameters[name] == value
    whole = whole_initiating_cells({**scen.parameters, "T_double": 11.0})
    roadrunner_matches(export_model("patient", scenario="aml-elderly", subtype="npm1",
                                    years=1.0, parameters=whole))
    roadrunner_matches(export_model("patient", cik=False, years=1.0,
                                    parameters=whole_initiating_cells()))


def test_export_defaults_follow_the_run_commands():
    culture = export_model("culture")
    assert culture.protocol.name == "cik-standard" and culture.parameters["start_cells"] == 1e8
    assert culture.end_time == culture.protocol.harvest_day
    patient = export_model("patient")
    doses = [e for e in patient.protocol.events if e.action == "dose" and e.dose == "cik"]
    assert len(doses) == 3 and all(float(e.amount) == 5e7 for e in doses)
    assert patient.end_time == 3 * 365.25
    from ciksim.analysis.patient import default_product

    comp = default_product().median_composition()
    assert patient.parameters["prod_cik"] == comp["f_cik"]
    for exp in (culture, patient, export_model("killing")):
        doc = libsbml.readSBMLFromString(exp.sbml())
        assert consistency(doc) == []


def test_options_a_model_lacks_are_refused_with_the_fix():
    with pytest.raises(CikError, match=r"no option 'target'.*killing"):
        export_model("culture", target="k562")
    with pytest.raises(CikError, match=r"no option 'protocol'.*culture or patient or allo"):
        export_model("killing", protocol="cik-standard")
    with pytest.raises(CikError, match="unknown model"):
        export_model("tumour")
    with pytest.raises(CikError, match="et: must be a number > 0"):
        export_model("killing", et=-1.0)
    with pytest.raises(CikError, match="unknown parameter"):
        export_model("culture", parameters={"nope": 1.0})


ALLO_EVENTS = """name = "allo-infusions"
[[events]]
day = 45
action = "dose"
dose = "infection"
amount = 0.5
[[events]]
days = [60, 120]
action = "dose"
dose = "dli"
amount = "1e6 cells/kg"
[[events]]
day = 90
action = "dose"
dose = "cik"
amount = "1e7 cells/kg"
[[events]]
day = 120
action = "dose"
dose = "immunosuppression"
amount = 0.5
"""


def test_allo_export_keeps_scenario_donor_conditioning_and_events(tmp_path):
    from ciksim.models.allo import AlloScenario

    default = export_model("allo")
    scen = AlloScenario.load("allo-aml-cr")
    assert default.parameters == dict(scen.parameters) and default.end_time == 2 * 365.25
    assert default.protocol.events == scen.protocol.events
    haplo = export_model("allo", donor="haploidentical", conditioning="ric", chimerism=0.9)
    other = AlloScenario.load("allo-aml-cr", donor="haploidentical", conditioning="ric",
                              chimerism=0.9)
    assert haplo.parameters == dict(other.parameters)
    assert haplo.parameters["f_allo_t"] != default.parameters["f_allo_t"]
    proto = tmp_path / "infusions.toml"
    proto.write_text(ALLO_EVENTS, encoding="utf-8")
    exp = export_model("allo", protocol=proto, years=0.5,
                       parameters=whole_initiating_cells(dict(scen.parameters)))
    doc = libsbml.readSBMLFromString(exp.sbml())
    assert doc.getModel().getNumEvents() == 5
    # the infused CIK effectors fall by 8 orders of magnitude within 3 weeks (exhaustion):
    # ciksim's DOP853 needs rtol 1e-13 there to hold 1e-6 (roadrunner agrees at 1e-12/1e-13)
    roadrunner_matches(exp, settings=SolverSettings(method="DOP853", rtol=1e-13, atol=1e-16))
    with pytest.raises(CikError, match="before engraftment"):
        early = tmp_path / "early.toml"
        early.write_text('[[events]]\nday = 10\naction = "dose"\ndose = "dli"\n'
                         'amount = "1e6 cells/kg"\n', encoding="utf-8")
        export_model("allo", protocol=early)
    triggered = tmp_path / "triggered.toml"
    triggered.write_text(ALLO_EVENTS + '[[triggers]]\nname = "pre-emptive"\nwatch = "mrd"\n'
                         'above = 1e-4\nmonitor = { first = 30, every = 30, last = 360 }\n'
                         'doses = [ { offset = 0, dose = "dli", amount = 1e6 } ]\n',
                         encoding="utf-8")
    with pytest.raises(CikError, match=r"triggers.*SBML"):
        export_model("allo", protocol=triggered).sbml()
    with pytest.raises(CikError, match=r"no option 'donor'.*allo"):
        export_model("patient", donor="sibling")
    from ciksim.jobs.export import export_job

    added = export_job("allo", dli=["1e6@60,120"], cik_doses=["1e7@90"])
    assert [(e.dose, e.day) for e in added.protocol.events if e.dose in ("dli", "cik")] == \
        [("dli", 60.0), ("cik", 90.0), ("dli", 120.0)]
    with pytest.raises(CikError, match="--dli and --cik AMOUNT@DAY are infusions after an "
                                       "allogeneic transplant; export allo"):
        export_job("patient", dli=["1e6@60"])
    with pytest.raises(CikError, match="before engraftment"):
        export_job("allo", dli=["1e6@5"])


def test_combine_archive_runs_in_tellurium(tmp_path):
    te = pytest.importorskip("tellurium", reason="tellurium is in the interop extra")
    import matplotlib

    matplotlib.use("Agg")
    exp = export_model("culture", protocol="cik-gmp")
    path = exp.write_combine(tmp_path / "culture.omex")
    out = te.executeCombineArchive(str(path), createOutputs=False)
    data = next(iter(out.values()))["dataGenerators"]
    times = np.ravel(data["dg_time"])
    assert times[0] == 0 and times[-1] == exp.end_time and len(times) == exp.end_time + 1
    ours = simulate(exp.model, exp.protocol, exp.end_time, times=times,
                    parameters=exp.parameters, settings=TIGHT)
    for name in exp.outputs:
        theirs = np.ravel(data[f"dg_{name}"])
        np.testing.assert_allclose(theirs, ours[name][:, 0], rtol=1e-6, atol=1e-9,
                                   err_msg=name)


def test_allo_combine_archive_runs_in_tellurium(tmp_path):
    te = pytest.importorskip("tellurium", reason="tellurium is in the interop extra")
    import matplotlib

    from ciksim.models.allo import AlloScenario

    matplotlib.use("Agg")
    scen = AlloScenario.load("allo-aml-cr")
    exp = export_model("allo", years=0.5, events=[{"day": 60, "action": "dose", "dose": "dli",
                                                   "amount": 1e6}],
                       parameters=whole_initiating_cells(dict(scen.parameters)))
    out = te.executeCombineArchive(str(exp.write_combine(tmp_path / "allo.omex")),
                                   createOutputs=False)
    data = next(iter(out.values()))["dataGenerators"]
    times = np.ravel(data["dg_time"])
    ours = simulate(exp.model, exp.protocol, exp.end_time, times=times,
                    parameters=exp.parameters,
                    settings=SolverSettings(method="DOP853", rtol=1e-13, atol=1e-16))
    off_event = np.abs(times - 60.0) > 0.5  # the tools report either side of the dose day
    assert exp.outputs and off_event.sum() == len(times) - 1
    for name in exp.outputs:
        a, b = np.ravel(data[f"dg_{name}"])[off_event], ours[name][off_event, 0]
        err = np.abs(a - b) / (np.abs(b) + 1e-6 * np.max(np.abs(b)) + 1e-12)
        assert np.max(err) < 1e-6, f"{name}: relative error {np.max(err):.2e}"

"""SBML export: valid for every model, and libroadrunner reproduces our engine."""

import html

import numpy as np
import pytest
from typer.testing import CliRunner

from ciksim.analysis.patient import CikSchedule, patient_protocol
from ciksim.cli import app
from ciksim.docs import MODELS
from ciksim.engines import SolverSettings, simulate
from ciksim.engines.sbml import consistency, is_species, to_sbml, validate
from ciksim.models.culture import culture_model
from ciksim.models.patient import Scenario, patient_model
from ciksim.protocol import Protocol
from conftest import whole_initiating_cells

libsbml = pytest.importorskip("libsbml")
roadrunner = pytest.importorskip("roadrunner")

TIGHT = SolverSettings(method="DOP853", rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_exports_valid_sbml_with_consistent_units(name):
    model = MODELS[name]()
    text = to_sbml(model)
    doc = libsbml.readSBMLFromString(text)
    assert doc.getLevel() == 3 and doc.getVersion() == 2
    messages = consistency(doc)
    assert [m for m in messages if m[0] == "error"] == []
    assert [m for m in messages if "unit" in m[1].lower()] == []
    assert validate(doc) == []
    m = doc.getModel()
    assert m.getNumSpecies() + sum(not is_species(s.unit) for s in model.species) \
        == len(model.species)
    assert m.getNumInitialAssignments() == 0
    for p in model.parameters:  # ids as names, descriptions in the notes
        par = m.getParameter(p.name)
        assert par.getUnits() and par.getName() == p.name
        assert p.description in html.unescape(par.getNotesString())
    for s in model.species:
        el = m.getSpecies(s.name) if is_species(s.unit) else m.getParameter(s.name)
        assert el.getName() == s.name and s.description in html.unescape(el.getNotesString())
    reactions = {m.getReaction(i).getId(): m.getReaction(i) for i in range(m.getNumReactions())}
    on_species = [p for p in model.processes if any(is_species(model.unit_of(k))
                                                    for k in p.changes)]
    assert sorted(reactions) == sorted(p.name for p in on_species)
    assert all(r.getSBOTermID() in {"SBO:0000393", "SBO:0000179", "SBO:0000182",
                                    "SBO:0000375"} for r in reactions.values())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_models_gillespie_variant_is_valid_without_assignment_rules(name):
    model = MODELS[name]()
    doc = libsbml.readSBMLFromString(to_sbml(model, gillespie=True))
    assert consistency(doc) == []
    m = doc.getModel()
    rules = [m.getRule(i) for i in range(m.getNumRules())]
    assert not [r for r in rules if r.isAssignment()]
    assert all(m.getSpecies(i).getInitialAmount().is_integer()
               for i in range(m.getNumSpecies()))


def roadrunner_trajectories(sbml, names, times):
    rr = roadrunner.RoadRunner(sbml)
    rr.integrator.relative_tolerance = 1e-12
    rr.integrator.absolute_tolerance = 1e-14
    rr.integrator.setValue("maximum_num_steps", 500000)
    rr.timeCourseSelections = ["time", *names]
    return rr.simulate(times=list(times))


def assert_close(model, ours, theirs, rel=1e-6):
    """Relative agreement; species that decay to ~0 are judged against 1e-6 of their peak
    (both solvers only hold absolute accuracy there); a variable that stays at 0 is judged
    against 1e-12 of its unit (integration noise)."""
    for i, name in enumerate(model.species_names):
        a, b = theirs[:, i + 1], ours[name][:, 0]
        err = np.abs(a - b) / (np.abs(b) + 1e-6 * np.max(np.abs(b)) + 1e-12)
        assert np.max(err) < rel, f"{name}: relative error {np.max(err):.2e}"


def test_culture_under_cik_standard_matches_roadrunner():
    model, proto = culture_model(), Protocol.load("cik-standard")
    times = np.concatenate([[0.0], np.arange(0.5, 21.0, 1.0)])  # off the event days
    sbml = to_sbml(model, proto)
    theirs = roadrunner_trajectories(sbml, model.species_names, times)
    ours = simulate(model, proto, 21.0, times=times, settings=TIGHT)
    assert_close(model, ours, theirs)


def test_patient_under_chemotherapy_and_cik_matches_roadrunner():
    model = patient_model()
    proto = patient_protocol(Scenario.load("aml-cr1"), CikSchedule())
    times = np.concatenate([[0.0], np.arange(0.5, 365.0, 1.0)])
    pars = whole_initiating_cells()
    sbml = to_sbml(model, proto, pars)
    theirs = roadrunner_trajectories(sbml, model.species_names, times)
    ours = simulate(model, proto, 365.0, times=times, settings=TIGHT, parameters=pars)
    assert_close(model, ours, theirs)
    compiled = simulate(model, proto, 365.0, times=times, parameters=pars,
                        settings=SolverSettings(method="compiled", rtol=1e-12, atol=1e-15))
    assert_close(model, compiled, theirs)


def test_gillespie_variant_has_no_assignment_rules_and_the_same_trajectories():
    """Derived quantities written into the rate laws change nothing for an ODE tool."""
    model = patient_model()
    proto = patient_protocol(Scenario.load("aml-cr1"), CikSchedule())
    times = np.concatenate([[0.0], np.arange(0.5, 200.0, 1.0)])
    pars = whole_initiating_cells()
    text = to_sbml(model, proto, pars, gillespie=True)
    doc = libsbml.readSBMLFromString(text)
    assert consistency(doc) == [] and doc.getModel().getNumRules() == 0
    theirs = roadrunner_trajectories(text, model.species_names, times)
    ours = simulate(model, proto, 200.0, times=times, settings=TIGHT, parameters=pars)
    assert_close(model, ours, theirs)


def test_a_protocol_with_triggers_is_refused_naming_them():
    from ciksim.errors import CikError
    from ciksim.protocol import Trigger

    base = patient_protocol(Scenario.load("aml-cr1"), CikSchedule())
    proto = Protocol(base.name, base.events, triggers=(Trigger(
        "pre-emptive", "flow_mrd", above=1e-3, monitor={"first": 60, "every": 30, "last": 360},
        doses=({"offset": 0, "dose": "cik", "amount": "5e7 cells/kg"},)),))
    with pytest.raises(CikError, match=r"triggers 'pre-emptive': SBML export cannot express "
                                       r"triggered doses.*without its triggers"):
        to_sbml(patient_model(), proto)
    assert to_sbml(patient_model(), base).startswith("<?xml")  # the fixed events alone


def test_discarding_split_and_feed_round_trip():
    model = culture_model()
    proto = Protocol.from_dict({
        "name": "discard", "parameters": {"seed_density": "2e6 cells/mL"},
        "events": [
            {"day": 1, "action": "set", "values": {"OKT3": "50 ng/mL", "IL2": "500 IU/mL"}},
            {"days": [5, 9, 13], "action": "feed", "volume_fraction": 0.3,
             "top_up": {"IL2": "500 IU/mL"}},
            {"days": [5, 9, 13], "action": "split", "max_density": "1.5e6 cells/mL",
             "target_density": "1e6 cells/mL", "cells": "discard",
             "top_up": {"IL2": "500 IU/mL"}},
        ]})
    times = np.concatenate([[0.0], np.arange(0.5, 16.0, 1.0)])
    sbml = to_sbml(model, proto, proto.parameter_values(model))
    theirs = roadrunner_trajectories(sbml, model.species_names, times)
    ours = simulate(model, proto, 16.0, times=times, settings=TIGHT)
    assert_close(model, ours, theirs)


def test_cli_export(tmp_path):
    out = tmp_path / "patient.xml"
    r = CliRunner().invoke(app, ["export", "sbml", "patient", "--scenario", "aml-cr1",
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    doc = libsbml.readSBMLFromFile(str(out))
    assert validate(doc) == [] and doc.getModel().getNumEvents() == 6
    r = CliRunner().invoke(app, ["export", "sbml", "culture", "--protocol", "cik-gmp"])
    assert r.exit_code == 0 and r.output.startswith("<?xml")
    allo = tmp_path / "allo.xml"
    r = CliRunner().invoke(app, ["export", "sbml", "allo", "--donor", "unrelated",
                                 "--conditioning", "ric", "--chimerism", "0.95", "--dli",
                                 "1e6@60,120", "--cik", "1e7@90", "-o", str(allo)])
    assert r.exit_code == 0 and "conditioning ric" in " ".join(r.output.split()), r.output
    doc = libsbml.readSBMLFromFile(str(allo))
    assert validate(doc) == [] and doc.getModel().getNumEvents() == 3
    from ciksim.models.allo import AlloScenario

    assert doc.getModel().getParameter("f_allo_t").getValue() == AlloScenario.load(
        "allo-aml-cr", donor="unrelated").parameters["f_allo_t"]
    r = CliRunner().invoke(app, ["export", "sbml", "allo", "--donor", "cousin"])
    assert r.exit_code == 2 and "donor 'cousin' is not known" in r.output, r.output
    r = CliRunner().invoke(app, ["export", "sbml", "patient", "--gillespie", "-o",
                                 str(tmp_path / "gillespie.xml")])
    assert r.exit_code == 0 and "for Gillespie tools" in r.output, r.output
    doc = libsbml.readSBMLFromFile(str(tmp_path / "gillespie.xml"))
    m = doc.getModel()
    assert validate(doc) == [] and m.getNumRules() == 0 and m.getNumEvents() == 6
    assert all(m.getSpecies(i).getInitialAmount().is_integer()
               for i in range(m.getNumSpecies()))
    r = CliRunner().invoke(app, ["export", "combine", "patient", "--gillespie"])
    assert r.exit_code == 2 and "for `export sbml`" in r.output, r.output
    r = CliRunner().invoke(app, ["export", "sbml", "tumour"])
    assert r.exit_code == 2 and "unknown model" in r.output
    r = CliRunner().invoke(app, ["export", "sbml", "culture", "--et", "5"])
    assert r.exit_code == 2 and "no option 'et' (--et; it applies to killing)" in r.output
    omex = tmp_path / "killing.omex"
    r = CliRunner().invoke(app, ["export", "combine", "killing", "--et", "5", "-o", str(omex)])
    assert r.exit_code == 0, r.output
    import zipfile

    assert {"model.xml", "simulation.sedml"} <= set(zipfile.ZipFile(omex).namelist())

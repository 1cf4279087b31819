"""GillesPy2 simulates ciksim's Gillespie export (``to_sbml(..., gillespie=True)``): the
stochastic cure probability of a small MRD case agrees with ciksim's."""

import numpy as np
import pytest
from scipy import stats

from ciksim.engines.sbml import to_sbml
from ciksim.models.patient import STOCHASTIC, patient_model
from conftest import small_mrd_case

gillespy2 = pytest.importorskip("gillespy2", reason="GillesPy2 is in the interop extra")


def test_the_plain_export_is_refused_by_gillespy2s_ssa_and_the_gillespie_variant_is_not(
        tmp_path):
    pars, _, _ = small_mrd_case()
    for gillespie, rules in ((False, True), (True, False)):
        path = tmp_path / f"mrd-{gillespie}.xml"
        path.write_text(to_sbml(patient_model(), None, pars, gillespie=gillespie),
                        encoding="utf-8")
        model, errors = gillespy2.import_SBML(str(path))
        assert errors == []
        assert bool(model.listOfAssignmentRules) == rules
    assert not model.listOfRateRules and not model.listOfEvents
    assert all(float(sp.initial_value).is_integer() for sp in model.listOfSpecies.values())
    assert {"S_a", "S_q", "B"} <= set(model.listOfSpecies)


@pytest.mark.slow
def test_gillespy2_ssa_cure_of_a_small_mrd_case_agrees_with_ciksim(tmp_path):
    pars, extinct, n = small_mrd_case()
    path = tmp_path / "mrd.xml"
    path.write_text(to_sbml(patient_model(), None, pars, gillespie=True), encoding="utf-8")
    model, _ = gillespy2.import_SBML(str(path))
    model.tspan = gillespy2.TimeSpan(np.array([0.0, 30.0, 60.0]))
    n_theirs = 300
    runs = model.run(solver=gillespy2.NumPySSASolver, number_of_trajectories=n_theirs,
                     seed=11)
    cured = sum(all(run[s][-1] == 0 for s in STOCHASTIC) for run in runs)
    p = extinct / n
    # GillesPy2's estimate lies where n_theirs trajectories of ciksim's process would put it
    low, high = stats.binom.interval(0.99, n_theirs, p)
    assert low <= cured <= high, (cured / n_theirs, p)
    assert 0.05 < p < 0.95  # a comparison that can fail (about (death/birth)^3 = 0.55)

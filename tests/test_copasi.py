"""COPASI (via basico) simulates ciksim's SBML: deterministic trajectories and the stochastic
cure probability of a small MRD case."""

import locale

import numpy as np
import pytest
from scipy import stats

from ciksim.engines import SolverSettings, simulate
from ciksim.engines.sbml import is_species, to_sbml
from ciksim.exchange.export import export_model
from ciksim.models.patient import STOCHASTIC, patient_model
from conftest import small_mrd_case, whole_initiating_cells

# COPASI sets the C locale when it loads (Python then reads files as ASCII): restore ours
_LOCALE = locale.setlocale(locale.LC_ALL)
basico = pytest.importorskip("basico", reason="COPASI (copasi-basico) is in the interop extra")
locale.setlocale(locale.LC_ALL, _LOCALE)


@pytest.fixture(autouse=True)
def _keep_locale():
    yield
    locale.setlocale(locale.LC_ALL, _LOCALE)


def column(tc, model, name):
    return tc[name if is_species(model.unit_of(name)) else f"Values[{name}]"].to_numpy()


@pytest.mark.parametrize("setup", [{"model": "culture"},
                                   {"model": "patient", "years": 0.5,
                                    "parameters": whole_initiating_cells()}], ids=str)
def test_copasi_deterministic_matches_ciksim(setup, tmp_path):
    exp = export_model(**setup)
    path = exp.write_sbml(tmp_path / "model.xml")
    dm = basico.load_model(str(path))
    days = {e.day for e in exp.protocol.events}
    times = [0.0] + [t + 0.5 for t in range(int(exp.end_time)) if t + 0.5 not in days]
    tc = basico.run_time_course(model=dm, values=times, start_time=0, duration=times[-1],
                                method="deterministic", use_numbers=True, r_tol=1e-10,
                                a_tol=1e-12, max_steps=1_000_000)
    ours = simulate(exp.model, exp.protocol, times[-1], times=np.array(times),
                    parameters=exp.parameters,
                    settings=SolverSettings(method="DOP853", rtol=1e-12, atol=1e-14))
    for name in exp.model.species_names:
        a, b = column(tc, exp.model, name), ours[name][:, 0]
        err = np.abs(a - b) / (np.abs(b) + 1e-6 * np.max(np.abs(b)) + 1e-12)
        assert np.max(err) < 1e-6, f"{name}: relative error {np.max(err):.2e}"


@pytest.mark.slow
def test_copasi_stochastic_cure_of_a_small_mrd_case_agrees_with_ciksim(tmp_path):
    """Three leukemia-initiating cells, no normal marrow, no treatment: extinction by day 60
    (see ``conftest.small_mrd_case``)."""
    pars, extinct, n = small_mrd_case()
    path = tmp_path / "mrd.xml"
    path.write_text(to_sbml(patient_model(), None, pars), encoding="utf-8")
    dm = basico.load_model(str(path))
    n_copasi, days = 300, 60.0
    cured = 0
    for k in range(n_copasi):
        tc = basico.run_time_course(model=dm, duration=days, intervals=1, method="directMethod",
                                    use_seed=True, seed=k + 1, use_numbers=True)
        cured += int(all(tc[s].iloc[-1] == 0 for s in STOCHASTIC))
    p = extinct / n
    ci = stats.binomtest(extinct, n).proportion_ci(0.95)
    # COPASI's estimate lies where n_copasi trajectories of ciksim's process would put it
    low, high = stats.binom.interval(0.99, n_copasi, p)
    assert low <= cured <= high, (cured / n_copasi, p, (ci.low, ci.high))
    assert 0.05 < p < 0.95  # a comparison that can fail (today about (death/birth)^3 = 0.55)

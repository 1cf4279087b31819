import functools

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture
def check():
    """Assert that a calibration target is met, saying what the model gave."""

    def _check(t):
        assert t.passed, f"{t.id} {t.description}: model gives {t.value}, target {t.range}"

    return _check


def _hypothesis_profiles() -> None:
    """Fuzz tests: derandomised and bounded in CI (the CI environment variable is set),
    a few more random examples locally; a per-example deadline catches hangs."""
    import os
    from datetime import timedelta

    from hypothesis import HealthCheck, settings

    common = dict(deadline=timedelta(seconds=10), print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])
    settings.register_profile("ci", derandomize=True, max_examples=25, database=None,
                              **common)
    settings.register_profile("dev", max_examples=25, **common)
    settings.load_profile("ci" if os.environ.get("CI") else "dev")


_hypothesis_profiles()


def shipped_evidence(name: str) -> dict:
    """The shipped evidence file ``name`` (``clinical.toml``, ``allo.toml``) as a dict."""
    import tomllib
    from importlib import resources

    text = (resources.files("ciksim.data") / "evidence" / name).read_text("utf-8")
    return tomllib.loads(text)


def evidence_refused(parse, name, mutate, *needles) -> str:
    """The CikError message ``parse`` (``parse_evidence``, ``parse_allo_evidence``) gives for
    the shipped evidence ``name`` changed by ``mutate``; it must name every needle."""
    import copy

    from ciksim.errors import CikError

    data = copy.deepcopy(shipped_evidence(name))
    mutate(data)
    with pytest.raises(CikError) as err:
        parse(data, origin=name)
    msg = str(err.value)
    for needle in needles:
        assert needle in msg, msg
    return msg


def whole_initiating_cells(pars=None, n=20):
    """Patient-model parameters giving ``n`` active and ``n`` quiescent initiating cells at day
    0 exactly, so that an SBML export (which rounds the stochastic species' initial counts to
    whole cells, as the stochastic engine does) and the ODE engine start from one state."""
    import math

    from ciksim.models.patient import patient_model

    pars = dict(pars or {})
    p = {**patient_model().default_parameters(), **pars}
    x = p["k_qa"] + math.log(2) / p["T_double"]
    return {**pars, "k_aq": x,  # active share (k_qa + r) / (k_qa + r + k_aq) = 1/2
            "start_burden": 2 * n / (p["marrow_per_kg"] * p["weight"] * p["f_LIC"])}


@functools.cache
def small_mrd_case():
    """Patient-model parameters of a small MRD case that Gillespie tools simulate cell by cell:
    three leukemia-initiating cells, no normal marrow, no treatment. ``f_LIC = 0.5`` keeps the
    blast compartment (continuous in ciksim, discrete in an SSA) small, ``k_aq = 0`` starts
    every LIC active (whole initial counts). Returns the parameters and ciksim's extinction
    (cure) count out of 2000 patients by day 60 (exact birth-death steps, seed 7); computed
    once per session (callers must not change the parameters)."""
    import numpy as np

    from ciksim.engines.sbml import initial_values
    from ciksim.engines.stochastic import simulate_stochastic
    from ciksim.models.patient import STOCHASTIC, patient_model

    model = patient_model()
    missing = {"N0_frac", "start_burden", "f_LIC", "k_aq"} - set(model.parameter_names)
    if missing:  # without them the case is neither small nor free of normal marrow
        pytest.fail(f"the patient model lost {missing}: restate this MRD case")
    pars = {k: v for k, v in {"N0_frac": 0.0, "lig_frac": 1.0, "f_LIC": 0.5,
                              "k_aq": 0.0}.items() if k in model.parameter_by_name}
    per_unit = sum(initial_values(model, {**pars, "start_burden": 1.0})[s] for s in STOCHASTIC)
    pars["start_burden"] = 3 / per_unit  # three leukemic cells at day 0
    ours = simulate_stochastic(model, None, 60.0, stochastic=STOCHASTIC, seed=7,
                               parameters={**pars, "weight": np.full(2000, 70.0)})
    return pars, int(np.sum(~np.isnan(ours.extinction_time))), 2000

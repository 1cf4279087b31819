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

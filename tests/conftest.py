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

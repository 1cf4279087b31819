import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture
def check():
    """Assert that a calibration target is met, saying what the model gave."""

    def _check(t):
        assert t.passed, f"{t.id} {t.description}: model gives {t.value}, target {t.range}"

    return _check

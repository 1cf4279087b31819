import pytest

from ciksim.errors import ModelError, UnitError
from ciksim.model.expression import Expression
from ciksim.units import parse_unit


def units(**kw):
    return {k: parse_unit(v, field=k) for k, v in kw.items()}


def test_symbols_and_rendering():
    e = Expression("k * max(N, 0) / (N + K) + exp(-t * r)")
    assert e.symbols == {"k", "N", "K", "t", "r"}
    assert "_np_maximum" in e.python()
    assert str(Expression("(a + b) * c")) == "(a + b) * c"


@pytest.mark.parametrize("text", ["__import__('os')", "N.real", "[1, 2]", "N if t else K",
                                  "foo(N)", "'a' + N"])
def test_rejects_anything_but_arithmetic(text):
    with pytest.raises(ModelError):
        Expression(text)


def test_syntax_error_is_a_model_error():
    with pytest.raises(ModelError, match="cannot parse"):
        Expression("k * (N")


def test_unit_algebra():
    env = units(k="1/day", N="cells", V="mL", K="cells")
    assert str(Expression("k * N / V").units(env, where="x")) == str(
        parse_unit("cells/mL/day", field="u"))
    with pytest.raises(UnitError, match="mix units"):
        Expression("N + V").units(env, where="x")
    with pytest.raises(UnitError, match="dimensionless"):
        Expression("exp(N)").units(env, where="x")
    # ratios of like units are dimensionless and may be exponentiated
    Expression("exp(-N / K) * (N / K) ** 2").units(env, where="x")

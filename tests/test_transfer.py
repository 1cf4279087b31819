"""Transfers between stochastic species (e.g. active <-> quiescent initiating cells): means
against the linear ODE (matrix exponential), extinction against the backward Kolmogorov
equations of the two-type branching process, exact multinomial splits, refused processes."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from ciksim.engines.stochastic import StochasticSettings, simulate_stochastic
from ciksim.errors import ModelError
from ciksim.model import Model, Parameter, Process, Species


def par(name, value, unit="1/day"):
    return Parameter(name, value, unit, 0.0, 1e6, "assumed: engine test", name)


def two_type(zero_transfer: bool = False) -> Model:
    """Active A (birth b, death d + c*E) <-> quiescent Q (death dq); E decays at k."""
    procs = [Process("birth", "b * A", {"A": 1}, "division"),
             Process("death", "(d + c * E) * A", {"A": -1}, "death"),
             Process("to_q", "kq * A", {"A": -1, "Q": 1}, "A becomes quiescent"),
             Process("to_a", "ka * Q", {"Q": -1, "A": 1}, "Q is activated"),
             Process("death_q", "dq * Q", {"Q": -1}, "death of Q"),
             Process("decay", "k * E", {"E": -1}, "effector decay")]
    if zero_transfer:
        procs.append(Process("never", "z * Q", {"Q": -1, "A": 1}, "a transfer at rate 0"))
    return Model(
        "two-type", "active and quiescent cells",
        (Species("A", "cells", "active", initial="A0"), Species("Q", "cells", "quiescent",
                                                               initial="Q0"),
         Species("E", "1", "effector", initial="1", kind="state")),
        (par("b", 0.8), par("d", 0.5), par("c", 0.0), par("k", 0.5), par("kq", 0.3),
         par("ka", 0.2), par("dq", 0.05), par("A0", 10, "cells"), par("Q0", 0, "cells"),
         par("z", 0.0)),
        tuple(procs))


def test_means_match_linear_ode():
    m = two_type()
    n, t_end = 20000, 5.0
    r = simulate_stochastic(m, None, t_end, stochastic=["A", "Q"], seed=11,
                            parameters={"A0": np.full(n, 10.0)},
                            settings=StochasticSettings(0.1, 0.1, 0.0))
    b, d, kq, ka, dq = 0.8, 0.5, 0.3, 0.2, 0.05
    mat = np.array([[b - d - kq, ka], [kq, -ka - dq]])
    mean = expm(mat * t_end) @ np.array([10.0, 0.0])
    x = r.final[:2]
    assert np.all(x >= 0) and np.array_equal(x, np.round(x))
    se = x.std(axis=1) / math.sqrt(n)
    assert np.all(np.abs(x.mean(axis=1) - mean) < 5 * se), (x.mean(axis=1), mean, se)


def extinction_exact(t_end, a0, q0, b=0.8, d=0.5, c=3.0, k=0.5, kq=0.3, ka=0.2, dq=0.05):
    """P(no A and no Q at t_end): backward Kolmogorov equations, integrated in tau = T - s."""
    def rhs(tau, q):
        s = t_end - tau
        qa, qq = q
        death = d + c * math.exp(-k * s)
        return [b * (qa * qa - qa) + death * (1 - qa) + kq * (qq - qa),
                ka * (qa - qq) + dq * (1 - qq)]
    sol = solve_ivp(rhs, (0.0, t_end), [0.0, 0.0], rtol=1e-10, atol=1e-12)
    qa, qq = sol.y[:, -1]
    return qa**a0 * qq**q0


def test_extinction_converges_with_step():
    m = two_type()
    n, t_end = 20000, 8.0
    exact = extinction_exact(t_end, 4, 2)
    se = math.sqrt(exact * (1 - exact) / n)
    errors = {}
    for dt in (4.0, 1.0, 0.125):
        r = simulate_stochastic(m, None, t_end, stochastic=["A", "Q"], seed=3,
                                parameters={"A0": np.full(n, 4.0), "Q0": 2.0, "c": 3.0},
                                settings=StochasticSettings(dt, dt, 0.0))
        x = r.final[:2]
        assert np.all(x >= 0) and np.array_equal(x, np.round(x))
        extinct = (x.sum(axis=0) == 0)
        assert np.array_equal(extinct, ~np.isnan(r.extinction_time))
        errors[dt] = abs(extinct.mean() - exact)
    assert errors[4.0] > errors[1.0] > errors[0.125]
    assert errors[4.0] > 10 * se
    assert errors[0.125] < 4 * se


def test_split_among_destinations_is_multinomial():
    """S -> D1 at r1, S -> D2 at r2, nothing else: the counts are exactly multinomial."""
    m = Model("split", "one source, two destinations",
              (Species("S", "cells", "source", initial="100"),
               Species("D1", "cells", "first", initial="0"),
               Species("D2", "cells", "second", initial="0")),
              (par("r1", 0.1), par("r2", 0.3)),
              (Process("one", "r1 * S", {"S": -1, "D1": 1}, "to D1"),
               Process("two", "r2 * S", {"S": -1, "D2": 1}, "to D2")))
    n, t_end = 20000, 2.0
    r = simulate_stochastic(m, None, t_end, stochastic=["S", "D1", "D2"], seed=5,
                            parameters={"r1": np.full(n, 0.1)},
                            settings=StochasticSettings(0.5, 0.5, 0.0))
    x = r.final
    assert np.all(x.sum(axis=0) == 100)
    stay = math.exp(-0.4 * t_end)
    p = np.array([stay, 0.25 * (1 - stay), 0.75 * (1 - stay)])
    for i in range(3):
        assert abs(x[i].mean() - 100 * p[i]) < 5 * math.sqrt(100 * p[i] * (1 - p[i]) / n)
        assert x[i].var() == pytest.approx(100 * p[i] * (1 - p[i]), rel=0.06)
    cov = np.cov(x[1], x[2])[0, 1]
    assert cov == pytest.approx(-100 * p[1] * p[2], rel=0.1)


def test_zero_rate_transfer_draws_no_numbers():
    kw = dict(stochastic=["A", "Q"], seed=8, parameters={"A0": np.arange(1.0, 41.0),
                                                          "Q0": 3.0, "c": 1.0},
              settings=StochasticSettings(0.5, 0.5, 0.0))
    a = simulate_stochastic(two_type(), None, 6.0, **kw)
    b = simulate_stochastic(two_type(zero_transfer=True), None, 6.0, **kw)
    np.testing.assert_array_equal(a.final, b.final)
    np.testing.assert_array_equal(a.extinction_time, b.extinction_time)


def test_process_changing_stochastic_and_deterministic_species_is_refused():
    m = Model("mixed", "x", (Species("L", "cells", "initiating", initial="1"),
                             Species("B", "cells", "blasts", initial="0")),
              (par("a", 1.0),), (Process("diff", "a * L", {"L": -1, "B": 2}, "both"),))
    with pytest.raises(ModelError, match=r"deterministic species \['B'\]; declare two"):
        simulate_stochastic(m, None, 1.0, stochastic=["L"])


@pytest.mark.parametrize("changes", [{"A": 2}, {"A": -1, "Q": 2}, {"A": 1, "Q": 1}])
def test_other_changes_of_stochastic_species_are_refused(changes):
    m = Model("odd", "x", (Species("A", "cells", "a", initial="1"),
                           Species("Q", "cells", "q", initial="1")),
              (par("a", 1.0),), (Process("p", "a * A", changes, "odd"),))
    with pytest.raises(ModelError, match="birth, death"):
        simulate_stochastic(m, None, 1.0, stochastic=["A", "Q"])

"""Engine correctness against analytic solutions, and batch = singles."""

import ast

import numpy as np
import pytest

from ciksim import Event, Protocol, simulate
from ciksim.engines import SolverSettings
from ciksim.errors import CikError, ModelError
from ciksim.model import Model, Parameter, Process, Species

RTOL = 1e-5  # stated tolerance for solve_ivp at rtol=1e-8


def par(name, value, unit, low=0.0, high=1e12):
    return Parameter(name, value, unit, low, high, "assumed: analytic test", name)


def exp_model():
    return Model("exp", "N' = rN", (Species("N", "cells", "N", initial="N0"),),
                 (par("r", 0.3, "1/day", -5, 5), par("N0", 100, "cells")),
                 (Process("net_growth", "r * N", {"N": 1}, "growth"),))


def logistic_model():
    return Model("logistic", "N' = rN(1-N/K)", (Species("N", "cells", "N", initial="N0"),),
                 (par("r", 0.8, "1/day"), par("K", 1e6, "cells"), par("N0", 1e3, "cells")),
                 (Process("growth", "r * N * (1 - N / K)", {"N": 1}, "logistic growth"),))


def decay_model():
    return Model("decay", "C' = -kC", (Species("C", "mg/L", "C", initial="C0",
                                               kind="concentration"),),
                 (par("k", 0.7, "1/day"), par("C0", 10, "mg/L")),
                 (Process("elimination", "k * C", {"C": -1}, "first-order loss"),))


TIGHT = SolverSettings(rtol=1e-8, atol=1e-12)


def test_exponential_growth():
    t = np.linspace(0, 10, 21)
    r = simulate(exp_model(), None, 10, times=t, settings=TIGHT)
    np.testing.assert_allclose(r["N"][:, 0], 100 * np.exp(0.3 * t), rtol=RTOL)


def test_logistic_growth():
    t = np.linspace(0, 30, 61)
    r = simulate(logistic_model(), None, 30, times=t, settings=TIGHT)
    exact = 1e6 / (1 + (1e6 / 1e3 - 1) * np.exp(-0.8 * t))
    np.testing.assert_allclose(r["N"][:, 0], exact, rtol=RTOL)


def test_first_order_decay_with_dosing_events():
    proto = Protocol("doses", (Event(day=2, action="add", values={"C": "5 mg/L"}),
                               Event(day=5, action="add", values={"C": 5.0})))
    t = np.linspace(0, 8, 33)
    r = simulate(decay_model(), proto, 8, times=t, settings=TIGHT)
    exact = 10 * np.exp(-0.7 * t)
    for d in (2, 5):
        exact = exact + np.where(t >= d, 5 * np.exp(-0.7 * (t - d)), 0)
    np.testing.assert_allclose(r["C"][:, 0], exact, rtol=RTOL)
    # the output at an event's time is the state just after it
    assert r["C"][t == 2][0, 0] == pytest.approx(10 * np.exp(-1.4) + 5, rel=RTOL)


def test_convergence_with_tolerance():
    t = np.array([10.0])
    errs = []
    for rtol in (1e-4, 1e-6, 1e-8):
        r = simulate(exp_model(), None, 10, times=t, settings=SolverSettings(rtol=rtol,
                                                                                atol=1e-12))
        errs.append(abs(r["N"][0, 0] / (100 * np.exp(3)) - 1))
    assert errs[2] < errs[1] < errs[0]


def test_batch_equals_single_runs():
    rates = np.array([0.1, 0.5, 0.9, 1.3])
    t = np.linspace(0, 10, 11)
    batch = simulate(logistic_model(), None, 10, times=t, parameters={"r": rates},
                     settings=TIGHT)
    for i, rate in enumerate(rates):
        single = simulate(logistic_model(), None, 10, times=t, parameters={"r": rate},
                          settings=TIGHT)
        np.testing.assert_allclose(batch["N"][:, i], single["N"][:, 0], rtol=1e-6)


def test_result_tables_carry_units_and_metadata():
    r = simulate(exp_model(), None, 2, seed=7)
    tidy = r.tidy()
    assert set(tidy.columns) == {"batch", "time", "variable", "value", "unit"}
    assert set(tidy["unit"]) == {"cells"}
    assert r.meta["seed"] == 7 and r.meta["ciksim_version"]
    assert list(r.wide().columns) == ["batch", "time", "N"]


def test_bad_arguments():
    with pytest.raises(CikError, match="t_end"):
        simulate(exp_model(), None, None)
    with pytest.raises(CikError, match="strictly increasing"):
        simulate(exp_model(), None, 5, times=[0, 2, 1])
    with pytest.raises(ModelError, match="unknown parameter"):
        simulate(exp_model(), None, 5, parameters={"rr": 1.0})
    with pytest.raises(ModelError, match="different lengths"):
        simulate(logistic_model(), None, 5, parameters={"r": [1, 2], "K": [1, 2, 3]})


COMPILED = SolverSettings(method="compiled", rtol=1e-10, atol=1e-14)


def test_compiled_matches_analytic_solutions():
    t = np.linspace(0, 10, 21)
    r = simulate(exp_model(), None, 10, times=t, settings=COMPILED)
    np.testing.assert_allclose(r["N"][:, 0], 100 * np.exp(0.3 * t), rtol=RTOL)
    t = np.linspace(0, 30, 61)
    r = simulate(logistic_model(), None, 30, times=t, settings=COMPILED)
    np.testing.assert_allclose(r["N"][:, 0], 1e6 / (1 + 999 * np.exp(-0.8 * t)), rtol=RTOL)
    proto = Protocol("doses", (Event(day=2, action="add", values={"C": 5.0}),))
    t = np.linspace(0, 8, 33)
    r = simulate(decay_model(), proto, 8, times=t, settings=COMPILED)
    exact = 10 * np.exp(-0.7 * t) + np.where(t >= 2, 5 * np.exp(-0.7 * (t - 2)), 0)
    np.testing.assert_allclose(r["C"][:, 0], exact, rtol=RTOL)


def test_generated_code_reads_names_containing_w_from_their_slots():
    from ciksim.engines._ode_loop import LANES, rows, slot
    from ciksim.engines.compiled import scalar_source

    m = Model("w", "logistic over names with W", (Species("W", "cells", "W", initial="W0"),),
              (par("Wr", 0.8, "1/day"), par("KW", 1e6, "cells"), par("W0", 1e3, "cells")),
              (Process("grow_W", "Wr * W * (1 - W / KW)", {"W": 1}, "growth"),))
    f = next(node for node in ast.parse(scalar_source(m)).body
             if isinstance(node, ast.FunctionDef) and node.name == "_f")
    reads = {a.targets[0].id: ast.unparse(a.value) for a in f.body if isinstance(a, ast.Assign)}
    first = rows(1)["P"]
    assert reads["W"] == "_y[0]"
    assert reads["Wr"] == slot(first, "_l", "_w") == f"_w[{first * LANES} + _l]"
    assert reads["grow_W"].startswith("Wr * W")


def test_compiled_batch_equals_single_runs_exactly():
    rates = np.array([0.1, 0.5, 0.9, 1.3])
    t = np.linspace(0, 10, 11)
    settings = SolverSettings(method="compiled", rtol=1e-6)
    batch = simulate(logistic_model(), None, 10, times=t, parameters={"r": rates},
                     settings=settings)
    for i, rate in enumerate(rates):
        single = simulate(logistic_model(), None, 10, times=t, parameters={"r": rate},
                          settings=settings)
        np.testing.assert_array_equal(batch["N"][:, i], single["N"][:, 0])


@pytest.mark.parametrize("method", ["LSODA", "BDF"])
def test_implicit_methods_on_batches(method):
    rates = np.array([0.1, 0.9])
    t = np.linspace(0, 10, 11)
    s = SolverSettings(method=method, rtol=1e-8, atol=1e-12)
    batch = simulate(logistic_model(), None, 10, times=t, parameters={"r": rates}, settings=s)
    exact = 1e6 / (1 + 999 * np.exp(-np.outer(t, rates)))
    np.testing.assert_allclose(batch["N"], exact, rtol=1e-5)

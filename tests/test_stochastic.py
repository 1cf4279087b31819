"""Stochastic engine: exact birth-death steps against closed forms, an exact SSA, and
convergence with the step; per-individual streams independent of batching."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.integrate import quad

from ciksim.engines._random import binomial_batch, kendall_batch, seed_states
from ciksim.engines.stochastic import StochasticSettings, simulate_stochastic, time_grid
from ciksim.errors import ModelError
from ciksim.model import Assignment, Dose, Model, Parameter, Process, Species
from ciksim.protocol import Event, Protocol

M = 40000


def closed_form(n0, lam, mu, t):
    """Mean, variance and extinction probability of a linear birth-death process."""
    r = lam - mu
    if abs(r) < 1e-12:
        return n0, n0 * 2 * lam * t, (lam * t / (1 + lam * t)) ** n0
    e = math.exp(r * t)
    alpha = mu * (e - 1) / (lam * e - mu)
    return n0 * e, n0 * (lam + mu) / r * e * (e - 1), alpha**n0


@pytest.mark.parametrize(
    ("n0", "lam", "mu", "dt"),
    [(1, 0.35, 0.29, 5.0), (10, 0.35, 0.5, 3.0), (1e11, 0.35, 0.29, 0.25), (50, 0.3, 0.3, 2.0),
     (1e4, 0.35, 2.0, 1.0), (20, 0.0, 0.3, 2.0)],
)
def test_kendall_step_matches_closed_form(n0, lam, mu, dt):
    x = kendall_batch(np.full((M, 1), float(n0)), np.full((M, 1), lam), np.full((M, 1), mu),
                      dt, seed_states(7, np.arange(M)))[:, 0]
    mean, var, ext = closed_form(n0, lam, mu, dt)
    assert np.all(x >= 0) and np.all(x == np.round(x))
    assert x.mean() == pytest.approx(mean, rel=6 * math.sqrt(var / M) / mean + 1e-12)
    assert x.var() == pytest.approx(var, rel=0.05)
    se = math.sqrt(max(ext * (1 - ext), 1e-12) / M)
    assert abs((x == 0).mean() - ext) < 5 * se + 1e-9


def test_binomial_thinning_is_exact_at_one_cell_and_at_1e11():
    st = seed_states(3, np.arange(M))
    one = binomial_batch(np.ones((M, 1)), np.full((M, 1), 0.3), st)[:, 0]
    assert set(np.unique(one)) <= {0.0, 1.0}
    assert abs(one.mean() - 0.3) < 5 * math.sqrt(0.21 / M)
    big = binomial_batch(np.full((2000, 1), 1e11), np.full((2000, 1), 1e-3), st[:2000])[:, 0]
    assert big.mean() == pytest.approx(1e8, rel=1e-4)
    assert big.var() == pytest.approx(1e11 * 1e-3 * (1 - 1e-3), rel=0.1)


def par(name, value, unit="1/day"):
    return Parameter(name, value, unit, 0.0, 1e6, "assumed: engine test", name)


def bd_model(c=3.0, k=0.5):
    """X: birth lam, death mu0 + c*E; E decays at k (a fading effector)."""
    return Model(
        "bd", "time-varying birth-death",
        (Species("X", "cells", "cells", initial="X0", roles=("stochastic",)),
         Species("E", "1", "effector", initial="1", kind="state")),
        (par("lam", 1.0), par("mu0", 0.6), par("c", c), par("k", k), par("X0", 5, "cells"),
         par("kill", 1.0, "1")),
        (Process("birth", "lam * X", {"X": 1}, "division"),
         Process("death", "(mu0 + c * E) * X", {"X": -1}, "death"),
         Process("decay", "k * E", {"E": -1}, "effector decay")),
        doses=(Dose("chemo", "1", "course", scales={"X": "10 ** (-kill * amount)"}),),
    )


def kendall_time_varying(lam, mu0, c, k, n0, t):
    """Exact extinction probability and mean for time-varying rates (Kendall 1948)."""
    def rho(s):
        return (mu0 - lam) * s + c * (1 - math.exp(-k * s)) / k
    p1 = 1 - 1 / (math.exp(rho(t)) + quad(lambda s: lam * math.exp(rho(s)), 0, t)[0])
    return p1**n0, n0 * math.exp(-rho(t))


def test_multistep_constant_rates_match_closed_form():
    """Many steps in a row (the streams must advance from step to step)."""
    m = bd_model(c=0.0)
    n = 20000
    r = simulate_stochastic(m, None, 10.0, stochastic=["X"], parameters={"X0": np.full(n, 3)},
                            seed=2, settings=StochasticSettings(0.5, 0.5, 0.0))
    assert r.grid.size == 21
    mean, var, ext = closed_form(3, 1.0, 0.6, 10.0)
    x = r.final[0]
    assert abs((x == 0).mean() - ext) < 5 * math.sqrt(ext * (1 - ext) / n)
    assert x.mean() == pytest.approx(mean, rel=6 * math.sqrt(var / n) / mean)


def test_time_varying_error_shrinks_with_step():
    m = bd_model()
    exact, _ = kendall_time_varying(1.0, 0.6, 3.0, 0.5, 5, 8.0)
    n = 20000
    se = math.sqrt(exact * (1 - exact) / n)
    errors = {}
    for dt in (4.0, 2.0, 0.5):
        r = simulate_stochastic(m, None, 8.0, stochastic=["X"], parameters={"X0": np.full(n, 5)},
                                seed=1, settings=StochasticSettings(dt, dt, 0.0))
        errors[dt] = abs((r.final[0] == 0).mean() - exact)
    assert errors[4.0] > errors[2.0] > errors[0.5]
    assert errors[4.0] > 10 * se  # a coarse step is visibly wrong...
    assert errors[0.5] < 4 * se  # ...a fine one is exact within sampling error


def ssa(lam, mu0, c, k, n0, t_end, rng):
    """Exact Gillespie simulation with a decreasing death rate (thinning)."""
    t, x = 0.0, n0
    while x > 0:
        bound = x * (lam + mu0 + c * math.exp(-k * t))
        t += rng.exponential(1 / bound)
        if t >= t_end:
            break
        total = x * (lam + mu0 + c * math.exp(-k * t))
        u = rng.random() * bound
        if u < x * lam:
            x += 1
        elif u < total:
            x -= 1
    return x


def test_distribution_agrees_with_exact_ssa():
    rng = np.random.default_rng(0)
    n = 3000
    ref = np.array([ssa(1.0, 0.6, 1.5, 0.4, 5, 6.0, rng) for _ in range(n)])
    r = simulate_stochastic(bd_model(c=1.5, k=0.4), None, 6.0, stochastic=["X"],
                            parameters={"X0": np.full(n, 5)}, seed=4,
                            settings=StochasticSettings(0.1, 0.1, 0.0))
    ours = r.final[0]
    bins = [0, 1, 3, 6, 12, 25, 50, 1e9]
    a = np.histogram(ref, bins)[0]
    b = np.histogram(ours, bins)[0]
    _, p, _, _ = stats.chi2_contingency(np.vstack([a, b]))
    assert p > 0.001, (a, b)


def test_individuals_do_not_depend_on_batching():
    m = bd_model(c=1.0)
    n = 60
    x0 = np.arange(1, n + 1)
    proto = Protocol("c", (Event(day=2.0, action="dose", dose="chemo", amount=1),))
    kw = dict(stochastic=["X"], seed=9, settings=StochasticSettings(0.5, 0.25, 2.0))
    whole = simulate_stochastic(m, proto, 12.0, parameters={"X0": x0}, **kw)
    parts = [simulate_stochastic(m, proto, 12.0, parameters={"X0": x0[i:i + 7]},
                                 indices=np.arange(i, min(i + 7, n)), **kw)
             for i in range(0, n, 7)]
    np.testing.assert_array_equal(whole.final, np.hstack([p.final for p in parts]))
    np.testing.assert_array_equal(whole.extinction_time,
                                  np.concatenate([p.extinction_time for p in parts]))
    again = simulate_stochastic(m, proto, 12.0, parameters={"X0": x0}, **kw)
    np.testing.assert_array_equal(whole.final, again.final)


def test_chemo_dose_thins_discrete_cells_binomially():
    m = bd_model(c=0.0)
    n = 20000
    proto = Protocol("c", (Event(day=1.0, action="dose", dose="chemo", amount=1),))
    r = simulate_stochastic(m, proto, 1.0, stochastic=["X"],
                            parameters={"X0": np.full(n, 1), "lam": 0.0, "mu0": 0.0,
                                        "kill": 0.5},
                            seed=3, settings=StochasticSettings(1.0, 1.0, 0.0))
    surv = 10**-0.5
    assert set(np.unique(r.final[0])) <= {0.0, 1.0}
    assert abs(r.final[0].mean() - surv) < 5 * math.sqrt(surv * (1 - surv) / n)
    assert np.all(r.extinction_time[r.final[0] == 0] == 1.0)


def test_threshold_crossing_is_interpolated():
    base = bd_model(c=0.0)
    m = Model("bd2", "with a derived total", base.species, base.parameters, base.processes,
              assignments=(Assignment("X_tot", "X + 0", "cells", "all X cells"),))
    r = simulate_stochastic(m, None, 30.0, stochastic=["X"],
                            parameters={"X0": np.full(200, 1000), "lam": 0.5, "mu0": 0.0},
                            seed=0, watch="X_tot", threshold=1e5,
                            settings=StochasticSettings(2.0, 2.0, 0.0))
    expected = math.log(100) / 0.5  # deterministic limit for a large population
    assert np.all(np.abs(r.crossing_time - expected) < 0.5)
    assert np.all(r.crossing_time % 2.0 != 0)  # between grid points, not snapped to them


def test_process_mixing_stochastic_and_other_species_is_rejected():
    m = Model("bad", "x", (Species("X", "cells", "x", initial="1"),
                           Species("Y", "cells", "y", initial="1")),
              (par("a", 1.0),), (Process("p", "a * X", {"X": 1, "Y": 1}, "both"),))
    with pytest.raises(ModelError, match="changes stochastic species 'X'"):
        simulate_stochastic(m, None, 1.0, stochastic=["X"])


def test_time_grid_hits_events_and_refines_after_them():
    s = StochasticSettings(dt_max=2.0, dt_event=0.5, window=3.0)
    g = time_grid(20.0, [5.0, 13.3], s)
    assert {5.0, 13.3, 20.0} <= set(np.round(g, 9)) and g[0] == 0.0
    steps = np.diff(g)
    assert np.all(steps <= 2.0 + 1e-9)
    after = (g[:-1] >= 5.0) & (g[:-1] < 8.0)
    assert np.all(steps[after] <= 0.5 + 1e-9)


@pytest.mark.parametrize("seed", [0, 5, 2**32 - 1, 2**32, 2**63 + 5, 2**130 + 11])
def test_seed_states_are_numpys_seed_sequence(seed):
    idx = np.concatenate([np.arange(20), [2**32 - 1, 2**32, 2**33 + 7, 2**62 + 3]])
    expected = np.array([np.random.SeedSequence(seed, spawn_key=(int(i),))
                         .generate_state(4, dtype=np.uint64) for i in idx])
    np.testing.assert_array_equal(seed_states(seed, idx), expected)

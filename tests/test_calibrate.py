"""ABC-SMC calibration: same seed same posterior for any workers, resume, Posterior files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ciksim.errors import CikError
from ciksim.evidence import parse_evidence
from ciksim.evidence.calibration import calibrate
from ciksim.evidence.posterior import Posterior

SMALL = {
    "version": "test-1",
    "studies": [{
        "id": "small-matched",
        "source": "test",
        "setting": "donor-after-chemotherapy",
        "design": "matched-controls",
        "endpoint": {"kind": "relapse", "at_months": 12.0},
        "arms": [
            {"name": "cik", "n": 6, "events": 2,
             "product": {"culture_protocol": "cik-gmp"},
             "dose_per_kg": 5e7, "infusions": 2, "interval_days": 21, "first_day": 30},
            {"name": "control", "n": 6, "events": 4},
        ],
    }],
}


@pytest.fixture(scope="module")
def small():
    return parse_evidence(SMALL, origin="test")


def _run(ev, out, **kw):
    args = {"particles": 4, "generations": 2, "seed": 11, "ppc_draws": 10}
    args.update(kw)
    return calibrate(ev, out=out, **args)


@pytest.mark.slow
def test_same_seed_same_posterior_any_workers_and_resume(small, tmp_path):
    one = _run(small, tmp_path / "w1", workers=1)
    two = _run(small, tmp_path / "w2", workers=2)
    assert np.array_equal(one.posterior.samples.to_numpy(), two.posterior.samples.to_numpy())
    assert np.array_equal(one.posterior.weights, two.posterior.weights)
    # a run stopped after one generation and resumed gives the same posterior
    _run(small, tmp_path / "r", generations=1)
    resumed = _run(small, tmp_path / "r", resume=True)
    assert resumed.generations == 2
    assert np.array_equal(one.posterior.samples.to_numpy(),
                          resumed.posterior.samples.to_numpy())
    # a different seed gives a different posterior
    other = _run(small, tmp_path / "s", seed=12, generations=1)
    assert not np.array_equal(one.posterior.samples.to_numpy()[:4],
                              other.posterior.samples.to_numpy()[:4])

    folder = one.out
    for name in ("calibration.db", "posterior.parquet", "run.json"):
        assert (folder / name).is_file(), name
    post = Posterior.load(folder / "posterior.parquet")
    assert post.manifest["evidence_version"] == "test-1"
    assert post.manifest["seed"] == 11 and post.manifest["package_version"]
    assert post.manifest["epsilon_target"] == pytest.approx(2 ** 0.5)  # two summaries
    assert post.manifest["converged"] == (post.manifest["epsilons"][-1] <= 2 ** 0.5)
    assert post.manifest["terms"] == "marginalised"  # the study terms integrated out
    assert "git_commit" in post.manifest  # the commit, or None outside a git checkout
    assert list(post.samples.columns) == ["potency", "persistence_sd", "bias:small-matched",
                                          "offset:small-matched"]
    summary = post.summary()
    assert set(summary["kind"]) == {"effect", "bias", "offset"}
    assert (summary["q05"] <= summary["median"]).all()
    assert (summary["median"] <= summary["q95"]).all()
    draws = post.sample(50, seed=1)
    assert len(draws) == 50 and draws.equals(post.sample(50, seed=1))
    assert len(post.effect_draws(3, seed=2)[0]) == 2
    ppc = post.ppc
    assert list(ppc["summary"]) == ["small-matched/cik", "small-matched/control"]
    assert (ppc["q05"] <= ppc["q95"]).all()
    js = one.as_json()
    assert json.dumps(js) and js["checks"] and js["parameters"]
    with pytest.raises(CikError, match="already holds a calibration"):
        _run(small, folder)
    with pytest.raises(CikError, match="differ"):
        _run(small, folder, seed=3, resume=True)


def test_bad_settings_fail_before_simulating(small, tmp_path):
    with pytest.raises(CikError, match="particles"):
        calibrate(small, out=tmp_path / "x", particles=1)
    with pytest.raises(CikError, match="no calibration"):
        calibrate(small, out=tmp_path / "y", resume=True)
    with pytest.raises(CikError, match="min-epsilon"):
        calibrate(small, out=tmp_path / "z", min_epsilon=-1.0)
    assert not (tmp_path / "x").exists()


def test_tolerance_schedule_stops_at_its_floor(tmp_path):
    import pandas as pd

    from ciksim.evidence.calibration import FloorEpsilon, default_epsilon, git_commit

    assert default_epsilon(5) == pytest.approx(5 ** 0.5)
    eps = FloorEpsilon(2.0)
    eps._update(0, pd.DataFrame({"distance": [1.0, 3.0, 5.0, 7.0], "w": [0.25] * 4}))
    assert eps(0) == pytest.approx(4.0)  # the weighted median of the last generation
    eps._update(1, pd.DataFrame({"distance": [0.5, 1.0, 1.5], "w": [1 / 3] * 3}))
    assert eps(1) == 2.0  # never below the target
    assert git_commit(tmp_path) is None  # outside a git checkout: no commit, no error


def test_study_terms_shift_the_summaries_as_the_simulator_does(small):
    from ciksim.evidence.effect import dimensions
    from ciksim.evidence.marginal import term_model
    from ciksim.evidence.simulate import (
        observed,
        prepare,
        simulate_batch,
        summaries,
        term_shifts,
    )

    prepared = prepare(small)
    terms = term_model(dimensions(small), *term_shifts(prepared), observed(prepared))
    assert terms.names == ("bias:small-matched", "offset:small-matched")
    theta = {"potency": 0.02, "persistence_sd": 0.5}
    raw = simulate_batch(prepared, [theta], [7], seed=3)[0]
    plain = summaries(prepared, raw, theta)
    b = np.array([0.7, -1.2])
    shifted = summaries(prepared, raw, {**theta, **dict(zip(terms.names, b, strict=True))})
    mine = terms.shifted(np.array([plain[k] for k in terms.summaries]), b[None, :])[0]
    assert mine == pytest.approx([shifted[k] for k in terms.summaries], rel=1e-12)


def test_marginal_acceptance_weight_is_the_prior_probability_of_acceptance():
    from ciksim.evidence.marginal import MarginalAcceptor

    m = _two_arm_terms()
    raw = np.array([0.2, 0.3])
    eps = 2 ** 0.5
    rng = np.random.default_rng(5)
    b = rng.standard_normal((400_000, 2)) * m.sd
    exact = float((m.distances(raw, b) <= eps).mean())  # brute force under the prior
    acc = MarginalAcceptor(m, draws=512)
    weights = []
    for i in range(200):
        np.random.seed(i)
        x = {"s/t": raw[0], "s/c": raw[1]}
        res = acc(None, lambda t: eps, x, None, 0, None)
        weights.append(res.weight)
        assert res.accept == (res.weight > 0)
        if res.accept:  # the kept terms lie inside the tolerance
            kept = np.array([[x["term:bias:s"], x["term:offset:s"]]])
            assert m.distances(raw, kept)[0] <= eps
    assert 0.01 < exact < 0.5
    assert np.mean(weights) == pytest.approx(exact, rel=0.05)  # unbiased
    assert np.std(weights) < 0.2 * exact  # and far less noisy than one prior draw


def test_posterior_file_errors(tmp_path):
    with pytest.raises(CikError, match="does not exist"):
        Posterior.load(tmp_path / "nothing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet", encoding="utf-8")
    with pytest.raises(CikError, match="not a readable"):
        Posterior.load(bad)


def _toml(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


@pytest.mark.slow
def test_cli_calibrate_patient_json_and_folder(tmp_path):
    from typer.testing import CliRunner

    from ciksim.cli import app

    study = SMALL["studies"][0]
    lines = [f"version = {_toml(SMALL['version'])}", "", "[[studies]]"]
    lines += [f"{k} = {_toml(v)}" for k, v in study.items() if k != "arms"]
    for arm in study["arms"]:
        lines += ["[[studies.arms]]"] + [f"{k} = {_toml(v)}" for k, v in arm.items()]
    ev = tmp_path / "ev.toml"
    ev.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "cal"
    r = CliRunner().invoke(app, ["calibrate", "patient", "--evidence", str(ev), "--particles",
                                 "3", "--generations", "1", "--seed", "4", "--out", str(out),
                                 "--json"])
    assert r.exit_code == 0, r.output
    js = json.loads(r.output)
    assert {p["parameter"] for p in js["parameters"]} >= {"potency", "persistence_sd"}
    assert all({"median", "q05", "q95"} <= set(p) for p in js["parameters"])
    assert [c["summary"] for c in js["checks"]] == ["small-matched/cik", "small-matched/control"]
    for name in ("calibration.db", "posterior.parquet", "summary.csv", "ppc.csv",
                 "prior_posterior.png", "ppc.png", "report.html", "calibration.json"):
        assert (out / name).is_file(), name
    assert "Posterior-predictive check" in (out / "report.html").read_text(encoding="utf-8")


def test_cli_calibrate_bad_input_is_one_error(tmp_path):
    from typer.testing import CliRunner

    from ciksim.cli import app

    r = CliRunner().invoke(app, ["calibrate", "patient", "--add-cohort", str(tmp_path / "c.csv"),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "go together" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "x"\n[[studies]]\nid = "a"\n', encoding="utf-8")
    r = CliRunner().invoke(app, ["calibrate", "patient", "--evidence", str(bad), "--out",
                                 str(tmp_path / "o")])
    assert r.exit_code == 2 and "study 'a'" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_dask_scheduler_gives_the_same_posterior(small, tmp_path):
    from distributed import LocalCluster

    local = _run(small, tmp_path / "local", generations=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        remote = _run(small, tmp_path / "dask", generations=1,
                      scheduler=cluster.scheduler_address)
    assert np.array_equal(local.posterior.samples.to_numpy(), remote.posterior.samples.to_numpy())
    assert np.array_equal(local.posterior.weights, remote.posterior.weights)


def _two_arm_terms():
    from ciksim.evidence.marginal import TermModel

    # two arms: control shifted by the offset, treated by offset + bias (priors 1.0, 0.6)
    return TermModel(("bias:s", "offset:s"), ("s/t", "s/c"),
                     np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([True, True]), np.zeros(2),
                     np.array([0.6, 1.0]), np.array([0.45, 0.12]), np.array([0.15, 0.12]))


def _accept(acc, raw, eps, seed):
    np.random.seed(seed)
    x = {"s/t": raw[0], "s/c": raw[1]}
    res = acc(None, lambda t: eps, x, None, 0, None)
    return res.distance, res.accept, res.weight, x.get("term:bias:s"), x.get("term:offset:s")


def test_proposal_cached_per_tolerance_gives_the_same_numbers():
    from ciksim.evidence.marginal import WIDEN, MarginalAcceptor

    m = _two_arm_terms()
    raw = np.array([0.2, 0.3])
    for eps in (0.7, 2 ** 0.5, 3.0):
        # the cached parts equal the formula computed afresh
        w = 2 / (eps ** 2 * m.scale ** 2)
        cov = np.linalg.inv(np.diag(1 / m.sd ** 2) + m.A.T @ (w[:, None] * m.A))
        mean = cov @ (m.mean / m.sd ** 2
                      + m.A.T @ (w * (m.linear(m.observed) - m.linear(raw))))
        got_w, got_cov, got_chol = m.at(eps)
        assert np.array_equal(got_w, w) and np.array_equal(got_cov, cov)
        assert np.array_equal(got_chol, np.linalg.cholesky(cov * WIDEN ** 2))
        assert np.array_equal(m.proposal(raw, eps)[0], mean)
    assert len(m._by_eps) == 3 and m.at(3.0) is m.at(3.0)
    # an acceptor that has seen other tolerances gives what a fresh one gives, same seed
    used = MarginalAcceptor(m)
    seen = [_accept(used, raw, eps, seed) for eps in (3.0, 0.7, 2 ** 0.5) for seed in (1, 2)]
    fresh = [_accept(MarginalAcceptor(_two_arm_terms()), raw, eps, seed)
             for eps in (3.0, 0.7, 2 ** 0.5) for seed in (1, 2)]
    assert seen == fresh
    assert any(s[1] for s in seen)


def test_a_study_set_without_a_summary_is_never_accepted():
    from ciksim.evidence.calibration import _check
    from ciksim.evidence.marginal import MarginalAcceptor
    from ciksim.evidence.simulate import Observed, distance

    obs = {"s/t": Observed("s/t", 0.45, 0.15), "s/c": Observed("s/c", 0.12, 0.12)}
    assert distance({"s/t": 0.45, "s/c": 0.12}, obs) == 0.0
    # an arm without eligible patients has no proportion (NaN): infinitely far
    assert distance({"s/t": float("nan"), "s/c": 0.12}, obs) == float("inf")
    m = _two_arm_terms()
    d, accept, weight, bias, offset = _accept(MarginalAcceptor(m), [np.nan, 0.3], 2.0, 0)
    assert (d, accept, weight, bias, offset) == (float("inf"), False, 0.0, None, None)
    assert m.best(np.array([np.nan, 0.3]), 2.0) == float("inf")
    # the predictive check uses the simulated sets that have the summary
    row = _check(obs["s/t"], np.array([0.3, np.nan, 0.5, 0.4, np.nan]))
    assert row["q05"] == pytest.approx(0.31) and row["q95"] == pytest.approx(0.49)
    assert row["covered"] is True
    none = _check(obs["s/t"], np.full(4, np.nan))
    assert np.isnan(none["median"]) and none["covered"] is False


def test_evidence_without_study_terms_takes_the_same_pooled_path(tmp_path):
    study = {
        "id": "rct", "source": "test", "setting": "donor-after-chemotherapy",
        "design": "randomised",
        "endpoint": {"kind": "hazard_ratio", "at_months": 12.0, "estimate": 0.7,
                     "ci90": [0.4, 1.2]},
        "arms": [
            {"name": "cik", "n": 5, "product": {"culture_protocol": "cik-gmp"},
             "dose_per_kg": 5e7, "infusions": 2, "interval_days": 21, "first_day": 30},
            {"name": "control", "n": 5},
        ],
    }
    ev = parse_evidence({"version": "rct-1", "studies": [study]}, origin="test")
    res = _run(ev, tmp_path / "rct", particles=4, generations=3)
    m = res.posterior.manifest
    assert m["terms"] == "none"  # nothing to integrate out: the plain acceptance
    assert list(res.posterior.samples.columns) == ["potency", "persistence_sd"]
    assert m["pooled_generations"] and m["ess"] > 0

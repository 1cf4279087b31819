"""T3 (trials over draws: effect, assurance, Monte Carlo error) and T6 (value of
information on the effect); same numbers for chunks, workers and Dask; resume."""

import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest

from ciksim.errors import CikError
from ciksim.evidence.posterior import Posterior
from ciksim.trial.design import assurance_curve, value_of_information, voi_summary
from ciksim.trial.draws import DrawDesign, parse_sizes, run_over_draws
from ciksim.trial.sources import (
    DrawSource,
    PosteriorVersionWarning,
    PriorSampler,
    resolve_source,
)
from ciksim.trial.spec import TrialSpec

COMPOSITION = {"f_cik": 0.49, "f_t": 0.47, "f_nk": 0.035}


def spec(**extra):
    return TrialSpec.from_dict({
        "name": "draws", "seed": 21, "patients_per_arm": 20, "follow_up_years": 3,
        "population": {"scenario": "aml-cr1"},
        "arms": [{"name": "chemo"}, {"name": "cik", "cik": {"dose_per_kg": 1e8}}], **extra})


class Fixed:
    """A minimal sampler (any object with sample(n, seed)): potency log-uniform, fixed
    persistence spread."""

    def sample(self, n, seed):
        rng = np.random.default_rng(seed)
        return pd.DataFrame({"potency": 10 ** rng.uniform(-3.6, -1.0, n),
                             "persistence_sd": np.full(n, 0.5)})


def fixed_source():
    return DrawSource(Fixed(), "sampler", "test sampler")


@cache
def prior_run():
    return run_over_draws(spec(), resolve_source(prior=True),
                          DrawDesign(draws=20, cohort=40, sizes=(10, 20), chunk_draws=5),
                          composition=COMPOSITION)


def test_T3_effect_assurance_and_mc_error_reported_apart():
    run = prior_run()
    s = run.summary()
    assert s["source"]["kind"] == "prior" and s["draws"] == 20
    for m in ("delta_milestone", "delta_rmst", "log_hr"):
        e = s["effect"][m]
        assert e["q05"] <= e["median"] <= e["q95"] and e["interval"] == 0.9
        mc = s["mc_error"][m]
        # the within-draw error: from the half-cohort differences
        half = run.table[f"{m}_a"] - run.table[f"{m}_b"]
        assert mc["within_draw"] == pytest.approx(np.sqrt(np.mean(half ** 2) / 4))
        assert mc["ratio"] == pytest.approx(mc["within_draw"] / mc["posterior_sd"])
        assert mc["ok"] == (mc["ratio"] <= 0.1)
    # a stronger effect raises the milestone and RMST differences and lowers the log HR
    t = run.table
    hi = t["potency"] > t["potency"].median()
    assert t.loc[hi, "delta_rmst"].mean() > t.loc[~hi, "delta_rmst"].mean()
    assert t.loc[hi, "log_hr"].mean() < t.loc[~hi, "log_hr"].mean()
    curve = assurance_curve(run)
    assert list(curve["n_per_arm"]) == [10, 20]
    for _, r in curve.iterrows():
        k = run.table[f"success_{int(r['n_per_arm'])}"].sum()
        assert r["assurance"] == k / 20
        assert r["mc_se"] == pytest.approx(np.sqrt(r["assurance"] * (1 - r["assurance"])
                                                   / 20))
    assert s["assurance"] == curve.set_index("n_per_arm").loc[20, "assurance"]


@pytest.mark.slow
def test_T3_mc_error_below_a_tenth_of_the_posterior_spread():
    """With a large enough virtual cohort the simulation error is under a tenth of the
    effect's spread across draws (common random numbers between the arms)."""
    run = run_over_draws(spec(), fixed_source(),
                         DrawDesign(draws=12, cohort=1600, sizes=(30,), chunk_draws=12),
                         composition=COMPOSITION)
    mc = run.summary()["mc_error"]
    assert mc["delta_milestone"]["ratio"] <= 0.1, mc["delta_milestone"]
    assert mc["delta_rmst"]["ratio"] <= 0.1, mc["delta_rmst"]
    assert mc["log_hr"]["ratio"] <= 0.1, mc["log_hr"]


def test_T6_value_of_information_targets_the_effect():
    run = prior_run()
    voi = value_of_information(run)
    assert set(voi["measure"]) <= {"delta_milestone", "delta_rmst", "log_hr"}
    assert set(voi["parameter"]) == {"potency", "persistence_sd"}
    assert ((voi["S1"] >= 0) & (voi["S1"] <= 1)).all()
    best = voi_summary(run)["most_informative"]
    # potency spans two orders of magnitude in the prior: it drives the effect
    assert best["delta_rmst"] == "potency"


@pytest.mark.slow
def test_same_numbers_for_chunks_workers_and_dask(tmp_path):
    from distributed import LocalCluster

    design = DrawDesign(draws=4, cohort=24, sizes=(8,), chunk_draws=1)
    a = run_over_draws(spec(), fixed_source(), design, composition=COMPOSITION).table
    b = run_over_draws(spec(), fixed_source(), DrawDesign(4, 24, (8,), chunk_draws=4),
                       composition=COMPOSITION).table
    pd.testing.assert_frame_equal(a, b)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        c = run_over_draws(spec(), fixed_source(), design, composition=COMPOSITION,
                           scheduler=cluster.scheduler_address).table
    pd.testing.assert_frame_equal(a, c)
    # resume: an interrupted run finishes with the same numbers
    out = tmp_path / "r"
    part = run_over_draws(spec(), fixed_source(), design, out=out, composition=COMPOSITION,
                          max_chunks=2)
    assert not part.complete and not (out / "draws.parquet").exists()
    with pytest.raises(CikError, match="--resume"):
        run_over_draws(spec(), fixed_source(), design, out=out, composition=COMPOSITION)
    done = run_over_draws(spec(), fixed_source(), design, out=out, composition=COMPOSITION,
                          resume=True)
    pd.testing.assert_frame_equal(a, done.table)
    pd.testing.assert_frame_equal(a, pd.read_parquet(out / "draws.parquet"))


def test_posterior_from_another_version_warns_naming_both():
    samples = pd.DataFrame({"potency": [0.01, 0.02, 0.03], "persistence_sd": [0.5, 0.6, 0.7]})
    post = Posterior(samples, np.ones(3), {"package_version": "0.0.1",
                                           "evidence_version": "someone-else-2020"})
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        src = resolve_source(post)
    text = " ".join(str(w.message) for w in seen if w.category is PosteriorVersionWarning)
    assert "0.0.1" in text and "someone-else-2020" in text
    from ciksim import __version__
    from ciksim.evidence import load_evidence

    assert __version__ in text and load_evidence().version in text
    assert src.kind == "posterior" and len(src.draws(5, 1)) == 5


def test_prior_sampler_is_the_calibration_prior():
    s = PriorSampler.default()
    d = s.sample(4000, 3)
    for dim in s.dimensions:
        lo, hi = dim.interval(0.9)
        inside = ((d[dim.name] >= lo) & (d[dim.name] <= hi)).mean()
        assert inside == pytest.approx(0.9, abs=0.02)
    pd.testing.assert_frame_equal(d, s.sample(4000, 3))


@pytest.mark.parametrize("text", ["20,0", "20,-4", "a,20", "", "2.5"])
def test_sample_sizes_must_be_positive_integers(text):
    with pytest.raises(CikError, match=r"positive whole number|at least one"):
        parse_sizes(text)


def test_design_errors_name_the_field():
    with pytest.raises(CikError, match="arm 'nope'"):
        DrawDesign(treated="nope").resolved(spec())
    with pytest.raises(CikError, match="draws"):
        DrawDesign(draws=1).resolved(spec())
    assert DrawDesign(cohort=20, sizes=(50,)).resolved(spec()).cohort == 100


def test_cli_trial_assurance(tmp_path):
    import json

    from typer.testing import CliRunner

    from ciksim.cli import app

    spec_file = tmp_path / "s.toml"
    spec_file.write_text('name = "a"\nseed = 4\npatients_per_arm = 20\nfollow_up_years = 3\n'
                         '[population]\nscenario = "aml-cr1"\n[[arms]]\nname = "chemo"\n'
                         '[[arms]]\nname = "low"\ncik = { dose_per_kg = 1e7 }\n'
                         '[[arms]]\nname = "high"\ncik = { dose_per_kg = 1e8 }\n')
    args = ["trial", "assurance", str(spec_file), "--prior", "--draws", "3", "--cohort", "20",
            "--workers", "1", "--arm", "high"]
    r = CliRunner().invoke(app, [*args, "--n", "5,10", "--json", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [c["n_per_arm"] for c in data["assurance_curve"]] == [5, 10]
    assert data["arms"] == {"control": "chemo", "treated": "high"}
    assert (tmp_path / "o" / "assurance.png").is_file()
    bad = CliRunner().invoke(app, [*args, "--n", "5,0"])
    assert bad.exit_code == 2 and "positive whole number" in bad.output
    bad = CliRunner().invoke(app, [*args, "--n", "5", "--arm", "nope"])
    assert bad.exit_code == 2 and "'nope'" in bad.output

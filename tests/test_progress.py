"""Long jobs report progress(done, total) and chunking changes no number (issue 17)."""

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from ciksim.cli import app
from ciksim.engines import simulate
from ciksim.jobs.culture import culture_job
from ciksim.jobs.killing import killing_job
from ciksim.jobs.patient import patient_job
from ciksim.models.culture import culture_model
from ciksim.protocol import Protocol


def test_patient_job_in_chunks_reports_progress_and_gives_the_same_cohort():
    calls = []
    kw = dict(replicates=11, years=0.5, seed=4)
    chunked = patient_job(progress=lambda d, t: calls.append((d, t)), chunk_size=4, **kw)
    whole = patient_job(**kw)
    assert calls == [(4, 11), (8, 11), (11, 11)]
    pd.testing.assert_frame_equal(chunked.run.outcomes(), whole.run.outcomes(), check_exact=True)
    assert chunked.summary() == whole.summary()
    assert list(chunked.run.result.indices) == list(range(11))


def test_culture_job_reports_the_days_reached_and_gives_the_same_numbers():
    """The donors of one protocol are one batched solve: progress watches it (the day
    reached) without changing any number."""
    calls = []
    kw = dict(days=6.5, donors=5, seed=1)
    res = culture_job(["cik-standard", "cik-gmp"], progress=lambda d, t: calls.append((d, t)),
                      **kw)
    quiet = culture_job(["cik-standard", "cik-gmp"], **kw)
    assert [r.protocol.name for r in res.runs] == ["cik-standard", "cik-gmp"]
    assert {t for _, t in calls} == {13}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 13
    assert len(set(done)) > 6, "steps within each protocol's run, not one per protocol"
    for a, b in zip(res.runs, quiet.runs, strict=True):
        assert np.array_equal(a.result.states, b.result.states, equal_nan=True)


def test_killing_job_reports_simulated_hours_and_gives_the_same_numbers():
    calls = []
    kw = dict(et=(10, 5), hours=4.0, donors=4, seed=2)
    res = killing_job("cik", "k562", progress=lambda d, t: calls.append((d, t)), **kw)
    quiet = killing_job("cik", "k562", **kw)
    assert {t for _, t in calls} == {21 * 24 + 4}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == 21 * 24 + 4
    assert any(21 * 24 < d < 21 * 24 + 4 for d in done), "the assay itself reports"
    assert np.array_equal(res.assay.lysis_pct, quiet.assay.lysis_pct)
    assert res.summary() == quiet.summary()


def test_the_ode_engine_tells_the_time_reached_without_changing_numbers():
    model = culture_model()
    pars = {"phi_max": np.array([0.3, 0.5, 0.7])}
    times = []
    watched = simulate(model, Protocol.load("cik-standard"), 9.0, parameters=pars,
                       progress=times.append)
    plain = simulate(model, Protocol.load("cik-standard"), 9.0, parameters=pars)
    assert np.array_equal(watched.states, plain.states)
    assert times == sorted(times) and times[-1] == 9.0 and len(times) <= 200 + 10


def test_patient_cli_json_stays_clean_with_progress():
    r = CliRunner().invoke(app, ["patient", "--replicates", "3", "--years", "0.5", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["replicates"] == 3


def test_culture_and_killing_cli_json_stay_clean_with_progress():
    for verb in (["culture", "--donors", "3", "--days", "3"],
                 ["killing", "--donors", "3", "--et", "10"]):
        r = CliRunner().invoke(app, [*verb, "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["donors"] == 3


def test_culture_fit_reports_mcmc_steps_and_gives_the_same_samples():
    from ciksim.inference.culture import CultureData, fit_culture, simulated_counts

    counts = pd.concat([simulated_counts({}, days=[0, 3], seed=s, donor=f"d{s}")
                        for s in (1, 2)])
    data = CultureData(counts.assign(sd=np.nan))
    calls = []
    kw = dict(walkers=24, steps=60, burn=10, seed=3)
    watched = fit_culture(data, progress=lambda d, t: calls.append((d, t)), **kw)
    plain = fit_culture(data, **kw)
    assert calls == [(50, 120), (60, 120), (110, 120), (120, 120)]
    for a, b in zip(watched, plain, strict=True):
        assert np.array_equal(a.samples, b.samples)
        assert np.array_equal(a.nuisance_samples, b.nuisance_samples)


def test_sensitivity_in_batches_reports_progress_and_gives_the_same_indices(monkeypatch):
    """The patient model's parameter sets run in batches when watched: same seed, same
    indices (each virtual patient keeps its random numbers in any batch)."""
    from ciksim.inference import sensitivity

    monkeypatch.setattr(sensitivity, "PATIENT_BATCH", 5)
    calls = []
    kw = dict(parameters=["k_cik", "T_double"], samples=4, seed=3)
    watched = sensitivity.sobol("cure_fraction", progress=lambda d, t: calls.append((d, t)),
                                **kw)
    quiet = sensitivity.sobol("cure_fraction", **kw)
    assert calls == [(5, 16), (10, 16), (15, 16), (16, 16)]
    pd.testing.assert_frame_equal(watched, quiet, check_exact=True)


def test_culture_sensitivity_reports_the_days_reached_and_gives_the_same_indices():
    from ciksim.jobs.sensitivity import sensitivity_job

    calls = []
    kw = dict(parameters=["q_il2", "phi_cik"], samples=4, seed=1)
    watched = sensitivity_job("culture", "cd3cd56_yield",
                              progress=lambda d, t: calls.append((d, t)), **kw)
    quiet = sensitivity_job("culture", "cd3cd56_yield", **kw)
    assert {t for _, t in calls} == {21} and calls[-1] == (21, 21)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    pd.testing.assert_frame_equal(watched.table, quiet.table, check_exact=True)


def test_validation_reports_each_target_by_name(monkeypatch):
    from functools import partial

    from ciksim.jobs.validation import validation_job
    from ciksim.targets import registry
    from ciksim.targets.culture import c3_fold_day21
    from ciksim.targets.killing import k1_k562, k8_lysis_maths

    monkeypatch.setattr(registry, "target_functions",
                        lambda: [("killing", lambda: [k1_k562, k8_lysis_maths])])
    calls = []
    res = validation_job(progress=lambda *a: calls.append(a))
    assert calls == [(0, 2, "killing: k1_k562"), (1, 2, "killing: k8_lysis_maths"),
                     (2, 2, "done")]
    assert [c.id for _, c in res.checks] == ["K1", "K8"]
    assert registry.step_name(partial(c3_fold_day21, "cik-standard")) == \
        "c3_fold_day21(cik-standard)"


def test_validate_and_sensitivity_cli_json_stay_clean_with_progress(monkeypatch):
    from ciksim.targets import registry
    from ciksim.targets.killing import k8_lysis_maths

    monkeypatch.setattr(registry, "target_functions",
                        lambda: [("killing", lambda: [k8_lysis_maths])])
    r = CliRunner().invoke(app, ["validate", "--json"])
    assert r.exit_code == 0, r.output
    assert [t["id"] for t in json.loads(r.output)["targets"]] == ["K8"]
    r = CliRunner().invoke(app, ["sensitivity", "culture", "--output", "cd3cd56_yield",
                                 "--parameters", "q_il2,phi_cik", "--samples", "4", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["samples"] == 4

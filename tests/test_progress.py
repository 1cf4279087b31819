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

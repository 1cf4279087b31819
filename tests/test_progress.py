"""Long jobs report progress(done, total) and chunking changes no number (issue 17)."""

import json

import pandas as pd
from typer.testing import CliRunner

from ciksim.cli import app
from ciksim.jobs.culture import culture_job
from ciksim.jobs.patient import patient_job


def test_patient_job_in_chunks_reports_progress_and_gives_the_same_cohort():
    calls = []
    kw = dict(replicates=11, years=0.5, seed=4)
    chunked = patient_job(progress=lambda d, t: calls.append((d, t)), chunk_size=4, **kw)
    whole = patient_job(**kw)
    assert calls == [(4, 11), (8, 11), (11, 11)]
    pd.testing.assert_frame_equal(chunked.run.outcomes(), whole.run.outcomes(), check_exact=True)
    assert chunked.summary() == whole.summary()
    assert list(chunked.run.result.indices) == list(range(11))


def test_culture_job_reports_one_step_per_protocol():
    calls = []
    res = culture_job(["cik-standard", "cik-gmp"], days=3, donors=3, seed=1,
                      progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 2), (2, 2)]
    assert [r.protocol.name for r in res.runs] == ["cik-standard", "cik-gmp"]


def test_patient_cli_json_stays_clean_with_progress():
    r = CliRunner().invoke(app, ["patient", "--replicates", "3", "--years", "0.5", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["replicates"] == 3

"""Virtual trials: T1, T2, identical results across chunking/workers/Dask, resume, failures."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ciksim.cli import app
from ciksim.errors import DataError
from ciksim.targets import trial as trial_targets
from ciksim.trial import runner as runner_mod
from ciksim.trial.analysis import compare, power_from_pool, summarize
from ciksim.trial.runner import auto_chunk_size, run_trial
from ciksim.trial.spec import TrialSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
COMPOSITION = {"f_cik": 0.49, "f_t": 0.47, "f_nk": 0.035}


def small_spec(n=60, **extra):
    data = {
        "name": "small", "seed": 11, "patients_per_arm": n, "follow_up_years": 3,
        "population": {"scenario": "aml-cr1",
                       "subtypes": {"npm1": 0.6, "cbfb-myh11": 0.4}},
        "arms": [{"name": "chemo"},
                 {"name": "cik", "cik": {"dose_per_kg": 5e7, "infusions": 3}}],
        **extra,
    }
    return TrialSpec.from_dict(data)


def test_target_T1():
    t = trial_targets.t1_control_arm()
    assert t.passed, (t.value, t.range)


def test_target_T2():
    t = trial_targets.t2_lifelines_agreement()
    assert t.passed, (t.value, t.range)


def test_example_spec_is_the_target_trial():
    spec = TrialSpec.load(EXAMPLES / "aml-adjuvant-cik.toml")
    assert spec.patients_per_arm >= 2000
    assert spec.seed == trial_targets.DEFAULT_TRIAL["seed"]
    assert spec.raw["arms"] == trial_targets.DEFAULT_TRIAL["arms"] or \
        [a.name for a in spec.arms] == [a["name"] for a in trial_targets.DEFAULT_TRIAL["arms"]]


def test_small_trial_with_default_workers_runs_in_this_process():
    run = run_trial(small_spec(5), composition=COMPOSITION)  # workers=None: all cores
    assert runner_mod.IN_PROCESS_BELOW > 10
    assert run.manifest["backend"] == "in-process" and run.manifest["workers"] == 1
    same = run_trial(small_spec(5), workers=2, chunk_size=2, composition=COMPOSITION)
    assert same.manifest["backend"] == "process"
    pd.testing.assert_frame_equal(run.patients, same.patients)


def test_identical_for_chunk_sizes_workers_and_dask():
    spec = small_spec(40)
    a = run_trial(spec, workers=1, chunk_size=7, composition=COMPOSITION).patients
    b = run_trial(spec, workers=1, chunk_size=1000, composition=COMPOSITION).patients
    c = run_trial(spec, workers=2, chunk_size=9, composition=COMPOSITION).patients
    e = run_trial(spec, workers=4, chunk_size=3, composition=COMPOSITION).patients
    auto = run_trial(spec, workers=2, composition=COMPOSITION)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    pd.testing.assert_frame_equal(a, e)
    pd.testing.assert_frame_equal(a, auto.patients)
    ref = run_trial(spec, workers=1, chunk_size=1000, composition=COMPOSITION,
                    engine="reference")
    pd.testing.assert_frame_equal(a, ref.patients)  # the numpy engine: the same outcomes
    assert ref.manifest["engine"] == "reference" and auto.manifest["engine"] == "compiled"
    assert auto.manifest["chunk_size"] == auto_chunk_size(80, 2) == 200
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        d = run_trial(spec, scheduler=cluster.scheduler_address, chunk_size=13,
                      composition=COMPOSITION).patients
    pd.testing.assert_frame_equal(a, d)


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path):
    spec = small_spec(40)
    whole = run_trial(spec, workers=1, chunk_size=10, composition=COMPOSITION).patients
    out = tmp_path / "t"
    part = run_trial(spec, out=out, workers=1, chunk_size=10, composition=COMPOSITION,
                     max_chunks=3)
    assert part.manifest["status"] == "incomplete" and len(part.patients) == 30
    assert not (out / "patients.parquet").exists()
    with pytest.raises(DataError, match="--resume"):
        run_trial(spec, out=out, workers=1, chunk_size=10, composition=COMPOSITION)
    resumed = run_trial(spec, out=out, workers=1, chunk_size=10, composition=COMPOSITION,
                        resume=True)
    pd.testing.assert_frame_equal(whole, resumed.patients)
    pd.testing.assert_frame_equal(whole, pd.read_parquet(out / "patients.parquet"))
    with pytest.raises(DataError, match="different trial"):
        run_trial(small_spec(40, seed=12), out=out, resume=True, composition=COMPOSITION)


def test_killed_process_resumes(tmp_path):
    """A real `ciksim trial` killed with SIGKILL mid-way, then resumed."""
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(
        'name = "kill"\nseed = 3\npatients_per_arm = 240\nfollow_up_years = 2\n'
        '[population]\nscenario = "aml-cr1"\n[product]\nculture_protocol = "cik-gmp"\n'
        'donors = 5\n[[arms]]\nname = "chemo"\n[[arms]]\nname = "cik"\n'
        'cik = { dose_per_kg = 5e7 }\n')
    exe = Path(sys.executable).with_name("ciksim")
    out = tmp_path / "out"
    proc = subprocess.Popen([str(exe), "trial", str(spec_file), "--out", str(out),
                             "--workers", "1", "--chunk-size", "10", "--draws", "0", "--json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        done = list((out / "chunks").glob("arm*.parquet")) if (out / "chunks").exists() else []
        if len(done) >= 3 or proc.poll() is not None:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    spec = TrialSpec.load(spec_file)
    finished = len(list((out / "chunks").glob("arm*.parquet")))
    assert 0 < finished < 48, "the run should have been killed part-way"
    resumed = run_trial(spec, out=out, workers=1, chunk_size=10, resume=True)
    whole = run_trial(spec, workers=1, chunk_size=240)
    pd.testing.assert_frame_equal(whole.patients, resumed.patients)


def test_failing_patient_is_recorded_and_trial_goes_on(monkeypatch):
    real = runner_mod.run_patients

    def flaky(scenario, **kw):
        if 5 in np.asarray(kw["indices"]):
            raise FloatingPointError("integration blew up")
        return real(scenario, **kw)

    monkeypatch.setattr(runner_mod, "run_patients", flaky)
    df = run_trial(small_spec(12), workers=1, chunk_size=6, composition=COMPOSITION).patients
    bad = df[df["status"] != "ok"]
    assert list(bad["patient"]) == [5, 5]  # patient 5 of each arm
    assert bad["status"].str.contains("integration blew up").all()
    assert bad["weight"].notna().all()  # its parameters are kept
    assert (df["status"] == "ok").sum() == 22
    s = summarize(df, ["chemo", "cik"], 36)
    assert s["failed_patients"] == 2 and s["arms"][0]["n"] == 11


@pytest.mark.parametrize(
    ("change", "message"),
    [({"seed": -1}, "seed"), ({"patients_per_arm": 0}, "patients_per_arm"),
     ({"follow_up_years": 0}, "follow_up_years"), ({"relapse": "clinical"}, "relapse"),
     ({"arms": []}, "arms: 0 entries; give at least 1"), ({"colour": "red"}, "unknown field"),
     ({"population": {"scenario": "aml-cr1", "subtypes": {"npm1": 0.5}}}, "add up to 1"),
     ({"population": {"scenario": "aml-cr1", "subtypes": {"flt3": 1.0}}}, "not a known"),
     ({"arms": [{"name": "a", "cik": {"dose_per_kg": -1}}]},
      r"arms\[0\]\.cik\.dose_per_kg = -1: must be > 0"),
     ({"arms": [{"name": "a"}, {"name": "a"}]}, "used twice")],
)
def test_spec_validation(change, message):
    base = small_spec().raw
    with pytest.raises(DataError, match=message):
        TrialSpec.from_dict({**base, **change})


def test_power_from_pool_and_cli(tmp_path):
    spec = small_spec(400)
    pool = run_trial(spec, workers=1, composition=COMPOSITION).patients
    table = power_from_pool(pool, "chemo", "cik", [20, 100], repeats=4)
    assert list(table["n_per_arm"]) == [20, 100]
    assert table["power"].between(0, 1).all()
    c = compare(pool, "chemo", "cik")
    assert c["hazard_ratio"] < 1
    with pytest.raises(DataError, match="too few"):
        power_from_pool(pool, "chemo", "cik", [200], repeats=4)


def test_cli_trial_json_outputs_and_report(tmp_path):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text((EXAMPLES / "dose-finding.toml").read_text())
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["trial", str(spec_file), "--n-per-arm", "60", "--workers",
                                 "1", "--out", str(out), "--json", "--prior", "--draws", "3",
                                 "--cohort", "40", "--arm", "CIK 1e8/kg"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert [a["name"] for a in data["arms"]] == ["chemotherapy", "CIK 1e7/kg", "CIK 5e7/kg",
                                                 "CIK 1e8/kg"]
    assert set(data["arms"][0]) == {"name", "n", "relapse_fraction", "rfs_1y", "rfs_2y",
                                    "rfs_3y", "rfs_4y", "median_rfs_months", "cure_fraction"}
    assert data["arms"][0]["rfs_4y"] is None  # beyond the 3-year follow-up
    assert set(data) == {"arms", "hazard_ratio", "hazard_ratio_ci", "logrank_p", "effect",
                         "assurance", "assurance_n_per_arm", "mc_error", "source"}
    assert data["source"]["kind"] == "prior" and data["assurance_n_per_arm"] == 60
    for m in ("delta_milestone", "delta_rmst", "log_hr"):
        lo, hi = data["effect"][m]["interval_90"]
        assert lo <= data["effect"][m]["median"] <= hi
        assert data["mc_error"][m]["within_draw"] >= 0
    for name in ("patients.parquet", "manifest.json", "summary.json", "km.png", "report.html",
                 "decision.json", "effect.png", "assurance.png", "draws.csv"):
        assert (out / name).is_file()
    assert (out / "draws" / "draws.parquet").is_file()
    decision = json.loads((out / "decision.json").read_text())
    assert decision["arms"] == {"control": "chemotherapy", "treated": "CIK 1e8/kg"}
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "dose-finding" in html
    for text in ("Assurance", "Where the defaults come from", "clinical_more M14", "Run on",
                 "overall survival at 3 years (%)"):
        assert text in html, text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["seed"] == 7
    r = CliRunner().invoke(app, ["trial", str(tmp_path / "missing.toml")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_cli_power(tmp_path):
    r = CliRunner().invoke(app, ["trial", "power", str(EXAMPLES / "aml-adjuvant-cik.toml"),
                                 "--n", "10,30", "--repeats", "3", "--workers", "1",
                                 "--json", "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["rows"]
    assert [x["n_per_arm"] for x in rows] == [10, 30]
    assert (tmp_path / "p" / "power.png").is_file()


def test_cli_run_whole_chain(tmp_path):
    spec_file = tmp_path / "s.toml"
    text = (EXAMPLES / "aml-adjuvant-cik.toml").read_text()
    spec_file.write_text(text.replace("patients_per_arm = 2000", "patients_per_arm = 50")
                         .replace("donors = 200", "donors = 10"))
    out = tmp_path / "out"
    args = ["run", str(spec_file), "--out", str(out), "--workers", "1", "--json",
            "--n-per-arm", "30", "--seed", "9", "--prior", "--draws", "2", "--cohort", "60"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert 0 <= data["trial"]["assurance"] <= 1 and data["trial"]["arms"][0]["n"] == 30
    assert "Assurance" in (out / "report.html").read_text()
    # a second run into the same folder needs --resume (no silent reuse) and then reuses it
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "--resume" in again.output
    again = CliRunner().invoke(app, [*args, "--resume"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["trial"] == data["trial"]
    assert data["killing_at_40"]["aml-blast"] > 10 * data["killing_at_40"]["normal-pbmc"]
    assert len(data["trial"]["arms"]) == 2
    for name in ("report.html", "summary.json", "culture.png", "killing.png"):
        assert (out / name).is_file()
    assert (out / "trial" / "patients.parquet").is_file()

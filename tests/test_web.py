"""The web page driven in a real headless Chromium (the operating system's package), with
the server started by the tests: every page, results against the API, a bad upload, a
download, two sessions apart, a cancelled trial or calibration that leaves no worker."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("shiny")
sync_api = pytest.importorskip("playwright.sync_api")
psutil = pytest.importorskip("psutil")

from ciksim.assays.examples import example_path  # noqa: E402
from ciksim.errors import DataError  # noqa: E402
from ciksim.schemas import formats  # noqa: E402
from ciksim.web.summaries import fmt  # noqa: E402

CHROMIUM = os.environ.get("CIKSIM_CHROMIUM") or shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
if not CHROMIUM:
    pytest.skip("no chromium (apt-get install chromium)", allow_module_level=True)
pytestmark = pytest.mark.slow
WAIT = 240_000  # ms: a job in a fresh worker process on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    port = _free_port()
    env = {**os.environ, "TMPDIR": str(root), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from ciksim.cli import main; main()",
                             "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(proc.stdout.read().decode())
            time.sleep(0.2)
    yield url, root, proc
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(server, browser):
    """A fresh page of the served app, in its own browser context (a session of its own)."""
    context, page = _open(browser, server[0])
    yield page
    context.close()


def _open(browser, url):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400,
                                                                    "height": 1000})
    page = context.new_page()
    page.set_default_timeout(WAIT)
    page.goto(url)
    # the static page is there before Shiny has bound its inputs and started the session: a
    # click or an upload before that is lost (on a busy machine, a test then waited out WAIT)
    page.wait_for_function("() => window.Shiny?.initializedPromise?.resolved()")
    return context, page


def _fill(page, values):
    for key, value in values.items():
        page.fill(f"#{key}", str(value))


def _cell(page, slot, row, col):
    rows = page.locator(f"#{slot}_done table").first.locator("tbody tr")
    return (rows.last if row == -1 else rows.nth(row)).locator("td").nth(col).inner_text(
        timeout=5000)


def _sessions(root):
    return sorted(root.glob("ciksim-web-*/session-*"))


def _workers(proc):
    return [c for c in psutil.Process(proc.pid).children(recursive=True)
            if "resource_tracker" not in " ".join(c.cmdline())]


def _cancel_leaves_no_worker(page, key, proc):
    """Cancel the running job of slot ``key``: the page says so and no worker is left."""
    page.click(f"#{key}_cancel")
    page.wait_for_selector(f"#{key}_status .ciksim-cancelled")
    _, alive = psutil.wait_procs(_workers(proc), timeout=10)
    assert alive == []


def test_every_page_runs_its_job_and_matches_the_api(page, tmp_path):
    from ciksim.jobs.culture import culture_job
    from ciksim.jobs.killing import killing_job, lysis_job
    from ciksim.jobs.patient import patient_job
    from ciksim.jobs.trial import trial_job

    # culture: the day-7 median total cells as the API computes it; a figure download
    _fill(page, {"cu_donors": 10, "cu_days": 7})
    page.click("#cu_run")
    page.wait_for_selector("#cu_done")
    api = culture_job(["cik-standard"], donors=10, days=7).summary()["rows"][-1]
    assert _cell(page, "cu", -1, 1) == fmt(api["total_cells"])
    with page.expect_download() as dl:
        page.click("#cu_dl_png")
    assert Path(dl.value.path()).read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("CIKSIM_WEB_SCREENSHOT"):
        page.screenshot(path=os.environ["CIKSIM_WEB_SCREENSHOT"], full_page=False)
    # killing: simulated assay; a bad plate shows the CLI's message; a good plate runs
    page.click("text=Killing")
    _fill(page, {"ki_donors": 10, "ki_et": "20,5"})
    page.click("#ki_run")
    page.wait_for_selector("#ki_done")
    api = killing_job("cik", "k562", et=[20, 5], donors=10).summary()["rows"][0]
    assert _cell(page, "ki", 0, 1) == fmt(api["lysis_pct"])
    bad = tmp_path / "plate.csv"
    bad.write_text(example_path("cik-vs-lak").read_text().replace("experimental", "mystery",
                                                                    1))
    with pytest.raises(DataError) as cli_error:  # the reader of `ciksim schema lysis --check`
        formats()["lysis"].reader(bad)
    page.set_input_files("#ly_file", str(bad))
    message = page.locator("#ly_upload_msg .ciksim-error")
    assert message.inner_text().strip() == str(cli_error.value).replace(str(bad), "plate.csv")
    page.set_input_files("#ly_file", str(example_path("cik-vs-lak")))
    message.wait_for(state="detached")
    page.click("#ly_run")
    page.wait_for_selector("#ly_done")
    api = lysis_job(example_path("cik-vs-lak")).summary()["lytic_units"][0]
    assert _cell(page, "ly", 0, 2) == fmt(api["lu20_per_1e7"])
    # patient: one virtual patient, outcome as the API
    page.click("text=Patient")
    page.click("#pa_run")
    page.wait_for_selector("#pa_done")
    api = patient_job().summary()
    assert _cell(page, "pa", 0, 1) == fmt(api["cure_fraction"])
    # trial: the example's arms as a form, run small; hazard ratio as the API's on the
    # saved spec; the patients table downloads on its own, as the API's
    page.click("text=Trial")
    _fill(page, {"tr_n_per_arm": 30, "tr_draws": 0})
    page.wait_for_selector("#tr_check .ciksim-valid:has-text('x 30 patients'):has-text(' 0 draws')")
    page.click("#tr_run")
    page.wait_for_selector("#tr_done")
    with page.expect_download() as dl:
        page.click("#tr_dl_toml")
    spec = Path(dl.value.path())
    api = trial_job(spec, workers=1)  # the spec as run (no draws)
    assert page.locator("#tr_done table").nth(1).locator("td").first.inner_text() == \
        fmt(api.summary()["hazard_ratio"])
    with page.expect_download() as dl:
        page.click("#tr_dl_csv")
    assert dl.value.suggested_filename == "patients.csv"
    shown = pd.read_csv(dl.value.path())
    pd.testing.assert_series_equal(shown["relapse_day"], api.patients["relapse_day"],
                                   check_names=False, check_index=False)


def test_trial_arms_are_a_form_saved_as_the_cli_spec(page, tmp_path):
    from ciksim.schemas import parse_toml
    from ciksim.trial.spec import TrialSpec

    page.click("text=Trial")
    page.select_option("#tr_example", "dose-finding")
    # the arms are re-rendered when the example changes: wait for the new four, not the
    # first arm 3 seen while the old form is being replaced
    page.wait_for_function("document.querySelectorAll('.ciksim-arm').length == 4")
    page.wait_for_selector("#tr_arm3_name")
    page.click("#tr_arm1_remove")  # CIK 1e7/kg goes
    page.wait_for_function("document.querySelectorAll('.ciksim-arm').length == 3")
    assert page.input_value("#tr_arm1_name") == "CIK 5e7/kg"
    page.click("#tr_arm_add")
    page.wait_for_selector("#tr_arm3_name")
    _fill(page, {"tr_arm3_name": "CIK 2e8 x 4", "tr_arm3_dose": "2e8", "tr_arm3_infusions": 4,
                 "tr_n_per_arm": 40, "tr_years": 2, "tr_seed": 5, "tr_draws": 0})
    page.uncheck("#tr_arm1_cik")
    _fill(page, {"tr_arm2_dose": -1})  # an impossible dose: the schema's message
    error = page.locator("#tr_check .ciksim-error")
    assert "arms[2].cik.dose_per_kg" in error.inner_text()
    _fill(page, {"tr_arm2_dose": "1e8"})
    page.wait_for_selector("#tr_check .ciksim-valid:has-text('x 40 patients, 2 years, 0 draws')")
    with page.expect_download() as dl:
        page.click("#tr_save")
    saved = Path(dl.value.path())
    spec = TrialSpec.load(saved)  # what `ciksim trial FILE.toml` reads
    assert [a.name for a in spec.arms] == ["chemotherapy", "CIK 5e7/kg", "CIK 1e8/kg",
                                           "CIK 2e8 x 4"]
    assert spec.arms[1].cik is None and spec.arms[3].cik.dose_per_kg == 2e8
    assert spec.arms[3].cik.infusions == 4
    assert (spec.patients_per_arm, spec.follow_up_years, spec.seed) == (40, 2, 5)
    assert spec.subtype_mix["npm1"] == 0.5, "what the form does not show is kept"
    # a bad spec upload shows the CLI's message; the form keeps the last good spec
    bad = tmp_path / "bad-spec.toml"
    bad.write_text(saved.read_text().replace("dose_per_kg = 200000000.0",
                                             "dose_per_kg = -2.0"))
    with pytest.raises(DataError) as cli_error:
        TrialSpec.load(bad)
    page.set_input_files("#tr_file", str(bad))
    message = page.locator("#tr_upload_msg .ciksim-error")
    assert message.inner_text().strip() == str(cli_error.value).replace(str(bad),
                                                                       "bad-spec.toml")
    page.wait_for_function("document.querySelectorAll('.ciksim-arm').length == 4")
    assert parse_toml(saved.read_text(), origin="x")["arms"][3]["cik"]["infusions"] == 4
    # the advanced TOML box: a broken text is not loaded, and says why
    page.click("text=Advanced: the whole spec as TOML")
    page.fill("#tr_spec", "name = \n")
    page.click("#tr_apply")
    page.wait_for_selector("#tr_check .ciksim-error:has-text('not loaded')")
    assert "specification: not valid TOML" in page.locator("#tr_check").inner_text()
    page.wait_for_function("document.querySelectorAll('.ciksim-arm').length == 4")


def test_allo_trial_arms_are_donor_cells_and_run_as_the_api(page):
    from ciksim.jobs.trial import trial_job
    from ciksim.trial.spec import TrialSpec

    page.click("text=Trial")
    page.select_option("#tr_example", "cik-vs-dli")
    page.wait_for_selector("#tr_arm1_cells")
    assert page.input_value("#tr_arm1_cells") == "cik"
    assert page.locator("#tr_arm1_first").count() == 0, "triggered: no fixed first day"
    assert not page.is_checked("#tr_arm0_keepis"), "withdrawn by default"
    page.check("#tr_arm0_keepis")
    _fill(page, {"tr_arm1_dose": "2e6", "tr_n_per_arm": 20, "tr_draws": 0})
    page.wait_for_selector("#tr_check .ciksim-valid:has-text('x 20 patients, 2 years, 0 draws')")
    with page.expect_download() as dl:
        page.click("#tr_save")
    spec = TrialSpec.load(Path(dl.value.path()))
    assert spec.setting == "allo" and spec.patients_per_arm == 20
    assert spec.raw["arms"][0]["donor_cells"]["immunosuppression"] == "kept"
    assert "immunosuppression" not in spec.raw["arms"][1]["donor_cells"]
    assert spec.raw["arms"][1]["donor_cells"]["dose_per_kg"] == 2e6
    assert spec.raw["arms"][1]["donor_cells"]["when"]["watch"] == "mrd", "trigger kept"
    page.click("#tr_run")
    page.wait_for_selector("#tr_done")
    api = trial_job(Path(dl.value.path()), workers=1).summary()
    assert page.locator("#tr_done table").nth(1).locator("td").first.inner_text() == \
        fmt(api["hazard_ratio"])


def test_calibration_page_runs_cancels_and_shows_the_shipped_posterior(server, page, tmp_path):
    from ciksim.evidence import read_cohort
    from ciksim.jobs.calibration import calibration_job, posterior_job

    _, _, proc = server
    page.click("text=Calibration")
    # the shipped posterior, as the API shows it; its summary table downloads as CSV
    page.click("#po_run")
    page.wait_for_selector("#po_done")
    api = posterior_job().summary()["parameters"][0]
    assert _cell(page, "po", 0, 2) == fmt(api["median"])
    with page.expect_download() as dl:
        page.click("#po_dl_csv")
    assert pd.read_csv(dl.value.path())["median"].iloc[0] == pytest.approx(api["median"])
    with page.expect_download() as dl:
        page.click("#po_dl_svg")
    assert b"<svg" in Path(dl.value.path()).read_bytes()[:1000]
    # a bad cohort shows the CLI's message
    bad = tmp_path / "cohort.csv"
    bad.write_text("patient,arm,time_months,event\n1,cik,3,relapse\n2,cik,4,cured\n")
    with pytest.raises(DataError) as cli_error:
        read_cohort(bad)
    page.set_input_files("#co_file", str(bad))
    message = page.locator("#co_upload_msg .ciksim-error")
    assert message.inner_text().strip() == str(cli_error.value).replace(str(bad),
                                                                       "cohort.csv")
    # a large calibration shows its progress and is cancelled with its worker
    _fill(page, {"ca_particles": 30, "ca_generations": 8})
    page.click("#ca_run")
    page.wait_for_selector("#ca_status .progress-bar:has-text('generation')")
    _cancel_leaves_no_worker(page, "ca", proc)
    # a small one: the posterior as the API's with the same settings
    _fill(page, {"ca_particles": 6, "ca_generations": 1, "ca_ppc_draws": 10, "ca_seed": 3})
    page.click("#ca_run")
    page.wait_for_selector("#ca_done")
    api = calibration_job(particles=6, generations=1, ppc_draws=10, seed=3,
                          out=tmp_path / "calibration").summary()["parameters"][0]
    assert _cell(page, "ca", 0, 2) == fmt(api["median"])
    # the allo model's shipped posterior
    page.check("input[name=ca_model][value=allo]")
    page.click("#po_run")
    first = posterior_job(model="allo").summary()["parameters"][0]
    page.wait_for_selector(f"#po_done td:text-is('{first['parameter']}')")
    assert _cell(page, "po", 0, 2) == fmt(first["median"])


def test_fit_page_fits_uploaded_counts(page, tmp_path):
    from ciksim.inference.culture import simulated_counts
    from ciksim.jobs.fit import culture_fit_job

    counts = tmp_path / "counts.csv"
    simulated_counts({"phi_max": 0.6, "phi_min": 0.2, "k_conv": 0.03}, days=[0, 3, 7],
                     seed=5).to_csv(counts, index=False)
    page.click("text=Fit")
    # a bad counts file shows the message of the CLI's reader of the counts format
    bad = tmp_path / "bad-counts.csv"
    bad.write_text("donor,day,quantity,value\nA,0,total_cells,1e8\nA,3,cd3_pct,120\n")
    with pytest.raises(DataError) as cli_error:
        formats()["counts"].reader(bad)
    page.set_input_files("#fi_file", str(bad))
    message = page.locator("#fi_upload_msg .ciksim-error")
    assert message.inner_text().strip() == str(cli_error.value).replace(str(bad),
                                                                       "bad-counts.csv")
    assert "column value" in message.inner_text() and "0-100" in message.inner_text()
    page.set_input_files("#fi_file", str(counts))
    message.wait_for(state="detached")
    page.wait_for_selector("#fi_file_progress:has-text('Upload complete')")
    _fill(page, {"fi_steps": 20, "fi_walkers": 24})
    page.click("#fi_run")
    page.wait_for_selector("#fi_done")
    api = culture_fit_job(counts, steps=20, walkers=24).summary()["estimates"][0]
    assert _cell(page, "fi", 0, 2) == fmt(api["estimate"])


def test_allo_page_simulates_a_transplant_patient_as_the_api(page):
    from ciksim.jobs.allo import allo_patient_job, dose_events

    page.click("text=Allo")
    # a malformed infusion schedule shows the API's message
    page.select_option("#al_donor", "unrelated")
    _fill(page, {"al_dli_dose": "1e7", "al_dli_days": "60;90"})
    page.click("#al_run")
    with pytest.raises(DataError) as api_error:
        dose_events("dli", ["1e+07@60;90"])
    assert page.locator("#al_status .ciksim-error").inner_text().strip() == \
        str(api_error.value)
    # one patient with a DLI: its course and endpoints as the API's
    _fill(page, {"al_dli_days": "60,90", "al_years": 1})
    page.click("#al_run")
    page.wait_for_selector("#al_done")
    api = allo_patient_job(donor="unrelated", conditioning="mac", dli=["1e+07@60,90"],
                           years=1.0).summary()
    shown = page.locator("#al_done table").nth(1).locator("td")
    assert shown.nth(0).inner_text() == fmt(api["median_peak_grade"])
    assert page.locator("#al_done img").count() == 1
    page.select_option("#al_table", "allo_course")
    with page.expect_download() as dl:
        page.click("#al_dl_parquet")
    course = pd.read_parquet(dl.value.path())
    assert len(course) > 10 and "gvhd_grade" in " ".join(course.columns)


def test_two_sessions_apart_and_a_cancelled_trial_leaves_no_worker(server, browser):
    url, root, proc = server
    before = set(_sessions(root))
    a, page_a = _open(browser, url)
    b, page_b = _open(browser, url)
    _fill(page_a, {"cu_donors": 3, "cu_days": 3})
    page_a.click("#cu_run")
    page_b.click("text=Killing")
    _fill(page_b, {"ki_donors": 3})
    page_b.click("#ki_run")
    page_a.wait_for_selector("#cu_done")
    page_b.wait_for_selector("#ki_done")
    mine = [s for s in _sessions(root) if s not in before]
    assert len(mine) == 2
    contents = sorted(sorted(p.name.split("-")[0] for p in s.iterdir()) for s in mine)
    assert contents == [["cu"], ["ki"]], "each session sees only its own jobs"
    session_a = next(s for s in mine if any(p.name.startswith("cu") for p in s.iterdir()))
    a.close()
    for _ in range(100):
        if not session_a.exists():
            break
        time.sleep(0.2)
    assert not session_a.exists(), "a session's folder is deleted when it ends"
    assert all(s.exists() for s in mine if s != session_a)
    page_b.click("text=Trial")
    _fill(page_b, {"tr_n_per_arm": 200000})
    page_b.wait_for_selector("#tr_check .ciksim-valid:has-text('x 200000 patients')")
    page_b.click("#tr_run")
    page_b.wait_for_selector("#tr_status .progress")
    assert _workers(proc), "the trial runs in a worker process"
    _cancel_leaves_no_worker(page_b, "tr", proc)
    b.close()


def test_uploads_over_the_limit_are_refused_before_storing(server):
    from ciksim.web.session import MAX_UPLOAD_BYTES

    url, _, _ = server
    req = urllib.request.Request(f"{url}/session/x/upload/y", data=b"x" * 16, method="POST",
                                 headers={"Content-Length": str(MAX_UPLOAD_BYTES + 1)})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 413

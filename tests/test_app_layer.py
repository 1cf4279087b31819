"""The application layer (ciksim.jobs) and the layering rules between library and faces."""

import ast
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ciksim.assays.examples import example_path
from ciksim.cli import app
from ciksim.data import builtin_names
from ciksim.errors import DataError
from ciksim.jobs.culture import culture_job
from ciksim.jobs.killing import killing_job, lysis_job

SRC = Path(__file__).resolve().parents[1] / "src" / "ciksim"
HEAVY = ("numpy", "pandas", "scipy", "pint", "matplotlib", "numba")
WEB = ("shiny", "starlette", "uvicorn", "fastapi", "panel", "flask")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every ``from module import names`` and ``import module``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


def test_library_never_imports_a_face_faces_never_each_other_no_private_names():
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        for module, names in _imports(path):
            if rel[0] not in ("cli", "web"):
                assert not module.startswith(("ciksim.cli", "ciksim.web")), (path, module)
            if rel[0] == "web":
                assert not module.startswith("ciksim.cli"), (path, module)
            if rel[0] == "cli" and rel[-1] != "serve.py":  # serve starts the web page
                assert not module.startswith("ciksim.web"), (path, module)
            # a package's own private submodules (engines/_random.py) are its business
            own_package = path.parent == SRC.joinpath(*module.split(".")[1:])
            if module.startswith("ciksim") and not own_package:
                private = [n for n in names if n.startswith("_") and n != "__version__"]
                assert not private, (path, module, private)


def test_starting_the_cli_imports_no_heavy_module_and_no_web_framework():
    code = ("import sys, ciksim.cli; print(' '.join(sorted({m.split('.')[0] for m in "
            "sys.modules})))")
    loaded = set(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout.split())
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert not loaded & set(WEB), loaded & set(WEB)


def test_culture_job_summary_is_the_cli_json_and_write_is_one_folder(tmp_path):
    res = culture_job(["cik-gmp"], donors=5, days=7, seed=3)
    r = CliRunner().invoke(app, ["culture", "--protocol", "cik-gmp", "--donors", "5",
                                 "--days", "7", "--seed", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == json.loads(json.dumps(res.summary()))
    files = res.write(tmp_path / "c", "parquet", ("png", "svg"))
    assert sorted(files) == sorted(p.name for p in (tmp_path / "c").iterdir())
    assert {"culture.png", "culture.svg", "culture_summary.parquet", "report.html"} <= set(files)
    table = pd.read_parquet(tmp_path / "c" / "culture_summary.parquet")
    assert table["total_cells"].iloc[-1] == res.summary()["rows"][-1]["total_cells"]
    html = (tmp_path / "c" / "report.html").read_text()
    assert "cik-gmp" in html and "data:image/png;base64," in html
    assert [p.name for p in tmp_path.iterdir()] == ["c"], "staging folder left behind"


def test_a_failing_write_leaves_nothing(tmp_path):
    res = killing_job("cik", "aml-blast", et=[10], donors=3)
    with pytest.raises(DataError, match="csv or parquet"):
        res.write(tmp_path / "k", "xlsx")
    assert list(tmp_path.iterdir()) == []


def test_saved_inputs_rerun_from_the_cli(tmp_path):
    from ciksim.jobs.registry import inputs_toml

    (tmp_path / "plate.csv").write_text(example_path("cik-vs-lak").read_text())
    f = tmp_path / "lysis.toml"
    f.write_text(inputs_toml("lysis", {"path": "plate.csv", "hours": 4.0}))
    r = CliRunner().invoke(app, ["rerun", str(f), "--json"])
    assert r.exit_code == 0, r.output
    api = lysis_job(example_path("cik-vs-lak"), hours=4.0).summary()
    assert json.loads(r.output) == json.loads(json.dumps(api))
    f.write_text('job = "lysis"\n[inputs]\npath = "plate.csv"\ncolour = "red"\n')
    r = CliRunner().invoke(app, ["rerun", str(f)])
    assert r.exit_code == 2 and "colour not an input of job 'lysis'" in r.output


def test_the_web_page_trial_examples_are_the_shipped_examples():
    examples = Path(__file__).resolve().parents[1] / "examples"
    for name in builtin_names("trials"):
        shipped = (resources.files("ciksim.data") / "trials" / f"{name}.toml").read_text()
        assert shipped == (examples / f"{name}.toml").read_text(), name


_EVIDENCE = """version = "test-1"

[[studies]]
id = "small-matched"
source = "test"
setting = "donor-after-chemotherapy"
design = "matched-controls"
endpoint = { kind = "relapse", at_months = 12.0 }

[[studies.arms]]
name = "cik"
n = 6
events = 2
product = { culture_protocol = "cik-gmp" }
dose_per_kg = 5e7
infusions = 2
interval_days = 21
first_day = 30

[[studies.arms]]
name = "control"
n = 6
events = 4
"""


@pytest.mark.slow
def test_saved_calibration_inputs_rerun_into_the_out_folder(tmp_path):
    from ciksim.jobs.calibration import calibration_job
    from ciksim.jobs.registry import inputs_toml

    (tmp_path / "evidence.toml").write_text(_EVIDENCE)
    f = tmp_path / "calibration.toml"
    f.write_text(inputs_toml("calibration", {"evidence": "evidence.toml", "particles": 3,
                                             "generations": 1, "ppc_draws": 10, "seed": 4}))
    r = CliRunner().invoke(app, ["rerun", str(f)])
    assert r.exit_code == 2 and "give --out" in r.output
    r = CliRunner().invoke(app, ["rerun", str(f), "--out", str(tmp_path / "cal"), "--json"])
    assert r.exit_code == 0, r.output
    api = calibration_job(evidence=tmp_path / "evidence.toml", particles=3, generations=1,
                          ppc_draws=10, seed=4, out=tmp_path / "api").summary()
    got = json.loads(r.stdout)  # pyabc logs to stderr
    assert got["parameters"] == api["parameters"] and got["checks"] == api["checks"]
    assert (tmp_path / "cal" / "posterior.parquet").is_file()
    with pytest.raises(DataError, match="not an input"):
        inputs_toml("calibration", {"out": "somewhere"})

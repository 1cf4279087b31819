"""The application layer (ciksim.jobs) and the layering rules between library and faces."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ciksim.cli import app
from ciksim.errors import DataError
from ciksim.jobs.culture import culture_job
from ciksim.jobs.killing import killing_job

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


def test_library_never_imports_a_face_and_no_private_names_cross_modules():
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        for module, names in _imports(path):
            if rel[0] not in ("cli", "web"):
                assert not module.startswith(("ciksim.cli", "ciksim.web")), (path, module)
            if rel[0] == "cli":
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

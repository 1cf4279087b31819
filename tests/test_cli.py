import json

import pytest
from typer.testing import CliRunner

from ciksim import __version__
from ciksim.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_version_and_system():
    r = invoke("--version")
    assert r.exit_code == 0 and __version__ in r.output
    r = invoke("system")
    assert r.exit_code == 0
    for pkg in ("python", "numpy", "scipy", "pint"):
        assert pkg in r.output


def test_culture_json_shape():
    r = invoke("culture", "--protocol", "cik-gmp", "--donors", "20", "--days", "14", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["protocol"] == "cik-gmp"
    assert data["days"] == list(range(15))
    row = data["rows"][14]
    assert "day" in row
    for name in ("total_cells", "total_fold", "cd3cd56_pct", "cd3cd56_fold", "cd3_pct",
                 "nk_pct", "il2_iu_ml"):
        assert {name, name + "_p05", name + "_p95"} <= set(row)
    assert row["total_cells_p05"] <= row["total_cells"] <= row["total_cells_p95"]


def test_culture_compare_writes_table_data_and_figure(tmp_path):
    out = tmp_path / "run"
    r = invoke("culture", "--compare", "cik-standard", "lak", "--donors", "10",
               "--out", str(out), "--format", "parquet")
    assert r.exit_code == 0, r.output
    assert "cik-standard" in r.output and "lak" in r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["culture.png", "culture_donors.parquet", "culture_run.json",
                     "culture_summary.parquet", "report.html"]
    import pandas as pd

    summary = pd.read_parquet(out / "culture_summary.parquet")
    assert set(summary["protocol"]) == {"cik-standard", "lak"}
    assert not list(tmp_path.glob(".run.*")), "staging folder left behind"


def test_culture_plan_text_and_json():
    r = invoke("culture", "plan", "--dose", "5e6", "--per", "kg", "--weight", "70",
               "--infusions", "3", "--donors", "20")
    assert r.exit_code == 0, r.output
    assert "median donor reaches it on day" in r.output
    r = invoke("culture", "plan", "--dose", "5e7", "--weight", "70", "--infusions", "3",
               "--donors", "20", "--json")
    data = json.loads(r.output)
    assert data["required_cells"] == pytest.approx(1.05e10)
    assert data["day_median"] is None  # 1e8 PBMC are not enough for 1e10 CD3+CD56+ cells
    assert data["start_needed_median"] > 1e8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["culture", "--protocol", "cik-turbo"], "unknown protocol 'cik-turbo'"),
        (["culture", "--start-cells", "-1e8"], "start_cells"),
        (["culture", "--start-cells", "many"], "not a number"),
        (["culture", "--days", "-2"], "days"),
        (["culture", "plan", "--dose", "-5"], "dose"),
        (["culture", "plan"], "give --dose"),
        (["culture", "lak"], "did you mean --compare"),
        (["culture", "--format", "xlsx"], "csv or parquet"),
    ],
)
def test_bad_input_exits_2_without_traceback_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    r = invoke(*args, "--out", str(out)) if args[1] != "plan" else invoke(*args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_user_protocol_file(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text(
        'name = "mine"\nharvest_day = 10\n'
        '[[events]]\nday = 1\naction = "set"\nvalues = { OKT3 = "50 ng/mL", IL2 = "500 IU/mL" }\n'
    )
    r = invoke("culture", "--protocol", str(f), "--donors", "5", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["protocol"] == "mine" and data["days"][-1] == 10
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[events]]\nday = 1\naction = "set"\n'
                   'values = { IL2 = "5 ng/mL" }\n')
    r = invoke("culture", "--protocol", str(bad))
    assert r.exit_code == 2 and "IU/mL" in r.output


def _verbs(cmd, path=()):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _verbs(sub, (*path, name))
    else:
        yield " ".join(path), cmd


def test_shared_options_are_declared_once():
    """A verb's --seed, --format, --hours, --scheduler or --targets-per-well with a default is
    one of the shared declarations in ``cli.options`` (an optional override, default None, may
    say what it overrides)."""
    from typing import get_args

    import typer.main

    from ciksim.cli import options

    shared = {info.help for name in dir(options) if name[0].isupper()
              for info in get_args(getattr(options, name))[1:]}
    flags = {"--seed", "--format", "--hours", "--scheduler", "--targets-per-well"}
    seen = set()
    for name, cmd in _verbs(typer.main.get_command(app)):
        for p in cmd.params:
            if flags & set(p.opts) and p.default is not None:
                assert p.help in shared, (name, p.opts, p.help)
                seen.add((name, p.opts[0]))
    assert {("rerun", "--format"), ("lysis", "--hours"), ("culture", "--seed")} <= seen


def test_fit_culture_defaults_are_the_librarys():
    """``fit culture``'s --steps and --walkers defaults are the library's and the job's."""
    import inspect

    import typer.main

    from ciksim.inference import FIT_STEPS, FIT_WALKERS
    from ciksim.inference.culture import fit_culture
    from ciksim.jobs.fit import culture_fit_job

    cmd = dict(_verbs(typer.main.get_command(app)))["fit culture"]
    cli = {p.name: p.default for p in cmd.params}
    for func in (fit_culture, culture_fit_job):
        lib = inspect.signature(func).parameters
        assert (cli["steps"], cli["walkers"]) == (lib["steps"].default, lib["walkers"].default)
    assert (cli["steps"], cli["walkers"]) == (FIT_STEPS, FIT_WALKERS)
    assert inspect.signature(fit_culture).parameters["burn"].default == FIT_STEPS // 4

"""Input schemas: strict types, ranges from the declarations, named limits, one CikError
naming the path, the value and the fix; the bounded unit grammar; encodings; JSON Schema."""

from __future__ import annotations

import json

import pytest

from ciksim.analysis.culture import run_culture
from ciksim.errors import CikError, DataError, ProtocolError, UnitError
from ciksim.models.patient import Scenario, patient_model
from ciksim.protocol import Protocol
from ciksim.schemas import LIMITS, formats, json_schema
from ciksim.trial.spec import TrialSpec
from ciksim.unit_grammar import check_quantity_text, check_unit_text
from ciksim.units import convert

SPEC = """name = "t"
patients_per_arm = 10
[population]
scenario = "aml-cr1"
[[arms]]
name = "chemo"
[[arms]]
name = "cik"
cik = { dose_per_kg = 5e7, infusions = 3 }
"""


def spec_with(tmp_path, text):
    p = tmp_path / "spec.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("text", "ok"),
    [("500 IU/mL", True), ("2e6 cells/mL", True), ("1 1/hour", True), ("0.5", True),
     ("5 (cells)/(mL)", True), ("1 IU/(mL*day)", True), ("1 m^2", True),
     ("3 ** 9 ** 9 IU/mL", False), ("1 m**2**9", False), ("((((((1 m))))))", False),
     ("1.5.3 mL", False), ("abc", False), ("1 " + "m*" * 60 + "m", False), ("", False)],
)
def test_unit_grammar_is_bounded(text, ok):
    if ok:
        check_quantity_text(text, field="f")
    else:
        with pytest.raises(UnitError, match="f: cannot read"):
            check_quantity_text(text, field="f")


def test_exponent_tower_is_refused_before_pint():
    with pytest.raises(UnitError, match=r"'3 \*\* 9 \*\* 9 IU/mL'"):
        convert("3 ** 9 ** 9 IU/mL", "IU/mL", field="IL2")
    with pytest.raises(UnitError):
        check_unit_text("cells ** 9 ** 9", field="unit")
    assert convert("2e6 cells/mL", "cells/mL", field="x") == 2e6


@pytest.mark.parametrize(
    ("edit", "message"),
    [("il2_support", r"arms\[1\]\.cik\.il2_support = 'no': input should be a valid boolean"),
     ("infusions", r"arms\[1\]\.cik\.infusions = 1\.5: .*whole number"),
     ("relapse_true", r"relapse = True"),
     ("relapse_list", r"relapse = \[1\]"),
     ("cik_int", r"arms\[1\]\.cik = 5: .*table"),
     ("weight", r"population\.parameters\.weight = -70: outside the plausible range"),
     ("T_double", r"population\.parameters\.T_double = -5: outside the plausible range"),
     ("logkill", r"population\.parameters\.logkill_L = -1: outside the plausible range"),
     ("variability_nan", r"population\.variability\.weight = nan: .*finite"),
     ("years", r"follow_up_years = 1e\+300: exceeds the limit max_years = 100"),
     ("patients", r"patients_per_arm = 2000000000: exceeds the limit max_patients"),
     ("unit_tower", r"population\.parameters\.weight = '3 \*\* 9 \*\* 9 kg'")],
)
def test_trial_spec_silent_acceptances_are_errors(tmp_path, edit, message):
    text = {
        "il2_support": SPEC.replace("infusions = 3", 'infusions = 3, il2_support = "no"'),
        "infusions": SPEC.replace("infusions = 3", "infusions = 1.5"),
        "relapse_true": SPEC.replace('name = "t"', 'name = "t"\nrelapse = true'),
        "relapse_list": SPEC.replace('name = "t"', 'name = "t"\nrelapse = [1]'),
        "cik_int": SPEC.replace("cik = { dose_per_kg = 5e7, infusions = 3 }", "cik = 5"),
        "weight": SPEC.replace('scenario = "aml-cr1"',
                               'scenario = "aml-cr1"\nparameters = { weight = -70 }'),
        "T_double": SPEC.replace('scenario = "aml-cr1"',
                                 'scenario = "aml-cr1"\nparameters = { T_double = -5 }'),
        "logkill": SPEC.replace('scenario = "aml-cr1"',
                                'scenario = "aml-cr1"\nparameters = { logkill_L = -1 }'),
        "variability_nan": SPEC.replace('scenario = "aml-cr1"',
                                        'scenario = "aml-cr1"\nvariability = { weight = nan }'),
        "years": SPEC.replace('name = "t"', 'name = "t"\nfollow_up_years = 1e300'),
        "patients": SPEC.replace("patients_per_arm = 10", "patients_per_arm = 2000000000"),
        "unit_tower": SPEC.replace('scenario = "aml-cr1"', 'scenario = "aml-cr1"\n'
                                   'parameters = { weight = "3 ** 9 ** 9 kg" }'),
    }[edit]
    with pytest.raises(DataError, match=message) as info:
        TrialSpec.load(spec_with(tmp_path, text))
    assert "\n" not in str(info.value)


def test_valid_spec_with_quantity_and_bom(tmp_path):
    p = tmp_path / "spec.toml"
    p.write_bytes("\ufeff".encode() + SPEC.replace(
        'scenario = "aml-cr1"', 'scenario = "aml-cr1"\nparameters = { weight = "80 kg" }')
        .encode())
    spec = TrialSpec.load(p)
    assert spec.scenario.parameters["weight"] == 80.0
    assert [a.cik is not None for a in spec.arms] == [False, True]


def test_encoding_and_nesting_errors(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_bytes(b'name = "x"\n\xff\xfe\x00 garbage')
    with pytest.raises(DataError, match=r"line 2: not UTF-8 text .*save the file as UTF-8"):
        TrialSpec.load(p)
    p.write_text("x = " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(DataError, match="nested more than 20 levels"):
        TrialSpec.load(p)
    with pytest.raises(DataError, match="does not exist"):
        TrialSpec.load(tmp_path / "missing.toml")
    with pytest.raises(DataError, match="folder"):
        TrialSpec.load(tmp_path)


@pytest.mark.parametrize(
    ("events", "error", "message"),
    [("events = 5", ProtocolError, r"events = 5: .*array"),
     ('[[events]]\nevery = 1e-4\nfrom = 0\nuntil = 10\naction = "harvest"', ProtocolError,
      r"events\[0\]\.every = 0\.0001: must be >= 0\.01"),
     ('[[events]]\nevery = 0.01\nfrom = 0\nuntil = 1000\naction = "harvest"', ProtocolError,
      "max_events"),
     ('[[events]]\nday = 1e300\naction = "harvest"', ProtocolError, "max_protocol_day"),
     ('[parameters]\nseed_density = 1e300', ProtocolError,
      r"parameters\.seed_density = 1e\+300: outside the plausible range"),
     ('[[events]]\nday = 1\naction = "split"\nmax_density = "1e300 cells/mL"\n'
      'target_density = "1e6 cells/mL"', ProtocolError, "max_density")],
)
def test_protocol_limits(tmp_path, events, error, message):
    p = tmp_path / "p.toml"
    p.write_text(f'name = "p"\n{events}\n')
    with pytest.raises(error, match=message):
        run_culture(Protocol.load(p), donors=1, days=2)


def test_scenario_relapse_container_types(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('name = "s"\nrelapse_threshold = true\n')
    with pytest.raises(DataError, match=r"relapse_threshold = True"):
        Scenario.load(p)


def test_every_format_exports_json_schema_and_reads_its_example(tmp_path):
    fmts = formats()
    assert set(fmts) >= {"protocol", "scenario", "trial", "target", "lysis", "counts"}
    for name, fmt in fmts.items():
        schema = json_schema(name)
        assert schema["title"] == f"ciksim {name}"
        json.dumps(schema)
        p = tmp_path / f"example.{fmt.kind}"
        p.write_text(fmt.example, encoding="utf-8")
        fmt.reader(p)
    trial = json_schema("trial")
    weight = trial["$defs"]["PatientParameters"]["properties"]["weight"]
    declared = patient_model().parameter_by_name["weight"]
    assert weight["anyOf"][0]["anyOf"][0]["minimum"] == declared.low  # from the declaration
    assert trial["properties"]["follow_up_years"]["maximum"] == LIMITS["max_years"].value
    with pytest.raises(CikError, match="unknown format"):
        json_schema("nope")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"workers": -1}, r"workers = -1: must be >= 1"),
     ({"workers": 0}, r"workers = 0: must be >= 1"),
     ({"chunk_size": 0}, r"chunk_size = 0: must be >= 1"),
     ({"scheduler": "garbage"}, "not a scheduler address"),
     ({"composition": {"f_cik": 0.7, "f_t": 0.5, "f_nk": 0.1}}, "add up to more than 1")],
)
def test_trial_input_errors_leave_no_files(tmp_path, kwargs, message):
    """Half-written outputs: a bad option or product left manifest.json and chunks/."""
    from ciksim.trial.runner import run_trial

    spec = TrialSpec.load(spec_with(tmp_path, SPEC))
    out = tmp_path / "o"
    good = {"f_cik": 0.5, "f_t": 0.45, "f_nk": 0.05}
    with pytest.raises(DataError, match=message):
        run_trial(spec, out=out, **{"composition": good, **kwargs})
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="names an existing file"):
        run_trial(spec, out=tmp_path / "file", composition=good)


def test_cli_error_is_one_literal_line(tmp_path):
    """The fix text keeps its brackets (rich markup must not eat ``[a, b]``), and the error
    comes before any progress bar."""
    from typer.testing import CliRunner

    from ciksim.cli import app

    p = tmp_path / "s.toml"
    p.write_text('name = "s"\nevents = 5\n')
    r = CliRunner().invoke(app, ["schema", "scenario", "--check", str(p)])
    assert r.exit_code == 2
    assert r.stderr.splitlines() == [f"error: {p}: events = 5: input should be a valid list; "
                                     "write an array: [a, b] or [[name]] tables"]
    spec = tmp_path / "t.toml"
    spec.write_text(SPEC.replace('name = "t"', 'name = "t"\nrelapse = [1]'))
    r = CliRunner().invoke(app, ["trial", str(spec), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "o").exists()


def test_user_text_in_figures_is_literal(tmp_path):
    """``$...$`` in an arm, target or effector name is not matplotlib mathtext."""
    from ciksim.io import staged_output
    from ciksim.report.plots import pyplot

    fig, ax = pyplot().subplots()
    ax.plot([1, 2], [1, 2], label="$x^{99999999}$")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("arm $\\frac{1}{0}$")
    with staged_output(tmp_path / "o") as stage:
        stage.figure(fig, "f")
    assert (tmp_path / "o" / "f.png").is_file()
    assert not ax.get_legend().get_texts()[0].get_parse_math()


@pytest.mark.parametrize(
    ("text", "message"),
    [("patient,arm,time_months,event,notes\nP1,a,3,relapse,x\n", "unknown column.*'notes'"),
     ("patient,arm,time_months,event,mrd_m3\nP1,a,3,relapse,-1\n", "column mrd_m3: '-1' must"),
     ("patient,arm,time_months,event,mrd_m3\nP1,a,3,relapse,high\n", "is not a number"),
     ("patient,arm,time_months,event\nP1,a,3,relapse\nP1,a,5,death\n", "repeated id 'P1'"),
     ("patient,arm,time_months,event\nP1,a,nan,relapse\n", "column time_months: 'nan' is not"),
     ("patient,arm,time_months,event\nP1,a,3,relapsed\n", "unknown label 'relapsed'"),
     ("patient,arm,time_months,event\nP1,,3,relapse\n", "column arm: name the patient's arm"),
     (b"patient,arm,time_months,event\nP1,a,3,\xff\xfe\n", "UTF-8")],
)
def test_cohort_csv_is_a_schema_checked_format(tmp_path, text, message):
    """The user cohort CSV is a registered format: read by its schema (extra columns other
    than mrd... are refused, not ignored), listed by ``ciksim schema``."""
    from ciksim.evidence import read_cohort

    assert "cohort" in formats()
    p = tmp_path / "cohort.csv"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError, match=message):
        read_cohort(p)
    ok = tmp_path / "ok.csv"
    ok.write_text("patient,arm,time_months,event,mrd_m3\nP1,a,3,Relapse,1e-3\nP2,a,9,censored,\n")
    assert read_cohort(ok) == {"a": [(3.0, "relapse"), (9.0, "censored")]}


@pytest.mark.parametrize(("data", "message"),
                         [(b"x = " + b"[" * 3000 + b"]" * 3000, "nested more than 20 levels"),
                          (b'name = "s"\n\xff\xfe garbage', "line 2: not UTF-8 text")])
def test_patient_scenario_and_rerun_files_deep_or_binary_are_one_error(tmp_path, data,
                                                                        message):
    """``patient --scenario`` (its allo sniff) and ``rerun`` read TOML through the checked
    reader: a 3,000-deep file or a binary one is one error line, not a RecursionError or
    UnicodeDecodeError traceback (found by benchmarks/hostile.py)."""
    from typer.testing import CliRunner

    from ciksim.cli import app

    p = tmp_path / "d.toml"
    p.write_bytes(data)
    for argv in (["patient", "--scenario", str(p), "--replicates", "2", "--years", "0.1"],
                 ["rerun", str(p), "--out", str(tmp_path / "o")]):
        r = CliRunner().invoke(app, argv)
        assert r.exit_code == 2, (argv, r.output, r.exception)
        assert isinstance(r.exception, SystemExit)
        assert r.stderr.splitlines() == [r.stderr.splitlines()[0]]
        assert message in r.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["d.toml"]


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("donor", 'name = "x"\nsource = "assumed"\nparameters = 5\n', "parameters = 5"),
    ("donor", 'name = 5\nsource = ["a"]\n', "name = 5"),
    ("study", '[study]\nid = "x"\nsetting = "autologous-after-chemotherapy"\n'
              'design = "randomised"\narms = 5\n', "study.arms = 5"),
    ("study", '[study]\nid = "x"\narms = [5]\n', "study.arms[0] = 5"),
    ("study", '[study]\nid = "x"\nsetting = "autologous-after-chemotherapy"\n'
              'design = "single-arm"\n[[study.arms]]\nname = "cik"\n'
              '[[study.arms]]\nname = "control"\n', "design single-arm takes one arm")])
def test_donor_and_study_files_are_checked_by_their_schemas(tmp_path, kind, text, message):
    """A starting-material file (``culture --donor``) and a cohort's study file
    (``calibrate patient --study``) were checked by hand: ``parameters = 5`` or ``arms = 5``
    was a TypeError traceback and ``name = 5`` was taken as the name "5". Both are schemas
    now (in docs/formats.md); a bad file is one error line, before any work."""
    from typer.testing import CliRunner

    from ciksim.cli import app

    p = tmp_path / f"{kind}.toml"
    p.write_text(text, encoding="utf-8")
    cohort = tmp_path / "c.csv"
    cohort.write_text("patient,arm,time_months,event\nP1,cik,10,relapse\nP2,control,5,"
                      "censored\n", encoding="utf-8")
    out = tmp_path / "o"
    argv = (["culture", "--donor", str(p), "--donors", "2", "--days", "2", "--out", str(out)]
            if kind == "donor" else
            ["calibrate", "patient", "--add-cohort", str(cohort), "--study", str(p),
             "--particles", "10", "--out", str(out)])
    for args in (argv, ["schema", kind, "--check", str(p)]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2, (args, r.output, r.exception)
        assert isinstance(r.exception, SystemExit)
        assert r.stderr.splitlines() == [r.stderr.splitlines()[0]]
        assert message in r.stderr
    assert not out.exists()


@pytest.mark.parametrize(("edit", "message"), [
    (("n = 11", 'n = "11"'), "field arms[0].n: Input should be a valid integer"),
    (("n = 11", "n = true"), "field arms[0].n: Input should be a valid integer"),
    (("events = 4", "events = 4.0"), "field arms[0].events: Input should be a valid integer"),
    (("events = 4", "events = 40"), "events = 40 is above n = 11"),
    (("at_months = 6.0", "at_months = nan"), "field endpoint.at_months: Input should be a "
                                             "finite number"),
    (("first_day = 180", "first_day = 180\ncolour = 1"), "field arms[0].colour: Extra"),
    (('kind = "agvhd"', 'kind = "grfs"'), "use one of gvhd, agvhd"),
    (("[studies.endpoint]", "[studies.population]\nparameters = { not_a_parameter = 1.0 }"
      "\n\n[studies.endpoint]"), "population.parameters.not_a_parameter: not an allo-model "
                                 "parameter"),
    (("[studies.endpoint]", "[studies.population]\nparameters = { x = nan }\n\n"
      "[studies.endpoint]"), "population.parameters.x: Input should be a finite number")])
def test_allo_evidence_is_read_strictly(tmp_path, edit, message):
    """The allo evidence (``calibrate allo --evidence``) is a registered format read
    strictly: ``"11"`` or ``true`` was taken as a count of 11 or 1 patients; a bad file is
    one error line naming the study and the field, for the check and the command alike."""
    from typer.testing import CliRunner

    from ciksim.cli import app

    example = formats()["allo-evidence"].example
    assert edit[0] in example
    p = tmp_path / "allo.toml"
    p.write_text(example.replace(edit[0], edit[1], 1), encoding="utf-8")
    out = tmp_path / "o"
    for args in (["schema", "allo-evidence", "--check", str(p)],
                 ["calibrate", "allo", "--evidence", str(p), "--out", str(out)]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2, (args, r.output, r.exception)
        assert isinstance(r.exception, SystemExit)
        assert len(r.stderr.splitlines()) == 1
        assert "study 'A3-introna-2007-cik'" in r.stderr and message in r.stderr, r.stderr
    assert not out.exists()

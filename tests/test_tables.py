"""Result tables carry their units: Parquet field metadata readable in pyarrow alone, the
data dictionary (``describe``) and its page in the docs."""

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ciksim.analysis.culture import run_culture
from ciksim.errors import DataError
from ciksim.exchange.tables import DAYS_PER_MONTH, describe, dictionary_markdown
from ciksim.io import staged_output
from ciksim.trial.runner import run_trial
from ciksim.trial.spec import TrialSpec

DOCS = Path(__file__).resolve().parents[1] / "docs" / "data.md"


def test_trial_parquet_shows_every_columns_unit_in_pyarrow_alone(tmp_path):
    spec = TrialSpec.from_dict({
        "name": "tiny", "seed": 3, "patients_per_arm": 4, "follow_up_years": 0.5,
        "population": {"scenario": "aml-cr1"}, "arms": [{"name": "chemo"}]})
    run_trial(spec, out=tmp_path, workers=1,
              composition={"f_cik": 0.3, "f_t": 0.6, "f_nk": 0.05})
    schema = pq.read_schema(tmp_path / "patients.parquet")
    units = {f.name: f.metadata[b"unit"].decode() for f in schema}
    assert all(f.metadata[b"description"] for f in schema)
    missing = [c for c, u in units.items() if u == "unknown"]
    assert not missing, f"add {missing} to src/ciksim/data/dictionary/columns.toml"
    assert units["duration"] == "month" and units["relapse_day"] == "day"
    assert units["weight"] == "kg" and units["arm"] == "label"
    assert b"30.4375" in schema.metadata[b"time_units"]
    assert DAYS_PER_MONTH == 30.4375


def test_describe_a_culture_folder_in_parquet_and_csv(tmp_path):
    run = run_culture("cik-standard", donors=3, days=5)
    for fmt in ("parquet", "csv"):
        with staged_output(tmp_path / fmt) as stage:
            stage.table(run.summary(), "culture_summary", fmt)
            stage.table(run.donor_table(), "culture_donors", fmt)
        dd = describe(tmp_path / fmt)
        t = dd.table
        assert set(t["file"]) == {f"culture_summary.{fmt}", f"culture_donors.{fmt}"}
        assert "unknown" not in set(t["unit"])
        row = t[(t["file"] == f"culture_summary.{fmt}") & (t["column"] == "il2_iu_ml_p95")]
        assert row["unit"].item() == "IU/mL" and row["description"].item().startswith("95th")
        path = dd.write()
        assert "| cd3cd56_pct | " in path.read_text()
    with pytest.raises(DataError, match="not a folder"):
        describe(tmp_path / "nothing")


def test_docs_data_dictionary_is_current():
    text = DOCS.read_text(encoding="utf-8")
    assert dictionary_markdown() in text, "regenerate docs/data.md (see its first lines)"
    assert "30.4375" in text


def test_patient_outcome_columns_are_all_in_the_dictionary():
    from ciksim.exchange.tables import column_info
    from ciksim.trial.runner import COLUMNS

    frame = pd.DataFrame(columns=list(COLUMNS))
    missing = [c for c in COLUMNS if column_info(c, frame.attrs)[0] == "unknown"]
    assert not missing, f"add {missing} to src/ciksim/data/dictionary/columns.toml"


def test_cli_patient_tables_in_parquet_with_units_or_csv(tmp_path):
    from typer.testing import CliRunner

    from ciksim.cli import app

    for fmt in ("parquet", "csv"):
        out = tmp_path / fmt
        r = CliRunner().invoke(app, ["patient", "--replicates", "2", "--years", "0.3",
                                     "--out", str(out), "--format", fmt, "--json"])
        assert r.exit_code == 0, r.output
        assert (out / f"patients.{fmt}").is_file()
    units = {f.name: f.metadata[b"unit"].decode()
             for f in pq.read_schema(tmp_path / "parquet" / "patients.parquet")}
    assert units["duration"] == "month" and units["extinction_day"] == "day"
    r = CliRunner().invoke(app, ["describe", str(tmp_path / "csv")])
    assert r.exit_code == 0 and "30.4375" in r.output


def test_posterior_parquet_carries_parameter_units(tmp_path):
    from ciksim.evidence.posterior import Posterior
    from ciksim.models.patient import patient_model

    post = Posterior.load()
    schema = pq.read_schema(post.save(tmp_path / "posterior.parquet"))
    units = {f.name: f.metadata[b"unit"].decode() for f in schema}
    assert units["weight"] == "1"
    model = patient_model()
    for name in post.samples.columns:
        if name in model.parameter_by_name:
            assert units[name] == model.parameter_by_name[name].unit
    assert Posterior.load(tmp_path / "posterior.parquet").samples.equals(post.samples)

"""Flow cytometry in: the shipped synthetic example, a Gating-ML gate file, and bad input
(malformed header, missing channels, a gate file that does not match)."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from ciksim.errors import CikError
from ciksim.exchange.fcs import DEFAULT_GATE, example_fcs, phenotype
from ciksim.inference.culture import CultureData


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return example_fcs(tmp_path_factory.mktemp("fcs"))


def test_example_is_deterministic_and_gated_to_its_known_shares(example, tmp_path):
    again = example_fcs(tmp_path)
    assert hashlib.sha256(again.read_bytes()).digest() == \
        hashlib.sha256(example.read_bytes()).digest()
    run = phenotype([example], day=21, donor="D1")
    row = run.table.iloc[0]
    # populations drawn: 36% CIK, 44% T, 8% NK, 4% double negative among lymphocytes
    assert row["cd3cd56_pct"] == pytest.approx(100 * 36 / 92, abs=2.0)
    assert row["cd3_cd56neg_pct"] == pytest.approx(100 * 44 / 92, abs=2.0)
    assert row["nk_pct"] == pytest.approx(100 * 8 / 92, abs=1.5)
    assert row["cd3_pct"] == pytest.approx(row["cd3cd56_pct"] + row["cd3_cd56neg_pct"])
    assert run.gate["thresholds"] == DEFAULT_GATE
    out = run.write(tmp_path / "out")
    counts = CultureData.read_csv(out / "counts.csv")  # the format ciksim fit culture reads
    assert set(counts.rows["quantity"]) == {"cd3cd56_pct", "cd3_pct", "nk_pct"}
    assert list(counts.donors) == ["D1"]
    table = pd.read_csv(out / "phenotype.csv")
    assert {"cd3cd56_pct", "cd3_cd56neg_pct", "nk_pct"} <= set(table.columns)


def test_malformed_header_is_a_cikerror(example, tmp_path):
    bad = tmp_path / "broken.fcs"
    data = bytearray(example.read_bytes())
    data[10:18] = b"    abcd"  # TEXT segment start offset no longer a number
    bad.write_bytes(bytes(data))
    with pytest.raises(CikError, match=r"broken\.fcs: not a readable FCS file"):
        phenotype([bad])
    with pytest.raises(CikError, match="file not found"):
        phenotype([tmp_path / "nothing.fcs"])


def test_missing_cd56_channel_names_the_channels_found(tmp_path):
    import flowio

    path = tmp_path / "no-cd56.fcs"
    with path.open("wb") as fh:
        flowio.create_fcs(fh, np.ones(12, dtype=np.float32), ["FSC-A", "SSC-A", "FITC-A"],
                          opt_channel_names=["", "", "CD3"])
    with pytest.raises(CikError, match=r"no CD56 channel; channels found: FSC-A, SSC-A, "
                                       r"FITC-A \(CD3\).*--cd56-channel"):
        phenotype([path])


def _gatingml(path, fk, dims=("FITC-A", "PE-A"), names=("CD3pos_CD56pos", "CD3pos_CD56neg",
                                                           "CD3neg_CD56pos")):
    g = DEFAULT_GATE
    gs = fk.GatingStrategy()
    gs.add_gate(fk.gates.RectangleGate("lymphocytes", [
        fk.Dimension("FSC-A", range_min=g["fsc_min"], range_max=g["fsc_max"]),
        fk.Dimension("SSC-A", range_max=g["ssc_max"])]), gate_path=("root",))
    cd3, cd56 = dims
    for name, (lo3, hi3), (lo56, hi56) in zip(
            names, [(g["cd3_min"], None), (g["cd3_min"], None), (None, g["cd3_min"])],
            [(g["cd56_min"], None), (None, g["cd56_min"]), (g["cd56_min"], None)],
            strict=True):
        gs.add_gate(fk.gates.RectangleGate(name, [
            fk.Dimension(cd3, range_min=lo3, range_max=hi3),
            fk.Dimension(cd56, range_min=lo56, range_max=hi56)]),
            gate_path=("root", "lymphocytes"))
    with open(path, "wb") as fh:
        fk.export_gatingml(gs, fh)
    return path


def test_gatingml_file_gives_the_default_strategys_shares(example, tmp_path):
    fk = pytest.importorskip("flowkit", reason="FlowKit is in the interop extra")
    gml = _gatingml(tmp_path / "gates.xml", fk)
    ours = phenotype([example]).table.iloc[0]
    theirs = phenotype([example], gate_file=gml).table.iloc[0]
    for col in ("cd3cd56_pct", "cd3_cd56neg_pct", "nk_pct"):
        assert theirs[col] == pytest.approx(ours[col], abs=0.1)
    other = _gatingml(tmp_path / "other.xml", fk, names=("Q1", "Q2", "Q3"))
    with pytest.raises(CikError, match="does not match: it has no gate named CD3"):
        phenotype([example], gate_file=other)
    wrong = _gatingml(tmp_path / "wrong.xml", fk, dims=("APC-A", "PE-A"))
    with pytest.raises(CikError, match="gate file does not match this sample"):
        phenotype([example], gate_file=wrong)


def _workspace(path, fk, sample, names=("CD3+CD56+", "CD3+CD56-", "CD3-CD56+")):
    """A FlowJo 10 workspace written by FlowKit: the default gates, FlowJo's names."""
    g = DEFAULT_GATE
    gs = fk.GatingStrategy()
    gs.add_gate(fk.gates.RectangleGate("Lymphocytes", [
        fk.Dimension("FSC-A", range_min=g["fsc_min"], range_max=g["fsc_max"]),
        fk.Dimension("SSC-A", range_max=g["ssc_max"])]), gate_path=("root",))
    for name, (lo3, hi3), (lo56, hi56) in zip(
            names, [(g["cd3_min"], None), (g["cd3_min"], None), (None, g["cd3_min"])],
            [(g["cd56_min"], None), (None, g["cd56_min"]), (g["cd56_min"], None)],
            strict=True):
        gs.add_gate(fk.gates.RectangleGate(name, [
            fk.Dimension("FITC-A", range_min=lo3, range_max=hi3),
            fk.Dimension("PE-A", range_min=lo56, range_max=hi56)]),
            gate_path=("root", "Lymphocytes"))
    session = fk.Session(gating_strategy=gs, fcs_samples=[str(sample)])
    with open(path, "wb") as fh:
        session.export_wsp(fh, "CIK day 21")
    return path


def test_flowjo_workspace_gives_the_default_strategys_shares(example, tmp_path):
    fk = pytest.importorskip("flowkit", reason="FlowKit is in the interop extra")
    wsp = _workspace(tmp_path / "cik.wsp", fk, example)
    ours = phenotype([example]).table.iloc[0]
    run = phenotype([example], gate_file=wsp, day=21)
    theirs = run.table.iloc[0]
    assert run.gate["strategy"] == "FlowJo workspace"
    assert theirs["lymphocytes"] == ours["lymphocytes"]
    for col in ("cd3cd56_pct", "cd3_cd56neg_pct", "nk_pct"):
        assert theirs[col] == pytest.approx(ours[col], abs=0.1)
    quadrants = _workspace(tmp_path / "q.wsp", fk, example,
                           names=("Q2: CD3+ , CD56+", "Q3: CD3+ , CD56-", "Q1: CD3- , CD56+"))
    assert phenotype([example], gate_file=quadrants).table.iloc[0]["nk_pct"] == \
        pytest.approx(ours["nk_pct"], abs=0.1)
    other = _workspace(tmp_path / "other.wsp", fk, example, names=("A", "B", "C"))
    with pytest.raises(CikError, match=r"other\.wsp \(sample cik-day21-example\.fcs\) does "
                                       r"not match: it has no gate named CD3\+CD56\+.*"
                                       r"gates found: Lymphocytes, A, B, C"):
        phenotype([example], gate_file=other)
    renamed = tmp_path / "renamed.fcs"
    renamed.write_bytes(example.read_bytes())
    with pytest.raises(CikError, match=r"renamed\.fcs: no sample of that file name in the "
                                       r"workspace .*cik-day21-example\.fcs"):
        phenotype([renamed], gate_file=wsp)


def test_malformed_flowjo_workspace_is_a_cikerror_naming_the_file_and_the_fix(example,
                                                                              tmp_path):
    pytest.importorskip("flowkit", reason="FlowKit is in the interop extra")
    import flowkit as fk

    good = _workspace(tmp_path / "good.wsp", fk, example).read_text(encoding="utf-8")
    truncated = tmp_path / "truncated.wsp"
    truncated.write_text(good[: len(good) // 2], encoding="utf-8")
    foreign = tmp_path / "gates.wsp"  # a Gating-ML file named .wsp: XML, but no workspace
    foreign.write_bytes(_gatingml(tmp_path / "g.xml", fk).read_bytes())
    for bad in (truncated, foreign):
        with pytest.raises(CikError, match=rf"gate_file: .*{bad.name} is not a readable FlowJo "
                                           r"workspace .*save it again from FlowJo 10"):
            phenotype([example], gate_file=bad)
    with pytest.raises(CikError, match="not found"):
        phenotype([example], gate_file=tmp_path / "missing.wsp")


def test_cli_phenotype_and_describe(tmp_path):
    import json

    from typer.testing import CliRunner

    from ciksim.cli import app

    out = tmp_path / "pheno"
    r = CliRunner().invoke(app, ["phenotype", "--example", str(tmp_path / "fcs"), "--day", "21",
                                 "--threshold", "cd3_min=1200", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["gate"]["thresholds"]["cd3_min"] == 1200
    assert data["samples"][0]["cd3cd56_pct"] > 30
    assert (out / "counts.csv").is_file()
    r = CliRunner().invoke(app, ["phenotype", "--threshold", "cd3=high",
                                 str(tmp_path / "fcs" / "cik-day21-example.fcs")])
    assert r.exit_code == 2 and "not KEY=NUMBER" in r.output
    r = CliRunner().invoke(app, ["describe", str(out), "--json"])
    assert r.exit_code == 0, r.output
    cols = {(c["file"], c["column"]): c["unit"] for c in json.loads(r.output)["columns"]}
    assert cols[("phenotype.csv", "nk_pct")] == "%" and cols[("counts.csv", "day")] == "day"

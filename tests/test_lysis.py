"""Real assay data: hand-computed % specific lysis, lytic units, fits, bad input, CLI."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ciksim.assays import examples
from ciksim.assays.lysis import (
    AssayWarning,
    ExponentialFit,
    LysisData,
    analyse,
    fit_exponential,
    lytic_units,
    model_lysis,
)
from ciksim.cli import app
from ciksim.errors import DataError

HEADER = "effector,target,et_ratio,kind,replicate,value\n"
PLATE = HEADER + (
    ",k562,,spontaneous,1,100\n,k562,,spontaneous,2,140\n"
    ",k562,,maximum,1,1100\n,k562,,maximum,2,1140\n"
    "cik,k562,10,experimental,1,620\ncik,k562,10,experimental,2,720\n"
    "cik,k562,5,experimental,1,320\ncik,k562,5,experimental,2,420\n"
    "cik,k562,2.5,experimental,1,220\ncik,k562,2.5,experimental,2,230\n"
)


def write(tmp_path, text, name="plate.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_hand_computed_specific_lysis(tmp_path):
    res = analyse(LysisData.read_csv(write(tmp_path, PLATE)), fit_model=False)
    g = res.groups.set_index("et_ratio")
    # spontaneous mean 120, maximum mean 1120 -> denominator 1000
    assert g.loc[10.0, "lysis_pct_mean"] == pytest.approx(55.0, abs=1e-12)
    assert g.loc[10.0, "lysis_pct_sd"] == pytest.approx(math.sqrt(50.0), abs=1e-12)
    assert g.loc[5.0, "lysis_pct_mean"] == pytest.approx(25.0, abs=1e-12)
    assert g.loc[2.5, "lysis_pct_mean"] == pytest.approx(10.5, abs=1e-12)
    assert list(g["n"]) == [2, 2, 2]
    assert res.warnings == []


def test_lytic_units_match_worked_example():
    # killing.md derived defaults: CIK vs HEK293, A = 56 %, k = 0.081 -> LU20 ~183, LU30 ~106
    fit = ExponentialFit(56.0, 0.081)
    assert fit.et_for(20) == pytest.approx(-math.log(1 - 20 / 56) / 0.081)
    assert lytic_units(fit, 20, 1e4) == pytest.approx(183, rel=0.01)
    assert lytic_units(fit, 30, 1e4) == pytest.approx(106, rel=0.01)
    assert lytic_units(fit, 60, 1e4) is None  # above the plateau
    assert lytic_units(fit, 20, 2e4) == pytest.approx(lytic_units(fit, 20, 1e4) / 2)


def test_exponential_fit_recovers_exact_curve():
    et = np.array([2.5, 5, 10, 20, 40])
    y = 70 * (1 - np.exp(-0.1 * et))
    fit = fit_exponential(et, y)
    assert fit.plateau_pct == pytest.approx(70, rel=1e-5)
    assert fit.k_per_et == pytest.approx(0.1, rel=1e-5)


def test_model_fit_intervals_cover_the_truth():
    """Data simulated from known parameters with noise: 95% intervals cover the truth at
    about the stated rate (60 datasets; binomial 5th percentile of 0.95 x 60 is ~0.88)."""
    from ciksim.assays.lysis import fit_killing_model

    et = np.repeat([1.25, 2.5, 5, 10, 20, 40], 3)
    truth = model_lysis(0.4, 0.8, np.unique(et), 4.0, 1e4)
    cover_k = cover_f = 0
    n = 60
    for seed in range(n):
        y = np.repeat(truth, 3) + np.random.default_rng(seed).normal(0, 1.5, et.size)
        fit = fit_killing_model(et, y, hours=4.0, targets_per_well=1e4)
        cover_k += fit.k_kill_ci[0] < 0.4 < fit.k_kill_ci[1]
        cover_f += fit.susceptible_ci[0] < 0.8 < fit.susceptible_ci[1]
    assert cover_k / n >= 0.85 and cover_f / n >= 0.85


def test_high_spontaneous_release_warns(tmp_path):
    text = PLATE.replace(",k562,,spontaneous,1,100", ",k562,,spontaneous,1,500").replace(
        ",k562,,spontaneous,2,140", ",k562,,spontaneous,2,400")
    with pytest.warns(AssayWarning, match="spontaneous release is 40% of maximum"):
        res = analyse(LysisData.read_csv(write(tmp_path, text)), fit_model=False)
    assert any("40% of maximum" in w for w in res.warnings)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("replicate,value", "rep,value"), "missing column"),
        (lambda t: t.replace("cik,k562,10,experimental,1,620", "cik,k562,10,experimental,1,abc"),
         r"line 6, column value: 'abc' is not a number"),
        (lambda t: t.replace("cik,k562,10,experimental,1,620", "cik,k562,10,experimental,1,-5"),
         "line 6, column value.*negative"),
        (lambda t: t.replace("cik,k562,5,experimental,1,320", "cik,k562,0,experimental,1,320"),
         "line 8, column et_ratio.*must be > 0"),
        (lambda t: t.replace("cik,k562,5,experimental,1,320", "cik,k562,,experimental,1,320"),
         "line 8, column et_ratio: an experimental row needs its E:T"),
        (lambda t: t.replace(",k562,,maximum,1,1100", ",k562,,maxi,1,1100"), "column kind"),
        (lambda t: t.replace(",k562,,maximum,1,1100", ",k562,5,maximum,1,1100"),
         "leave it empty"),
        (lambda t: t.replace(",k562,,maximum,1,1100", ",k562,,maximum,1,50").replace(
            ",k562,,maximum,2,1140", ",k562,,maximum,2,60"), "maximum must exceed spontaneous"),
        (lambda t: t.replace(",k562,,spontaneous,1,100\n,k562,,spontaneous,2,140\n", ""),
         "no spontaneous rows"),
        (lambda t: HEADER, "no data rows"),
    ],
)
def test_bad_input_names_row_column_and_fix(tmp_path, edit, message):
    path = write(tmp_path, edit(PLATE))
    with pytest.raises(DataError, match=message):
        analyse(LysisData.read_csv(path), fit_model=False)


@pytest.mark.parametrize("name", sorted(examples.EXAMPLES))
def test_shipped_examples_are_regenerated_from_the_model(name):
    path = examples.example_path(name)
    assert path.read_text(encoding="utf-8") == examples.render(name), (
        "run `python -m ciksim.assays.examples` to regenerate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AssayWarning)
        res = analyse(LysisData.read_csv(path))
    assert len(res.groups) > 0 and res.fits["k_kill_per_h"].gt(0).all()


def test_cli_lysis_json_and_outputs(tmp_path):
    out = tmp_path / "res"
    r = CliRunner().invoke(app, ["lysis", str(examples.example_path("cik-vs-targets")),
                                 "--json", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert set(data) >= {"groups", "lytic_units", "warnings"}
    assert set(data["groups"][0]) == {"effector", "target", "et_ratio", "lysis_pct_mean",
                                      "lysis_pct_sd", "n"}
    assert set(data["lytic_units"][0]) == {"effector", "target", "lu20_per_1e7",
                                           "lu30_per_1e7"}
    pbmc = next(x for x in data["lytic_units"] if x["target"] == "normal-pbmc")
    assert pbmc["lu20_per_1e7"] is None  # plateau below 20 %
    assert sorted(p.name for p in out.iterdir()) == [
        "killing_fits.csv", "lysis.json", "lysis.png", "lysis_groups.csv", "lytic_units.csv",
        "report.html"]
    groups = pd.read_csv(out / "lysis_groups.csv")
    assert len(groups) == len(data["groups"])


def test_cli_lysis_bad_file_exits_2_and_writes_nothing(tmp_path):
    bad = write(tmp_path, PLATE.replace("720", "seven hundred"), "bad.csv")
    out = tmp_path / "res"
    r = CliRunner().invoke(app, ["lysis", str(bad), "--out", str(out)])
    assert r.exit_code == 2
    assert "column value" in r.output and not out.exists()


def test_cli_killing_json_and_figure(tmp_path):
    out = tmp_path / "k"
    r = CliRunner().invoke(app, ["killing", "--effector", "cik", "--target", "aml-blast",
                                 "--et", "40,20,10", "--donors", "20", "--json",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["rows"]
    assert [x["et_ratio"] for x in rows] == [40, 20, 10]
    for x in rows:
        assert x["lysis_pct_p05"] <= x["lysis_pct"] <= x["lysis_pct_p95"]
    assert (out / "killing_curve.png").is_file()
    r = CliRunner().invoke(app, ["killing", "--et", "40,-1"])
    assert r.exit_code == 2 and "--et" in r.output

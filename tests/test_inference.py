"""Fitting the culture model (recovery, partial data, forecast), PEtab, sensitivity."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ciksim.cli import app
from ciksim.errors import DataError
from ciksim.inference.culture import CultureData, fit_culture, simulated_counts
from ciksim.inference.petab_export import lint, write_petab
from ciksim.inference.sensitivity import sobol
from ciksim.protocol import Protocol

TRUTH = {"phi_max": 0.6, "phi_min": 0.2, "k_conv": 0.03}
FAST = {"walkers": 24, "steps": 120, "burn": 60}


def data(df):
    return CultureData(df.assign(sd=np.nan))


def test_recovers_known_parameters_and_forecasts_from_partial_data():
    """Small version of the recovery study (benchmarks/recovery.py runs the full one)."""
    full = simulated_counts(TRUTH, days=[0, 3, 5, 7, 10, 14, 17, 21], seed=1)
    fit = fit_culture(data(full), **FAST)[0]
    est = fit.estimates().set_index("parameter")
    for name, value in TRUTH.items():
        assert est.loc[name, "ci_low"] <= value <= est.loc[name, "ci_high"], name
    partial = fit_culture(data(full[full["day"] <= 7]), **FAST)[0]
    wide = partial.estimates().set_index("parameter")
    assert (wide["ci_high"] / wide["ci_low"]).min() > 0.9 * (est["ci_high"] / est["ci_low"]).min()
    # forecast: the true harvest day lies in the prediction interval
    from ciksim.engines import simulate
    from ciksim.models.culture import culture_model

    days = np.arange(0.0, 29.0)
    truth = simulate(culture_model(), Protocol.load("cik-standard"), 28, times=days,
                     parameters={**TRUTH, "start_cells": 1e8})["cd3cd56_cells"][:, 0]
    true_day = days[np.argmax(truth >= 1e9)]
    f = partial.forecast(1e9)
    assert f["day_low"] <= true_day <= (f["day_high"] or 99)


@pytest.mark.parametrize(
    ("text", "message"),
    [("donor,day,quantity,value\nA,0,cd4_pct,10\n", "unknown quantity 'cd4_pct'"),
     ("donor,day,quantity,value\nA,3,total_cells,1e8\nA,1,total_cells,2e8\n",
      "line 3, column day: day 1 does not follow day 3"),
     ("donor,day,quantity,value\nA,0,total_cells,-5\n", "column value: .-5. must be >= 0"),
     ("donor,day,quantity,value\nA,0,nk_pct,140\n", "not a percentage"),
     ("donor,day,value\nA,0,5\n", "missing column"),
     ("donor,day,quantity,value\nA,x,nk_pct,10\n", "column day: 'x' is not a number")],
)
def test_bad_counts(tmp_path, text, message):
    p = tmp_path / "c.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=message):
        CultureData.read_csv(p)


def test_unknown_free_parameter():
    with pytest.raises(DataError, match="unknown parameter"):
        fit_culture(data(simulated_counts(TRUTH, days=[0, 3], seed=0)), free=["phi_maks"])


def test_petab_export_passes_the_linter(tmp_path):
    df = simulated_counts(TRUTH, days=[0, 3, 7], seed=2)
    df2 = simulated_counts(TRUTH, days=[0, 4, 7], seed=3, donor="B")
    yaml = write_petab(data(pd.concat([df, df2])), tmp_path / "petab",
                       protocol=Protocol.load("cik-standard"), free=["phi_max", "k_conv"])
    lint(yaml)
    cond = pd.read_csv(tmp_path / "petab" / "conditions.tsv", sep="\t")
    assert len(cond) == 2 and "start_cells" in cond


def test_cli_fit_culture_and_killing(tmp_path):
    csv = tmp_path / "counts.csv"
    simulated_counts(TRUTH, days=[0, 3, 7], seed=5).to_csv(csv, index=False)
    r = CliRunner().invoke(app, ["fit", "culture", str(csv), "--dose", "1e9", "--steps", "60",
                                 "--walkers", "24", "--json", "--out", str(tmp_path / "f")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert {e["parameter"] for e in out["estimates"]} == set(TRUTH)
    assert out["forecast"][0]["dose"] == 1e9
    assert (tmp_path / "f" / "fit.png").is_file()
    # 45 steps kept are fewer than 50 autocorrelation times: said in the JSON and the table
    [sampler] = out["sampler"]
    assert sampler["steps_kept"] == 45 and sampler["long_enough"] is False
    r = CliRunner().invoke(app, ["fit", "culture", str(csv), "--steps", "60", "--walkers", "24"])
    assert r.exit_code == 0 and "chains short for donor(s) sim" in r.output
    from ciksim.assays.examples import example_path

    r = CliRunner().invoke(app, ["fit", "killing", str(example_path("cik-vs-lak")), "--json"])
    assert r.exit_code == 0, r.output
    assert {e["parameter"] for e in json.loads(r.output)["estimates"]} == {
        "k_kill", "susceptible_fraction"}
    r = CliRunner().invoke(app, ["fit", "culture", str(csv), "--free", "nope"])
    assert r.exit_code == 2 and "unknown parameter" in r.output


def test_sobol_indices_from_declared_ranges(tmp_path):
    table = sobol("cd3cd56_yield", samples=16, parameters=["q_il2", "phi_cik", "K_il1",
                                                            "e_il1"])
    assert list(table.columns) == ["parameter", "S1", "S1_conf", "ST", "ST_conf"]
    st = table.set_index("parameter")["ST"]
    assert st["q_il2"] > st["K_il1"] and st["phi_cik"] > st["e_il1"]
    r = CliRunner().invoke(app, ["sensitivity", "culture", "--output", "cd3cd56_yield",
                                 "--samples", "8", "--parameters", "q_il2,phi_cik",
                                 "--json", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "s" / "sobol_cd3cd56_yield.png").is_file()
    r = CliRunner().invoke(app, ["sensitivity", "culture", "--output", "cure_fraction"])
    assert r.exit_code == 2


def test_a_set_the_compiled_engine_cannot_finish_is_minus_inf_and_never_switches_integrator(
        monkeypatch):
    """A parameter set the compiled engine does not finish has a log-likelihood of -inf; the
    other sets of its batch keep the numbers they have alone, from the same engine (no
    fallback to scipy's RK45 for the batch); a simulation that needs every set says so."""
    import ciksim.inference.culture as culture
    from ciksim.errors import CikError

    bad, real, methods = 0.55, culture.simulate, []

    def simulate(*args, parameters, settings=None, **kw):
        methods.append(getattr(settings, "method", "RK45"))
        if np.any(np.asarray(parameters["phi_max"]) == bad):
            raise CikError("compiled integration did not finish for 1 individual(s)")
        return real(*args, parameters=parameters, settings=settings, **kw)

    monkeypatch.setattr(culture, "simulate", simulate)
    counts = data(simulated_counts(TRUTH, days=[0, 3, 7], seed=4))
    loglik, _ = culture.donor_log_likelihood(counts, "sim", Protocol.load("cik-standard"),
                                             list(TRUTH))
    good = np.array([[0.6, 0.2, 0.03], [0.5, 0.25, 0.04]])
    alone = np.concatenate([loglik(good[:1]), loglik(good[1:])])
    batch = loglik(np.vstack([good[0], [bad, 0.2, 0.03], good[1]]))
    assert np.isfinite(alone).all() and batch[1] == -np.inf
    np.testing.assert_array_equal(batch[[0, 2]], alone)
    assert set(methods) == {"compiled"}
    with pytest.raises(CikError, match="could not integrate 1 of 1 parameter set"):
        simulated_counts({**TRUTH, "phi_max": bad}, days=[0, 3], seed=0)

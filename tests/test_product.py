"""The clinical product as lots: release data, trial specs naming a product, target C12."""

import numpy as np
import pytest

from ciksim.analysis.product import (
    built_product,
    lots_from_culture,
    read_release_data,
    release_data_path,
)
from ciksim.errors import DataError
from ciksim.targets import product as targets
from ciksim.trial.runner import product_lots, run_trial
from ciksim.trial.spec import TrialSpec

HEADER = "lot,cells,cd3cd56_pct,cd3_cd56neg_pct,nk_pct,viability_pct\n"


def test_target_C12(check):
    check(targets.c12_product_flows())


def test_release_data_reads_viable_cd3_cells_and_shares(tmp_path):
    f = tmp_path / "lots.csv"
    f.write_text(HEADER + "A,1e9,50,40,5,80\nB,2e9,10,80,5,90\n")
    lots = read_release_data(f)
    np.testing.assert_allclose(lots.cd3_cells, [1e9 * 0.8 * 0.9, 2e9 * 0.9 * 0.9])
    np.testing.assert_allclose(lots.f_cik, [0.5, 0.1])
    np.testing.assert_allclose(lots.f_t, [0.4, 0.8])
    assert lots.lots == 2 and lots.name == "lots"


@pytest.mark.parametrize(
    ("row", "message"),
    [("A,1e9,60,45,5,80", r"line 2, columns cd3cd56_pct \+ cd3_cd56neg_pct \+ nk_pct: shares "
      r"add up to 110% > 100%.*correct the row"),
     ("A,1e9,abc,45,5,80", "line 2, column cd3cd56_pct: 'abc' is not a number"),
     ("A,0,50,40,5,80", "column cells.*must be > 0"),
     ("A,1e9,50,40,5,120", "column viability_pct.*percentage in"),
     ("A,1e9,0,0,50,80", "no CD3\\+ cells")],
)
def test_release_data_bad_input(tmp_path, row, message):
    f = tmp_path / "lots.csv"
    f.write_text(HEADER + row + "\n")
    with pytest.raises(DataError, match=message):
        read_release_data(f)


def test_release_data_missing_column_and_file(tmp_path):
    f = tmp_path / "lots.csv"
    f.write_text("cells,cd3cd56_pct\n1e9,50\n")
    with pytest.raises(DataError, match="missing column"):
        read_release_data(f)
    with pytest.raises(DataError, match=r"release_data: 'nope\.csv' is not a file"):
        release_data_path("nope.csv")


def spec_dict(product, n=16):
    return {"name": "p", "seed": 3, "patients_per_arm": n, "follow_up_years": 0.5,
            "population": {"scenario": "aml-cr1"}, "product": product,
            "arms": [{"name": "chemo"},
                     {"name": "cik", "cik": {"dose_per_kg": 1e7, "infusions": 2}}]}


@pytest.mark.parametrize(
    ("product", "message"),
    [({"culture_protocol": "cik-gmp", "release_data": "x.csv"}, "give one of"),
     ({"release_data": "x.csv", "donors": 5}, "apply to a culture_protocol only"),
     ({"culture_protocol": "cik-gmp", "donor": "martian"}, r"product\.donor: unknown donor"),
     ({"culture_protocol": "cik-gmp", "start_cells": -1}, r"product\.start_cells"),
     ({"lots": 3}, "unknown field")],
)
def test_spec_product_errors(product, message):
    with pytest.raises(DataError, match=message):
        TrialSpec.from_dict(spec_dict(product))


def test_spec_names_release_data_relative_to_its_file(tmp_path):
    (tmp_path / "lots.csv").write_text(HEADER + "A,1e9,50,40,5,80\n")
    f = tmp_path / "trial.toml"
    f.write_text('name = "p"\n[population]\nscenario = "aml-cr1"\n[product]\n'
                 'release_data = "lots.csv"\n[[arms]]\nname = "chemo"\n')
    lots = product_lots(TrialSpec.load(f))
    assert lots.lots == 1 and lots.cd3_cells[0] == pytest.approx(0.72e9)


def test_trial_from_release_data_is_chunk_invariant_and_records_lots():
    spec = TrialSpec.from_dict(spec_dict({"release_data": "release-cik-lots"}))
    a = run_trial(spec, workers=1, chunk_size=5).patients
    b = run_trial(spec, workers=1, chunk_size=50).patients
    assert a.equals(b)
    cik = a[a["arm"] == "cik"]
    assert (cik["product_lot"] >= 0).all() and cik["infusions_given"].between(0, 2).all()
    chemo = a[a["arm"] == "chemo"]
    assert (chemo["infusions_given"] == 0).all() and (chemo["product_lot"] == -1).all()


def test_culture_lots_come_from_the_run_and_donor_option():
    healthy = built_product("cik-gmp", donors=8, seed=1)
    patient = built_product("cik-gmp", donors=8, seed=1, donor="patient-post-chemo")
    assert np.median(patient.cd3_cells) < np.median(healthy.cd3_cells)
    from ciksim.analysis.culture import run_culture

    run = run_culture("cik-gmp", donors=8, seed=1)
    np.testing.assert_allclose(lots_from_culture(run).cd3_cells, healthy.cd3_cells)
    big = built_product("cik-gmp", donors=8, seed=1, start_cells=7e9)
    np.testing.assert_allclose(big.cd3_cells, 10 * healthy.cd3_cells, rtol=1e-5)


def test_built_lots_are_cached_by_content(tmp_path, monkeypatch):
    """A second process reads the cultured lots from the cache: the same numbers, bit for
    bit, as culturing; another seed or donor option is another entry."""
    from ciksim.analysis.culture import run_culture
    from ciksim.engines import codecache

    monkeypatch.setenv(codecache.ENV_VAR, str(tmp_path))
    first = built_product("cik-gmp", donors=6, seed=4, donor="patient-post-chemo")
    again = built_product("cik-gmp", donors=6, seed=4, donor="patient-post-chemo")
    fresh = lots_from_culture(run_culture("cik-gmp", donors=6, seed=4,
                                          donor="patient-post-chemo"))
    for lots in (again, fresh):
        for key in ("f_cik", "f_t", "f_nk", "cd3_cells"):
            assert getattr(lots, key).tobytes() == getattr(first, key).tobytes(), key
        assert (lots.name, lots.source) == (first.name, first.source)
    assert len(list(tmp_path.glob("lots_*.npz"))) == 1
    other = built_product("cik-gmp", donors=6, seed=5, donor="patient-post-chemo")
    assert len(list(tmp_path.glob("lots_*.npz"))) == 2
    assert not np.array_equal(other.cd3_cells, first.cd3_cells)


def test_culture_job_takes_the_donor_option():
    from ciksim.jobs.culture import culture_job

    h = culture_job(["cik-gmp"], donors=3, days=14, seed=1).runs[0]
    p = culture_job(["cik-gmp"], donors=3, days=14, seed=1, donor="patient-post-chemo").runs[0]
    assert p.donor == "patient-post-chemo" and h.start_cells == pytest.approx(7e8)
    assert np.median(p.per_donor["total_fold"][-1]) < np.median(h.per_donor["total_fold"][-1])


def test_trial_over_draws_uses_the_product_lots():
    from ciksim.trial.draws import DrawDesign, run_over_draws
    from ciksim.trial.sources import resolve_source

    spec = TrialSpec.from_dict({**spec_dict({"release_data": "release-cik-lots"}),
                                "delivery": {"enabled": False}})
    run = run_over_draws(spec, resolve_source(prior=True),
                         DrawDesign(draws=2, cohort=20, sizes=(10,)))
    assert run.manifest["product"]["lots"] == 6
    assert run.manifest["product"]["median_cd3_cells"] is not None

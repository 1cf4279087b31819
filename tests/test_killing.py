"""Killing model: targets K1-K8 computed from the model, kinetics and products."""

import numpy as np
import pytest

from ciksim.analysis.culture import run_culture
from ciksim.analysis.killing import (
    Product,
    product_from_culture,
    product_from_folder,
    run_assay,
)
from ciksim.engines import simulate
from ciksim.errors import DataError
from ciksim.models.killing import killing_model, target_library
from ciksim.targets import killing as targets


def test_target_K1(check):
    check(targets.k1_k562())


def test_target_K2(check):
    check(targets.k2_aml())


def test_target_K3(check):
    check(targets.k3_normal())


def test_target_K4(check):
    check(targets.k4_allogeneic())


def test_target_K5(check):
    check(targets.k5_per_cell_ordering())


def test_target_K6(check):
    check(targets.k6_b_all())


def test_target_K7(check):
    check(targets.k7_blocking())


def test_target_K8(check):
    check(targets.k8_lysis_maths())


def test_model_time_is_in_hours_and_parameters_sourced():
    m = killing_model()
    assert m.time_unit == "hour"
    for p in m.parameters:
        assert p.source and p.low <= p.value <= p.high
    for name, entry in target_library().items():
        assert entry["source"] and entry["description"], name


def test_lysis_rises_with_et_and_saturates():
    s = run_assay("cik", "k562", et=[1, 2.5, 5, 10, 20, 40, 80, 160], donors=1).summary()
    y = s["lysis_pct"].to_numpy()
    assert np.all(np.diff(y) > 0)
    # saturation: doubling E:T adds much less at the top than at the bottom
    assert y[-1] - y[-2] < 0.3 * (y[1] - y[0]) * 2


def test_aml_ligand_negative_fraction_escapes():
    s = run_assay("cik", "aml-blast", et=[200], hours=4, donors=1).summary()
    assert s["lysis_pct"].iloc[0] < 90  # the NKG2D-ligand-negative blasts largely survive


def test_serial_killing_and_exhaustion_in_long_coculture():
    """At E:T 0.1 over 24 h each effector kills several targets; exhaustion caps it."""
    m = killing_model()
    base = {"et_ratio": 0.1, "T0": 1e5, "f_cik": 1.0, "f_t": 0.0, "f_nk": 0.0, "g_tgt": 0.0,
            "k_spont": 0.0}
    r = simulate(m, None, 24, times=[0, 24], parameters={**base, "n_kill": [1.0, 3.0, 10.0]})
    kills_per_effector = r["Lysed"][-1] / (0.1 * 1e5)
    assert kills_per_effector[2] > 1.0  # serial killing
    assert np.all(kills_per_effector <= np.array([1.0, 3.0, 10.0]) + 1e-6)
    assert kills_per_effector[0] < kills_per_effector[1] < kills_per_effector[2]


def test_spontaneous_death_is_corrected_for():
    lysis = run_assay("cik", "normal-pbmc", et=[40], hours=24, donors=1).lysis_pct
    assert 0 <= lysis[0, 0] < 5


def test_product_follows_composition():
    pure_t = Product("t", 0.0, 1.0, 0.0)
    pure_cik = Product("cd3cd56", 1.0, 0.0, 0.0)
    t = run_assay(pure_t, "aml-blast", et=[10], donors=1).lysis_pct[0, 0]
    c = run_assay(pure_cik, "aml-blast", et=[10], donors=1).lysis_pct[0, 0]
    mix = run_assay(Product("mix", 0.5, 0.5, 0.0), "aml-blast", et=[10], donors=1).lysis_pct
    assert t < mix[0, 0] < c


def test_culture_harvest_handed_in_directly_and_via_folder(tmp_path):
    from typer.testing import CliRunner

    from ciksim.cli import app

    run = run_culture("cik-gmp", donors=5, seed=2)
    prod = product_from_culture(run)
    assert prod.donors == 5
    np.testing.assert_allclose(prod.f_cik, run.per_donor["cd3cd56_pct"][-1] / 100)
    out = tmp_path / "culture"
    res = CliRunner().invoke(app, ["culture", "--protocol", "cik-gmp", "--donors", "5",
                                   "--seed", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    folder = product_from_folder(out)
    np.testing.assert_allclose(folder.f_cik, prod.f_cik, rtol=1e-9)
    np.testing.assert_allclose(folder.f_nk, prod.f_nk, rtol=1e-9)


def test_same_seed_same_numbers():
    a = run_assay("cik", "aml-blast", et=[20, 5], donors=30, seed=5).lysis_pct
    b = run_assay("cik", "aml-blast", et=[20, 5], donors=30, seed=5).lysis_pct
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"et": [0, 10]}, "E:T"), ({"hours": -4}, "hours"), ({"block": "cd16"}, "block"),
     ({"target": "hela"}, "unknown target"), ({"effector": "car-t"}, "effector")],
)
def test_assay_rejects_bad_input(kwargs, message):
    with pytest.raises(DataError, match=message):
        run_assay(**{"donors": 2, **kwargs})


def test_custom_target_file(tmp_path):
    f = tmp_path / "mytarget.toml"
    f.write_text('name = "my-line"\nrecognition = ["nkg2d", "other"]\nlig_frac = 1.0\n'
                 'lig_level = 0.5\ns_other = 0.2\nhla_i = 1.0\nk_spont = 0.01\ng_tgt = 0.0\n')
    a = run_assay("cik", str(f), et=[20], donors=3)
    assert a.target == "my-line" and 0 < a.lysis_pct[0, 0] < 100
    f.write_text('name = "bad"\nrecognition = ["nkg2d"]\nlig_frac = 2.0\n')
    with pytest.raises(DataError, match=r"lig_frac = 2\.0: outside the plausible range"):
        run_assay("cik", str(f), et=[20], donors=3)
    f.write_text('name = "bad"\nrecognition = ["nkg2d"]\nlig_frac = 0.5\n')
    with pytest.raises(DataError, match="missing field"):
        run_assay("cik", str(f), et=[20], donors=3)


@pytest.mark.parametrize(
    ("entry", "message"),
    [({"recognition": ["nkg2d", "mhc"]}, r"target\.recognition: unknown recognition mode.*'mhc'"
      r".*use any of nkg2d, tcr-mhc, allo-hla, other"),
     ({}, r"target\.recognition: missing; declare"),
     ({"recognition": ["other"], "lig_level": 0.5},
      r"target\.lig_level: 0\.5 is given but recognition does not list 'nkg2d'")],
)
def test_target_recognition_is_declared_and_checked(entry, message):
    base = {"s_other": 0.1, "hla_i": 1.0, "k_spont": 0.01, "g_tgt": 0.0}
    with pytest.raises(DataError, match=message):
        run_assay("cik", {**base, **entry}, et=[20], donors=2)


def test_every_library_target_declares_its_recognition():
    from ciksim.models.killing import RECOGNITION_MODES, target_parameters, target_recognition

    for name in target_library():
        modes = target_recognition(name)
        assert modes and set(modes) <= set(RECOGNITION_MODES), name
        target_parameters(name)  # every declared mode's properties are given
    assert "tcr-mhc" in target_recognition("aml-blast")
    assert "tcr-mhc" not in target_recognition("k562")


def test_tcr_path_needs_hla_class_i():
    """A TCR/MHC target without HLA class I is not seen by the TCR path (Linn 2009)."""
    base = {"recognition": ["tcr-mhc"], "tcr_ag": 1.0, "k_spont": 0.0, "g_tgt": 0.0}
    with_hla = run_assay("t", {**base, "hla_i": 1.0}, et=[10], donors=1).lysis_pct[0, 0]
    without = run_assay("t", {**base, "hla_i": 0.0}, et=[10], donors=1).lysis_pct[0, 0]
    assert with_hla > 10 and abs(without) < 1e-6

"""Culture model: calibration targets C1-C11 computed from the model, and the run API."""

import numpy as np
import pytest

from ciksim.analysis.culture import plan_harvest, run_culture
from ciksim.errors import DataError
from ciksim.model.variability import sample_parameters
from ciksim.models.culture import culture_model
from ciksim.targets import culture as targets


def test_target_C1(check):
    check(targets.c1_day0_composition())


def test_target_C2(check):
    check(targets.c2_cell_cycle())


@pytest.mark.parametrize("protocol", targets.CIK_PROTOCOLS)
def test_target_C3(check, protocol):
    t = targets.c3_fold_day21(protocol)
    check(t)
    low, high = t.details["p05_p95"]
    assert low < t.value < high  # a real donor band, not a point


@pytest.mark.parametrize("protocol", targets.CIK_PROTOCOLS)
def test_target_C4(check, protocol):
    check(targets.c4_cd3cd56_share(protocol))


@pytest.mark.parametrize("protocol", targets.CIK_PROTOCOLS)
def test_target_C5(check, protocol):
    check(targets.c5_day14_phenotype(protocol))


@pytest.mark.parametrize("protocol", targets.CIK_PROTOCOLS)
def test_target_C6(check, protocol):
    check(targets.c6_cd3cd56_enrichment(protocol))


def test_target_C7(check):
    check(targets.c7_cd56_origin())


def test_target_C8(check):
    check(targets.c8_lak_vs_cik())


def test_target_C9(check):
    check(targets.c9_il2())


def test_target_C10(check):
    check(targets.c10_gmp_product())


def test_target_C11(check):
    check(targets.c11_patient_material())


def test_gmp_and_patient_options_are_declared_parameters_not_other_models():
    """cik-gmp differs from cik-research only by its declared parameters (medium, scale)."""
    from ciksim import Protocol
    from ciksim.models.culture import Donor

    gmp, research = Protocol.load("cik-gmp"), Protocol.load("cik-research")
    assert gmp.events == research.events
    assert 0 < gmp.parameter_values(culture_model())["medium_support"] < 1
    patient = Donor.load("patient-post-chemo")
    assert set(patient.parameters) == {"donor_fitness"} and patient.source
    a = run_culture("cik-gmp", donors=1).per_donor["total_fold"][-1, 0]
    b = run_culture("cik-gmp", donors=1, donor=patient).per_donor["total_fold"][-1, 0]
    c = run_culture("cik-research", donors=1).per_donor["total_fold"][-1, 0]
    assert b < a < c
    assert run_culture("cik-gmp", donors=1).start_cells == pytest.approx(7e8)


@pytest.mark.parametrize(
    ("text", "message"),
    [('name = "x"\nsource = "s"\n[parameters]\ndonor_fitness = 2.0\n',
      "donor_fitness = 2.0: outside the plausible range"),
     ('name = "x"\nsource = "s"\n[parameters]\nfitness = 0.5\n', "not a culture-model"),
     ('name = "x"\n[parameters]\ndonor_fitness = 0.5\n', "missing field 'source'; add it"),
     ('name = "x"\nsource = "s"\nage = 3\n', "unknown field")],
)
def test_donor_file_errors(tmp_path, text, message):
    f = tmp_path / "donor.toml"
    f.write_text(text)
    with pytest.raises(DataError, match=message):
        run_culture("cik-gmp", donors=1, donor=str(f))
    with pytest.raises(DataError, match="unknown donor"):
        run_culture("cik-gmp", donors=1, donor="martian")


def test_every_parameter_is_sourced_and_used():
    model = culture_model()
    used = set()
    for key in [*(f"init:{s}" for s in model.species_names),
                *(a.name for a in model.assignments), *(p.name for p in model.processes)]:
        used |= model.expression(key).symbols
    for p in model.parameters:
        assert p.name in used, f"parameter {p.name} is declared but unused"
        assert p.low <= p.value <= p.high
        assert p.source and p.description


def test_ifng_priming_raises_cd3cd56_share():
    with_ifng = targets.culture_runs("cik-research")
    without = run_culture("cik-no-ifng", donors=200, seed=0)
    assert np.median(without.per_donor["cd3cd56_pct"][21]) < np.median(
        with_ifng.per_donor["cd3cd56_pct"][21])


def test_donor_draws_do_not_depend_on_batch_size():
    model = culture_model()
    small = sample_parameters(model, 5, seed=3)
    large = sample_parameters(model, 50, seed=3)
    for k in small:
        np.testing.assert_array_equal(small[k], large[k][:5])
    again = sample_parameters(model, 5, seed=3)
    assert all(np.array_equal(small[k], again[k]) for k in small)
    assert not np.array_equal(small["r_max"], sample_parameters(model, 5, seed=4)["r_max"])


def test_same_seed_same_numbers():
    a = run_culture("cik-gmp", donors=20, seed=11).summary()
    b = run_culture("cik-gmp", donors=20, seed=11).summary()
    assert a.equals(b)


def test_summary_columns_and_units():
    s = run_culture("cik-standard", donors=10, seed=0).summary()
    for name in ("total_cells", "total_fold", "cd3cd56_pct", "cd3cd56_fold", "cd3_pct",
                 "nk_pct", "il2_iu_ml"):
        assert {name, name + "_p05", name + "_p95"} <= set(s.columns)
        assert (s[name + "_p05"] <= s[name] + 1e-9).all()
        assert (s[name] <= s[name + "_p95"] + 1e-9).all()
    assert s.attrs["units"]["il2_iu_ml"] == "IU/mL"
    assert list(s["day"]) == list(range(22))


def test_culture_scales_with_seeded_cells():
    a = run_culture("cik-gmp", donors=1, start_cells=1e8).per_donor["total_cells"]
    b = run_culture("cik-gmp", donors=1, start_cells=5e8).per_donor["total_cells"]
    np.testing.assert_allclose(b, 5 * a, rtol=1e-5)


def test_discarding_splits_keep_cumulative_fold():
    from ciksim import Protocol

    base = Protocol.load("cik-research")
    discard = Protocol.from_dict({
        "name": "discard", "harvest_day": 21,
        "parameters": {"seed_density": "2e6 cells/mL"},
        "events": [
            {"day": 0, "action": "set", "values": {"IFNg": "1000 IU/mL"}},
            {"day": 1, "action": "set", "values": {"OKT3": "50 ng/mL", "IL2": "500 IU/mL"}},
            {"days": [3, 5, 8, 10, 12, 15, 17, 19], "action": "split",
             "max_density": "2e6 cells/mL", "target_density": "1e6 cells/mL",
             "cells": "discard", "top_up": {"IL2": "500 IU/mL"}},
        ],
    })
    d = run_culture(discard, donors=1)
    k = run_culture(base, donors=1)
    assert d.result.kept[-1, 0] < 0.05  # most of the culture was thrown away
    real = d.result["total_cells"][-1, 0]
    assert real < d.per_donor["total_cells"][-1, 0]
    assert d.per_donor["total_fold"][-1, 0] == pytest.approx(
        k.per_donor["total_fold"][-1, 0], rel=0.5)


def test_plan_harvest():
    run = run_culture("cik-standard", donors=50, seed=0)
    plan = plan_harvest(run, dose=2e6, per="kg", weight=70, infusions=3)
    assert plan.required_cells == pytest.approx(4.2e8)
    assert plan.day_median is not None and plan.day_p05 is not None
    assert plan.day_median <= plan.day_p05
    cells_median = np.median(run.cells_on(plan.day_median, "cd3cd56"))
    assert cells_median >= plan.required_cells
    earlier = np.median(run.cells_on(plan.day_median - 1, "cd3cd56"))
    assert earlier < plan.required_cells
    assert plan.start_needed_median == pytest.approx(
        1e8 * 4.2e8 / np.median(run.cells_on(21, "cd3cd56")))
    assert plan.start_needed_p05 > plan.start_needed_median


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"dose": -1}, "dose"), ({"dose": 1e7, "per": "m2"}, "per"),
     ({"dose": 1e7, "weight": 0}, "weight"), ({"dose": 1e7, "infusions": 0}, "infusions"),
     ({"dose": 1e7, "cells": "cd8"}, "cells")],
)
def test_plan_rejects_bad_input(kwargs, message):
    run = run_culture("cik-standard", donors=2, seed=0)
    with pytest.raises(DataError, match=message):
        plan_harvest(run, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"start_cells": -5}, "start_cells"), ({"donors": 0}, "donors"), ({"days": -3}, "days")],
)
def test_run_rejects_bad_input(kwargs, message):
    with pytest.raises(DataError, match=message):
        run_culture("cik-standard", **kwargs)

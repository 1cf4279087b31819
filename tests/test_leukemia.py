"""Second-wave leukemia biology: targets P9-P13, bounded variability, MRD and NRM inputs."""

import numpy as np
import pytest

from ciksim.analysis.mrd import measure_mrd
from ciksim.analysis.patient import run_patients
from ciksim.errors import DataError
from ciksim.model import Parameter
from ciksim.model.variability import bounded_draw, sample_parameters, share_at_bounds
from ciksim.models.patient import Scenario, patient_model
from ciksim.targets import leukemia as targets
from ciksim.trial.estimands import cumulative_incidence, event_labels


def test_target_P9(check):
    check(targets.p9_mrd())


def test_target_P10(check):
    check(targets.p10_founding())


def test_target_P11(check):
    check(targets.p11_bounds())


def test_target_P12(check):
    check(targets.p12_persistence_variability())


def test_target_P13(check):
    check(targets.p13_death_in_remission())


def test_logit_normal_keeps_the_median_and_has_no_point_masses():
    p = Parameter("x", 3e-4, "1", 1e-7, 1e-3, "assumed: test", "test", 2.0)
    z = np.random.default_rng(0).standard_normal(20000)
    x = bounded_draw(p, np.full(z.size, p.value), 2.0, z)
    assert np.median(x) == pytest.approx(3e-4, rel=0.05)
    assert x.min() > p.low and x.max() < p.high
    assert share_at_bounds(p, x) < 0.01
    # near the median it is the log-normal it replaces: local log-SD = sigma
    small = bounded_draw(p, np.full(3, p.value), 2.0, np.array([-1e-4, 0.0, 1e-4]))
    assert np.log(small[2] / small[0]) / 2e-4 == pytest.approx(2.0, rel=1e-3)
    # a clipped log-normal would have piled ~25% of the draws onto the upper bound
    clipped = np.clip(p.value * np.exp(2.0 * z), p.low, p.high)
    assert share_at_bounds(p, clipped) > 0.2


def test_median_outside_the_range_is_refused_and_at_a_bound_is_that_bound():
    model = patient_model()
    with pytest.raises(DataError, match=r"lig_frac: median 1\.5 lies outside"):
        sample_parameters(model, 3, 0, medians={"lig_frac": 1.5})
    draws = sample_parameters(model, 3, 0, medians={"lig_frac": 1.0})
    assert np.all(draws["lig_frac"] == 1.0)


def test_hierarchy_parameter_out_of_range_is_refused(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('name = "x"\n[parameters]\nf_LIC = 0.5\n')
    with pytest.raises(DataError, match=r"parameters\.f_LIC = 0\.5: outside the plausible "
                                        r"range \[1e-08, 1e-05\].*give a value in that range"):
        Scenario.load(f)
    with pytest.raises(DataError, match=r"parameters\.k_qa = 3 lies outside"):
        run_patients("aml-cr1", parameters={"k_qa": 3.0})


def test_mrd_mapping_refuses_negative_ratios_and_is_reproducible():
    share = np.array([0.0, 1e-5, 1e-3, 0.5])
    assay = {"kappa_npm1": 40.0, "mrd_cells": 1e5, "mrd_log10_sd": 0.2, "flow_events": 5e5}
    a = measure_mrd(share, assay, seed=1, indices=np.arange(4))
    b = measure_mrd(share[2:], assay, seed=1, indices=np.arange(2, 4))
    np.testing.assert_array_equal(a.npm1_ratio[2:], b.npm1_ratio)
    assert a.npm1_ratio[0] == 0 and a.flow_mrd[0] == 0
    assert np.all(a.npm1_ratio >= 0)
    assert a.npm1_ratio[3] == pytest.approx(20.0, rel=0.8)
    with pytest.raises(DataError, match="kappa_npm1: the MRD mapping needs finite values >= 0"):
        measure_mrd(share, {**assay, "kappa_npm1": -1.0}, seed=1, indices=np.arange(4))
    with pytest.raises(DataError, match="mrd_cells"):
        measure_mrd(share, {**assay, "mrd_cells": 0.0}, seed=1, indices=np.arange(4))


def test_death_in_remission_is_a_competing_event():
    run = run_patients("aml-cr1", replicates=400, years=3, seed=4)
    df = run.outcomes()
    deaths = df[df["event"] == "death"]
    assert len(deaths) > 0
    assert (deaths["death_day"] <= 3 * 365.25).all()
    # the same patients with the death-in-remission parameters set to 0 never die
    none = run_patients("aml-cr1", replicates=400, years=3, seed=4,
                        parameters={"nrm_course": 0.005, "nrm_late": 0.0}).outcomes()
    assert (none["event"] == "death").sum() < len(deaths)
    cir = cumulative_incidence(df, "relapse")
    naive = (df["event"] == "relapse").mean()
    assert cir.iloc[-1] == pytest.approx(naive, abs=0.02)
    with pytest.raises(DataError, match="unknown label"):
        event_labels(np.array(["relapse", "progression"]))

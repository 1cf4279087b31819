"""Patient targets P1-P8 (and, from ``targets.leukemia``, P9-P13), computed from the default
patient model and scenarios."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from ciksim.analysis.patient import (
    RELAPSE_DEFINITIONS,
    CikSchedule,
    PatientRun,
    default_product,
    patient_protocol,
    run_patients,
)
from ciksim.engines import simulate
from ciksim.model.variability import sample_parameters
from ciksim.models.patient import Scenario, patient_model, subtypes
from ciksim.protocol import Protocol
from ciksim.targets.base import TargetCheck, within

REPLICATES = 2000
SEED = 0
FOLLOW_UP_YEARS = 6.0
DETECTION_LIMIT = 0.1  # assumed: PCR detects infused cells down to 10% of their peak level


@cache
def chemo_only(scenario: str = "aml-cr1") -> PatientRun:
    """2000 chemotherapy-only patients followed 6 years (cached)."""
    return run_patients(scenario, replicates=REPLICATES, years=FOLLOW_UP_YEARS, seed=SEED)


def p1_burden() -> TargetCheck:
    model = patient_model()
    untreated = simulate(model, None, 3 * 365.0, times=[0.0, 3 * 365.0],
                         parameters={"start_burden": 1e-4})
    diagnosis = float(untreated["L_tot"][-1, 0])
    scen = Scenario.load("aml-cr1")
    draws = sample_parameters(model, REPLICATES, SEED, medians=scen.parameters,
                              variability=scen.variability)
    at_cr = draws["start_burden"] * model.parameter_by_name["marrow_per_kg"].value \
        * draws["weight"]
    marrow = float(simulate(model, None, 1.0, times=[0.0], parameters={"weight": 70.0}
                            )["K_marrow"][0, 0])
    v = {"untreated_plateau_cells": diagnosis, "at_cr_median_cells": float(np.median(at_cr)),
         "at_cr_p95_cells": float(np.quantile(at_cr, 0.95)), "marrow_cells_70kg": marrow}
    ok = (within(diagnosis, 3e11, 3e12) and v["at_cr_p95_cells"] < 1e9
          and within(marrow, 6e11, 8e11))
    return TargetCheck("P1", "leukemic cells at diagnosis; at CR; nucleated marrow (70 kg)", v,
                       "~1e12; < 1e9; ~7e11", ok, "clinical S87, S84")


def p2_relapse_definitions() -> TargetCheck:
    """Default thresholds, and molecular relapse always precedes haematologic relapse."""
    haem = run_patients("aml-cr1", replicates=300, years=3, seed=SEED)
    mol = run_patients("aml-cr1", replicates=300, years=3, seed=SEED, relapse="molecular")
    h, m = haem.result.crossing_time, mol.result.crossing_time
    both = ~np.isnan(h)
    ordered = bool(np.all(~np.isnan(m[both])) and np.all(m[both] < h[both]))
    v = {"haematologic": RELAPSE_DEFINITIONS["haematologic"],
         "molecular": RELAPSE_DEFINITIONS["molecular"], "molecular_first": ordered}
    ok = v["haematologic"] == 0.05 and v["molecular"] == 1e-4 and ordered
    return TargetCheck("P2", "relapse definitions (blast fraction)", v, ">= 5%; MRD >= 1e-4",
                       ok, "clinical S52, S48")


def doubling_time_days(T_double: float) -> float:
    """Net doubling time of a low residual burden, measured on the model's trajectory."""
    r = simulate(patient_model(), None, 60.0, times=[0.0, 60.0],
                 parameters={"start_burden": 1e-6, "T_double": T_double})
    return float(60.0 * np.log(2) / np.log(r["L_tot"][-1, 0] / r["L_tot"][0, 0]))


def p3_doubling() -> TargetCheck:
    expected = {"npm1": 11, "pml-rara": 12, "runx1-runx1t1": 14, "cbfb-myh11": 36}
    table = subtypes()
    v = {k: doubling_time_days(float(table[k]["T_double"])) for k in expected}
    lam = patient_model().parameter_by_name["lam_L"].value
    v["blast_cycle_h"] = float(24 * np.log(2) / lam)
    ok = all(abs(v[k] / d - 1) < 0.05 for k, d in expected.items()) and \
        within(v["blast_cycle_h"], 40, 56)
    return TargetCheck("P3", "net doubling of residual leukemia by subtype; blast cycle", v,
                       "11, 12, 14, 36 d; ~48 h", ok, "clinical S28, S101")


def p4_chemo_alone() -> TargetCheck:
    run = chemo_only("aml-cr1")
    s = run.summary()
    df = run.outcomes()
    relapses = df[df["event"] == "relapse"]
    within_3y = float((relapses["relapse_day"] <= 3 * 365.25).mean())
    v = {"relapse_fraction": s["relapse"]["value"], "share_within_3y": within_3y,
         "median_rfs_months": s["median_rfs_months"], "n": s["replicates"]}
    ok = (within(v["relapse_fraction"], 0.5, 0.7) and within_3y >= 0.9
          and v["median_rfs_months"] is not None and within(v["median_rfs_months"], 10, 15))
    return TargetCheck("P4", "chemotherapy alone (aml-cr1, n = 2000): relapse; share within "
                       "3 y; median RFS", v, "50-70%; >= 90%; 10-15 months", ok,
                       "clinical S34, S39, S37, S90, S107")


def p5_elderly() -> TargetCheck:
    s = chemo_only("aml-elderly").summary()
    v = s["relapse"]["value"]
    return TargetCheck("P5", "age >= 60 (aml-elderly): share relapsing", v, "80-90%",
                       within(v, 0.8, 0.9), "clinical S136, S35")


def p6_dosing() -> TargetCheck:
    sched = CikSchedule()
    share = default_product().median_composition()["f_cik"]
    v = {"dose_cd3_per_kg": sched.dose_per_kg, "infusions": sched.infusions,
         "interval_days": sched.interval_days, "product_cd3cd56_share": share}
    ok = (within(sched.dose_per_kg, 1e7, 1e8) and 1 <= sched.infusions <= 7
          and within(sched.interval_days, 14, 28) and within(share, 0.11, 0.51))
    return TargetCheck("P6", "default CIK dosing and product", v,
                       "1e7-1e8/kg; 1-7; 2-4 weeks; 11-51% CD3+CD56+", ok,
                       "clinical S1, S2, S5")


def effector_kinetics() -> dict[str, float]:
    """One infusion in a patient without leukemia: half-life, detection, marrow share."""
    model = patient_model()
    sched = CikSchedule(infusions=1, first_day=0.0)
    t = np.linspace(0, 40, 801)
    r = simulate(model, Protocol("one-infusion", tuple(sched.events())), 40.0, times=t,
                 parameters={"start_burden": 0.0})
    e = r["E_tot"][:, 0]
    half = float(np.interp(0.5, e[::-1] / e[0], t[::-1]))
    detect = float(np.interp(DETECTION_LIMIT, e[::-1] / e[0], t[::-1]))
    p = model.parameter_by_name
    infused = sched.dose_per_kg * p["weight"].value / (p["prod_cik"].value + p["prod_t"].value)
    return {"half_life_days": half, "detectable_days": detect, "marrow_share": e[0] / infused}


def p7_persistence() -> TargetCheck:
    v = effector_kinetics()
    ok = (within(v["half_life_days"], 3, 5) and v["detectable_days"] <= 15
          and v["marrow_share"] <= 0.1)
    return TargetCheck("P7", "infused CIK: half-life; detectable for (10% of peak); share in "
                       "marrow", v, "~4 d; <= ~14 d; small", ok,
                       "clinical S121, S71, S62, S63")


def p8_normal_sparing() -> TargetCheck:
    """Normal marrow with vs without CIK in a patient without residual leukemia, so that any
    difference is CIK acting on normal cells (with leukemia present, the deterministic
    median patient relapses without CIK and the leukemia CIK removes would crowd the marrow:
    a benefit, not suppression)."""
    model = patient_model()
    scen = Scenario.load("aml-cr1")
    t = np.linspace(0, 365, 731)
    pars = {"start_burden": 0.0}
    base = simulate(model, patient_protocol(scen, None), 365.0, times=t, parameters=pars)
    cik = simulate(model, patient_protocol(scen, CikSchedule()), 365.0, times=t,
                   parameters=pars)
    v = float(np.max(np.abs(cik["N"][:, 0] / base["N"][:, 0] - 1)))
    return TargetCheck("P8", "normal marrow cells with vs without CIK (max relative change)", v,
                       "within 5%", v <= 0.05, "killing S06, S27")


def all_patient_targets() -> list[Callable[[], TargetCheck]]:
    from ciksim.targets.leukemia import leukemia_targets

    return [p1_burden, p2_relapse_definitions, p3_doubling, p4_chemo_alone, p5_elderly,
            p6_dosing, p7_persistence, p8_normal_sparing, *leukemia_targets()]

"""Second-wave patient targets P9-P13 (leukemia biology), computed from the patient model."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from ciksim.analysis.patient import CikSchedule, PatientRun, patient_protocol, run_patients
from ciksim.engines import simulate
from ciksim.engines.stochastic import simulate_stochastic
from ciksim.model.variability import sample_parameters, share_at_bounds
from ciksim.models.patient import STOCHASTIC, Scenario, builtin_scenarios, patient_model, subtypes
from ciksim.protocol import Protocol
from ciksim.targets.base import TargetCheck, within
from ciksim.trial.estimands import cumulative_incidence, event_labels, incidence_at

SEED = 0
MRD_CUTOFF = 0.01  # NPM1mut/ABL1 after induction (clinical S24 Hubmann 2014)
LONE_LINEAGES = 2000


@cache
def npm1_cohort() -> PatientRun:
    """2000 NPM1-mutated aml-cr1 patients, chemotherapy alone, followed 2 years (cached)."""
    return run_patients("aml-cr1", subtype="npm1", replicates=2000, years=2.0, seed=SEED)


def p9_mrd() -> TargetCheck:
    """2-year cumulative incidence of relapse (death competing) by post-induction MRD."""
    df = npm1_cohort().outcomes()
    high = df["npm1_ratio_day0"] >= MRD_CUTOFF
    v: dict[str, float] = {"share_high": float(high.mean())}
    for name, g in (("high", df[high]), ("low", df[~high])):
        cir = cumulative_incidence(g, "relapse")
        v[f"cir_2y_{name}"] = incidence_at(cir, 24.0)
    ok = within(v["cir_2y_high"], 0.6, 0.9) and within(v["cir_2y_low"], 0.15, 0.4)
    return TargetCheck("P9", "NPM1mut/ABL1 after induction >= 0.01 vs < 0.01 (aml-cr1/npm1, "
                       "n = 2000): 2-year cumulative incidence of relapse", v,
                       "60-90% vs 15-40%", ok, "clinical S24 Hubmann 2014")


def lone_lic(protocol: Protocol | None, n: int = LONE_LINEAGES, years: float = 6.0):
    """``n`` median patients each starting with exactly one active LIC (and the blasts it
    supports), under ``protocol``; relapse = 5% marrow blasts. Returns the stochastic result.

    The lone cell is set through the declared initial state: ``start_burden`` is chosen so
    that the patient has one LIC, and the active share rounds to one active, no quiescent.
    """
    model = patient_model()
    p = model.default_parameters()
    lic0 = p["marrow_per_kg"] * p["weight"] * p["f_LIC"]
    pars = {"start_burden": 1.0 / lic0}
    return simulate_stochastic(model, protocol, years * 365.25, stochastic=STOCHASTIC,
                               parameters={k: np.full(n, v) for k, v in pars.items()},
                               seed=SEED, watch="blast_fraction", threshold=0.05)


def p10_founding() -> TargetCheck:
    """Probability that a random residual leukemic cell at remission founds a relapse.

    = (LIC share of the leukemic cells at day 0) x (probability that a lone LIC at day 0
    founds a relapse under the aml-cr1 consolidation), for the median patient; blasts do not
    self-renew, so their share founds none.
    """
    model = patient_model()
    scen = Scenario.load("aml-cr1")
    pars = {**model.default_parameters(), **scen.parameters}
    res = simulate(model, None, 1.0, times=[0.0], parameters=pars)
    lic_share = float(res["LIC"][0, 0] / res["L_tot"][0, 0])
    with_chemo = lone_lic(patient_protocol(scen, None))
    untreated = lone_lic(None)
    founds = float(np.mean(~np.isnan(with_chemo.crossing_time)))
    founds_untreated = float(np.mean(~np.isnan(untreated.crossing_time)))
    v = {"probability": lic_share * founds, "lic_share_at_remission": lic_share,
         "lone_lic_founds_relapse": founds, "lone_lic_founds_untreated": founds_untreated}
    return TargetCheck("P10", "a random residual leukemic cell (median aml-cr1 patient at "
                       "remission) founds a relapse", v, "<= 1%", v["probability"] <= 0.01,
                       "clinical_more M4 Ailles 1999")


def shipped_populations() -> list[Scenario]:
    """Every shipped scenario, and aml-cr1 with each molecular subtype."""
    out = [Scenario.load(name) for name in builtin_scenarios()]
    out += [Scenario.load("aml-cr1").with_subtype(s) for s in subtypes()]
    return out


def p11_bounds(n: int = 4000) -> TargetCheck:
    """Largest share of virtual patients at a bound of a varying parameter's range."""
    model = patient_model()
    worst: dict[str, float] = {}
    for scen in shipped_populations():
        draws = sample_parameters(model, n, SEED, medians=scen.parameters,
                                  variability=scen.variability)
        sigma = {p.name: p.variability for p in model.parameters}
        sigma.update(scen.variability)
        for name, values in draws.items():
            if sigma.get(name, 0) > 0:
                share = share_at_bounds(model.parameter_by_name[name], values)
                worst[f"{scen.name}:{name}"] = share
    key = max(worst, key=worst.get)
    v = {"worst": worst[key], "worst_parameter": key, "parameters_checked": len(worst)}
    return TargetCheck("P11", "share of virtual patients at either bound of any varying "
                       "parameter's range (every shipped scenario and subtype)", v,
                       "<= 1% per parameter", worst[key] <= 0.01, "structural",
                       details={"shares": worst})


def p12_persistence_variability() -> TargetCheck:
    """Coefficient of variation of the effector half-life across CIK-treated patients."""
    run = run_patients("aml-cr1", cik=CikSchedule(), replicates=2000, years=0.1, seed=SEED)
    names = run.result.model.parameter_names
    half = run.result.parameters[names.index("t_half_E")]
    cv = float(np.std(half) / np.mean(half))
    v = {"cv": cv, "median_days": float(np.median(half))}
    return TargetCheck("P12", "effector half-life across patients: coefficient of variation",
                       v, ">= 50%", cv >= 0.5, "clinical S71 Stein 2019")


def p13_death_in_remission() -> TargetCheck:
    """Non-relapse mortality: its cumulative incidence, and RFS counting it."""
    from lifelines import KaplanMeierFitter

    from ciksim.targets.patient import chemo_only

    df = chemo_only("aml-cr1").outcomes()
    nrm = cumulative_incidence(df, "death")
    cir = cumulative_incidence(df, "relapse")
    km = KaplanMeierFitter().fit(df["duration"], event_labels(df["event"]) != "censored")
    rfs_3y = float(km.survival_function_at_times(36.0).iloc[0])
    gap = abs(1 - rfs_3y - incidence_at(cir, 36.0) - incidence_at(nrm, 36.0))
    v = {"nrm_5y": incidence_at(nrm, 60.0), "nrm_1y": incidence_at(nrm, 12.0),
         "rfs_3y": rfs_3y, "rfs_vs_cir_plus_nrm_gap": gap}
    ok = within(v["nrm_5y"], 0.05, 0.15) and gap <= 0.005
    return TargetCheck("P13", "death in remission (aml-cr1, chemotherapy alone): cumulative "
                       "incidence at 5 years; 1 - RFS = CIR + NRM at 3 years", v,
                       "5-15% (derived from S107 and S34); gap <= 0.5 points", ok,
                       "clinical S107 Kern 2003, S34 Ganzel 2018 (derived)")


def leukemia_targets() -> list[Callable[[], TargetCheck]]:
    return [p9_mrd, p10_founding, p11_bounds, p12_persistence_variability,
            p13_death_in_remission]

"""Culture targets C1-C11, computed from the default culture model.

Runs use 200 donors and seed 0 unless told otherwise; "median" is the donor median. C1-C9
concern research-scale cultures (``cik-standard``, ``cik-research``); C10 the clinical-grade
``cik-gmp`` product, C11 patient-derived starting material.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

import numpy as np

from ciksim.analysis.culture import CultureRun, run_culture
from ciksim.engines import simulate
from ciksim.models.culture import culture_model
from ciksim.protocol import Protocol
from ciksim.targets.base import TargetCheck, within

DONORS = 200
SEED = 0
#: Research-scale protocols the phenotype and expansion targets C3-C6 are checked on.
CIK_PROTOCOLS = ("cik-standard", "cik-research")
#: The clinical-grade protocol (C10, C11) and its harvest window (days).
GMP_PROTOCOL = "cik-gmp"
GMP_HARVEST_DAYS = (21, 28)


@cache
def culture_runs(protocol: str, donors: int = DONORS, seed: int = SEED, days: int = 21,
                 donor: str = "healthy") -> CultureRun:
    """A cached donor batch (shared by the targets), ``days`` long."""
    return run_culture(protocol, days=days, donors=donors, seed=seed, donor=donor)


def cd3_fold(run: CultureRun) -> np.ndarray:
    """CD3+ fold expansion (n_days, n_donors), counting cells as if none were discarded."""
    r = run.result
    cd3 = r["cd3_cells"] / r.kept
    return cd3 / cd3[0]


def _median(run: CultureRun, key: str, day: int) -> float:
    return float(np.median(run.per_donor[key][day]))


def c1_day0_composition() -> TargetCheck:
    run = culture_runs("cik-standard")
    v = {k: _median(run, k, 0) for k in ("cd3_pct", "cd3cd56_pct", "nk_pct")}
    ok = (within(v["cd3_pct"], 45, 70) and within(v["cd3cd56_pct"], 1, 5)
          and within(v["nk_pct"], 5, 20))
    return TargetCheck("C1", "day-0 PBMC: % CD3+, % CD3+CD56+, % CD3-CD56+ NK", v,
                       "45-70; 1-5; 5-20 %", ok, "culture.md §2")


def first_s_phase_hours(protocol: str = "cik-standard") -> float:
    """Median hours from anti-CD3 to first S-phase entry of the cells that enter by +72 h.

    Computed by a pulse-chase on the model: division, death and CD56 gain switched off, so
    the cycling pool counts the cells that have entered S phase.
    """
    proto = Protocol.load(protocol)
    okt3_day = min(e.day for e in proto.events if "OKT3" in e.values)
    t = np.linspace(0, okt3_day + 3, int((okt3_day + 3) * 96) + 1)
    r = simulate(culture_model(), proto, t[-1], times=t,
                 parameters={"r_max": 0.0, "d_act": 0.0, "k_conv": 0.0, "d_rest": 0.0})
    entered = r["T_act"][:, 0] + 0.0
    frac = entered / entered[-1]
    return float(24 * (np.interp(0.5, frac, t) - okt3_day))


def peak_generation_time_hours(protocol: str = "cik-standard") -> float:
    """Generation time of cycling activated T cells at their fastest (typical donor)."""
    r = simulate(culture_model(), Protocol.load(protocol), 21,
                 times=np.linspace(0, 21, 21 * 24 + 1))
    return float(24 * np.log(2) / np.max(r["cycle_rate"]))


def c2_cell_cycle() -> TargetCheck:
    v = {"first_s_phase_h": first_s_phase_hours(),
         "peak_generation_h": peak_generation_time_hours()}
    ok = within(v["first_s_phase_h"], 24, 26) and within(v["peak_generation_h"], 8, 13)
    return TargetCheck("C2", "first S phase after anti-CD3; generation time at peak", v,
                       "24-26 h; 8-13 h", ok, "culture.md §4")


def c3_fold_day21(protocol: str = "cik-standard") -> TargetCheck:
    run = culture_runs(protocol)
    v = _median(run, "total_fold", 21)
    band = np.quantile(run.per_donor["total_fold"][21], [0.05, 0.95]).tolist()
    return TargetCheck("C3", f"median total fold at day 21 ({protocol})", v, "30-300",
                       within(v, 30, 300), "culture_data.csv; culture.md §2",
                       {"p05_p95": band})


def c4_cd3cd56_share(protocol: str = "cik-standard") -> TargetCheck:
    run = culture_runs(protocol)
    v = {"day14": _median(run, "cd3cd56_pct", 14), "day21": _median(run, "cd3cd56_pct", 21)}
    ok = within(v["day14"], 25, 60) and within(v["day21"], 30, 70)
    return TargetCheck("C4", f"% CD3+CD56+ at day 14; day 21 ({protocol})", v,
                       "25-60; 30-70 %", ok, "Kim 2012; Introna 2006; Nishimura 2008")


def c5_day14_phenotype(protocol: str = "cik-standard") -> TargetCheck:
    run = culture_runs(protocol)
    v = {"cd3_pct": _median(run, "cd3_pct", 14), "nk_pct": _median(run, "nk_pct", 14)}
    ok = v["cd3_pct"] >= 90 and v["nk_pct"] <= 10
    return TargetCheck("C5", f"% CD3+ and % NK at day 14 ({protocol})", v, ">= 90; <= 10 %",
                       ok, "Kim 2012")


def c6_cd3cd56_enrichment(protocol: str = "cik-standard") -> TargetCheck:
    run = culture_runs(protocol)
    ratio = run.per_donor["cd3cd56_fold"][21] / run.per_donor["total_fold"][21]
    v = float(np.median(ratio))
    return TargetCheck("C6", f"CD3+CD56+ fold / total fold at day 21 ({protocol})", v, "3-30",
                       within(v, 3, 30), "culture.md §2")


def c7_cd56_origin() -> TargetCheck:
    """Structural: no process turns NK into CD3+CD56+, and without T cells none appear."""
    model = culture_model()
    t_species = set(model.with_role("cd3cd56neg"))
    sources_ok = True
    for pr in model.processes:
        if pr.changes.get("CIK", 0) > 0:
            consumed = {s for s, c in pr.changes.items() if c < 0}
            self_renewal = set(pr.changes) == {"CIK"}
            if not (self_renewal or (bool(consumed) and consumed <= t_species)):
                sources_ok = False
            if "NK" in pr.changes:
                sources_ok = False
    r = simulate(model, Protocol.load("cik-standard"), 21,
                 parameters={"f_cd3": 0.0, "f_cik0": 0.0})
    cik_without_t = float(np.max(r["CIK"]))
    nk_grew = float(r["NK"][-1, 0] / r["NK"][0, 0])
    ok = sources_ok and cik_without_t == 0.0 and nk_grew > 1
    return TargetCheck("C7", "CD3+CD56+ cells come from CD3+CD56- T cells, not from NK",
                       {"only_t_sources": sources_ok, "max_cd3cd56_without_t": cik_without_t,
                        "nk_fold_without_t": nk_grew}, "structural", ok,
                       "Lu & Negrin 1994; Franceschetti 2009")


def c8_lak_vs_cik() -> TargetCheck:
    cik, lak = culture_runs("cik-research"), culture_runs("lak")
    v = {"lak_fold": _median(lak, "total_fold", 21), "cik_fold": _median(cik, "total_fold", 21),
         "lak_nk_pct": _median(lak, "nk_pct", 21), "cik_nk_pct": _median(cik, "nk_pct", 21)}
    ok = v["lak_fold"] < v["cik_fold"] / 3 and v["lak_nk_pct"] > v["cik_nk_pct"]
    return TargetCheck("C8", "LAK (IL-2 only) vs CIK at day 21: fold; NK share", v,
                       "LAK fold < CIK/3; LAK NK share > CIK", ok,
                       "Schmidt-Wolf 1993; Clausen 2001")


def c9_il2() -> TargetCheck:
    """1 IU/mL = 4 pM; refeeds keep IL-2 above EC50; without them growth stalls."""
    model = culture_model()
    proto = Protocol.load("cik-research")
    t = np.arange(1.05, 21.0, 0.1)  # off the event days, so minima before feeds are seen
    fed = simulate(model, proto, 21, times=t)
    ratio_fed = float(np.min(fed["il2_pM"] / fed["EC50_il2"]))
    starved_proto = proto.without("feed", after=1.5).without("split", after=1.5)
    starved = simulate(model, starved_proto, 21, times=t)
    ratio_starved = float(np.min(starved["il2_pM"][t > 14] / starved["EC50_il2"][t > 14]))
    day7, day21 = np.argmin(np.abs(t - 7.05)), -1
    growth_fed = float(fed["total_cells"][day21, 0] / fed["total_cells"][day7, 0])
    growth_starved = float(starved["total_cells"][day21, 0] / starved["total_cells"][day7, 0])
    pm_per_iu = float(model.parameter_by_name["il2_pM_per_IU"].value)
    v = {"pM_per_IU_per_mL": pm_per_iu, "min_il2_over_ec50_fed": ratio_fed,
         "min_il2_over_ec50_unfed_after_day14": ratio_starved,
         "growth_day7_to_21_fed": growth_fed, "growth_day7_to_21_unfed": growth_starved}
    ok = (abs(pm_per_iu - 4.0) < 0.5 and ratio_fed > 1 and ratio_starved < 1
          and growth_starved <= 1.5 and growth_fed > 5)
    return TargetCheck("C9", "IL-2 units; refeeding keeps IL-2 above EC50; no refeed stalls", v,
                       "structural", ok, "culture.md §4")


def c10_gmp_product() -> TargetCheck:
    """Clinical-grade product at harvest (days 21 and 28): CD3+ fold 5-30, CD3+CD56+ fold
    10-100, CD3+CD56+ share 10-55% (donor medians, healthy donors)."""
    run = culture_runs(GMP_PROTOCOL, days=max(GMP_HARVEST_DAYS))
    v: dict[str, float] = {}
    ok = True
    for d in GMP_HARVEST_DAYS:
        v[f"cd3_fold_d{d}"] = float(np.median(cd3_fold(run)[d]))
        v[f"cd3cd56_fold_d{d}"] = _median(run, "cd3cd56_fold", d)
        v[f"cd3cd56_pct_d{d}"] = _median(run, "cd3cd56_pct", d)
        ok = (ok and within(v[f"cd3_fold_d{d}"], 5, 30)
              and within(v[f"cd3cd56_fold_d{d}"], 10, 100)
              and within(v[f"cd3cd56_pct_d{d}"], 10, 55))
    return TargetCheck("C10", f"clinical-grade ({GMP_PROTOCOL}) product at day 21 and 28: CD3+ "
                       "fold; CD3+CD56+ fold; % CD3+CD56+", v, "5-30; 10-100; 10-55 %", ok,
                       "clinical S5 Laport, S2 Linn, S1 Introna; culture S17 Bremm 2019")


def c11_patient_material() -> TargetCheck:
    """Patient-derived (post-chemotherapy) vs healthy starting material on the clinical
    protocol: ratio of median total fold at harvest (day 21; day 28 reported too)."""
    days = max(GMP_HARVEST_DAYS)
    healthy = culture_runs(GMP_PROTOCOL, days=days)
    patient = culture_runs(GMP_PROTOCOL, days=days, donor="patient-post-chemo")
    v = {f"fold_ratio_d{d}": _median(patient, "total_fold", d) / _median(healthy, "total_fold", d)
         for d in GMP_HARVEST_DAYS}
    ok = all(within(x, 0.05, 0.4) for x in v.values())
    return TargetCheck("C11", "patient (post-chemotherapy) / healthy-donor fold at harvest "
                       f"({GMP_PROTOCOL}, days 21 and 28)", v, "0.05-0.4", ok,
                       "culture S16 Clausen 2001 (6 and 34 vs 100)")


def all_culture_targets() -> list[Callable[[], TargetCheck]]:
    """Every culture target (each computed when called), on the protocols each is defined
    for."""
    return [c1_day0_composition, c2_cell_cycle,
            *(partial(f, p) for p in CIK_PROTOCOLS
              for f in (c3_fold_day21, c4_cd3cd56_share, c5_day14_phenotype,
                        c6_cd3cd56_enrichment)),
            c7_cd56_origin, c8_lak_vs_cik, c9_il2, c10_gmp_product, c11_patient_material]

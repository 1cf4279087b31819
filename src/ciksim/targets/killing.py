"""Killing targets K1-K8, computed from the default killing model (4-h assays).

The effector product is the culture model's day-21 cik-standard harvest for 200 donors
(seed 0), unless a target concerns a pure subset (K5). Values are donor medians.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import cache

import numpy as np

from ciksim.analysis.killing import Product, builtin_product, run_assay
from ciksim.assays.lysis import AssayWarning, ExponentialFit, LysisData, analyse, lytic_units
from ciksim.targets.base import TargetCheck, within

DONORS = 200
SEED = 0


@cache
def cik_product() -> Product:
    return builtin_product("cik", DONORS, SEED)


def median_lysis(target: str, et: float, *, block: str | None = None,
                 product: Product | None = None) -> float:
    """Donor-median % specific lysis of a 4-h assay at one E:T."""
    assay = run_assay(product or cik_product(), target, et=[et], block=block, donors=DONORS,
                      seed=SEED)
    return float(np.median(assay.lysis_pct[0]))


def k1_k562() -> TargetCheck:
    v = median_lysis("k562", 60)
    return TargetCheck("K1", "CIK vs K562: % specific lysis at E:T 60:1", v, "60-90 %",
                       within(v, 60, 90), "killing S04 (77%)")


def k2_aml() -> TargetCheck:
    """K2's numbers come from proxies (killing S04 HEK293 45/54%, S25 NK vs myeloma): Linn
    2002 (S05) gives AML curves only in figures, not retrieved as numbers."""
    v = {"et20": median_lysis("aml-blast", 20), "et40": median_lysis("aml-blast", 40)}
    ok = within(v["et20"], 25, 55) and within(v["et40"], 35, 65)
    return TargetCheck("K2", "CIK vs AML blasts at E:T 20:1 and 40:1", v, "25-55; 35-65 %", ok,
                       "killing.md derived defaults; S04 HEK293 and S25 NK proxies (Linn 2002 "
                       "S05 curves not available as numbers)")


def k3_normal() -> TargetCheck:
    v = {"normal_pbmc": median_lysis("normal-pbmc", 40), "cd34": median_lysis("cd34", 40)}
    ok = v["normal_pbmc"] <= 5 and v["cd34"] <= 5
    return TargetCheck("K3", "CIK vs autologous normal PBMC and CD34+ at E:T 40:1", v, "<= 5 %",
                       ok, "killing S25, S06, S16")


def k4_allogeneic() -> TargetCheck:
    v = median_lysis("normal-pbmc-allogeneic", 40)
    return TargetCheck("K4", "donor CIK vs HLA-mismatched normal PBMC (E:T 40:1)", v, "20-40 %",
                       within(v, 20, 40), "killing S24 (23-37%)")


def k5_per_cell_ordering() -> TargetCheck:
    """Pure subsets against K562 at 2.5:1, where encounter does not saturate (per cell)."""
    ones, zeros = np.ones(DONORS), np.zeros(DONORS)
    subsets = {"nk": Product("nk", zeros, zeros, ones),
               "cd3cd56": Product("cd3cd56", ones, zeros, zeros),
               "t": Product("t", zeros, ones, zeros)}
    v = {k: median_lysis("k562", 2.5, product=p) for k, p in subsets.items()}
    return TargetCheck("K5", "per-cell activity vs K562 at 2.5:1: NK > CD3+CD56+ > CD3+CD56- T",
                       v, "ordering", v["nk"] > v["cd3cd56"] > v["t"], "killing S11")


def k6_b_all() -> TargetCheck:
    v = {f"ratio_et{e}": median_lysis("b-all-blast", e) / median_lysis("aml-blast", e)
         for e in (20, 40)}
    return TargetCheck("K6", "B-ALL vs AML blast lysis (ratio at 20:1 and 40:1)", v, "<= 0.5",
                       all(x <= 0.5 for x in v.values()), "killing.md (Linn 2002, Marin)")


def _cd3cd56_product() -> Product:
    """Pure CD3+CD56+ effectors (K7 on AML concerns that subset, Linn 2009)."""
    return Product("cd3cd56", np.ones(DONORS), np.zeros(DONORS), np.zeros(DONORS))


#: K7 (revised) lines: (target, effector, E:T). Solid lines are assayed near their data.
K7_NKG2D_LINES = (("k562", 20.0), ("renal-carcinoma", 50.0))


def k7_blocking() -> TargetCheck:
    """Recognition is target-specific (K7 revised).

    K562 and a solid line with bulk CIK: anti-NKG2D cuts lysis at least in half, anti-HLA
    class I changes it by under 10%. AML blasts with CD3+CD56+ cells at 20:1: anti-HLA class
    I cuts lysis by at least a third, anti-NKG2D by under a quarter. Ratios are lysis with /
    without the antibody (donor medians).
    """
    v: dict[str, float] = {}
    ok = True
    for tgt, et in K7_NKG2D_LINES:
        base = median_lysis(tgt, et)
        nkg2d = median_lysis(tgt, et, block="nkg2d") / base
        hla = median_lysis(tgt, et, block="hla") / base
        v[f"{tgt}_nkg2d_ratio"], v[f"{tgt}_hla_ratio"] = nkg2d, hla
        ok = ok and nkg2d <= 0.5 and abs(hla - 1) < 0.1
    cd3cd56 = _cd3cd56_product()
    base = median_lysis("aml-blast", 20, product=cd3cd56)
    v["aml-blast_cd3cd56_hla_ratio"] = median_lysis("aml-blast", 20, block="hla",
                                                    product=cd3cd56) / base
    v["aml-blast_cd3cd56_nkg2d_ratio"] = median_lysis("aml-blast", 20, block="nkg2d",
                                                      product=cd3cd56) / base
    ok = (ok and v["aml-blast_cd3cd56_hla_ratio"] <= 2 / 3
          and v["aml-blast_cd3cd56_nkg2d_ratio"] > 0.75)
    return TargetCheck(
        "K7", "blocking: lysis with / without antibody (K562 20:1, renal line 50:1 with CIK; "
        "AML blasts 20:1 with CD3+CD56+ cells)", v,
        "K562, solid: NKG2D <= 0.5, HLA within 10%; AML: HLA <= 2/3, NKG2D > 0.75", ok,
        "killing S09 Linn 2009, S16 Nowbakht 2005, S18 Paczulla 2019; S12, S13")


#: A worked example (killing.md derived defaults: CIK vs HEK293, A = 56%, k = 0.081).
WORKED_LU = {"plateau_pct": 56.0, "k_per_et": 0.081, "lu20": 1e7 / (1e4 * 5.5),
             "lu30": 1e7 / (1e4 * 9.5)}


def k8_lysis_maths() -> TargetCheck:
    """The analysis code on a hand-computed plate and on the killing.md worked LU example."""
    import pandas as pd

    plate = pd.DataFrame({
        "effector": ["", "", "", "", "cik", "cik", "cik", "cik"],
        "target": ["t"] * 8,
        "et_ratio": [None, None, None, None, 10, 10, 5, 5],
        "kind": ["spontaneous", "spontaneous", "maximum", "maximum"] + ["experimental"] * 4,
        "replicate": [1, 2, 1, 2, 1, 2, 1, 2],
        "value": [100, 140, 1100, 1140, 620, 720, 320, 420],
    })
    res = analyse(LysisData.from_frame(plate), fit_model=False)
    # spontaneous 120, maximum 1120: (620-120)/1000 = 50%, (720-120)/1000 = 60%, ...
    got = dict(zip(res.groups["et_ratio"], res.groups["lysis_pct_mean"], strict=True))
    hand = {10.0: 55.0, 5.0: 25.0}
    fit = ExponentialFit(WORKED_LU["plateau_pct"], WORKED_LU["k_per_et"])
    lu20, lu30 = lytic_units(fit, 20, 1e4), lytic_units(fit, 30, 1e4)
    high_spont = plate.assign(value=plate["value"].where(plate["kind"] != "spontaneous", 400))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AssayWarning)  # the warning is what is checked
        flagged = analyse(LysisData.from_frame(high_spont), fit_model=False).warnings
    v = {"lysis_pct": got, "lu20_per_1e7": lu20, "lu30_per_1e7": lu30,
         "spontaneous_flagged": bool(flagged)}
    ok = (all(abs(got[k] - hand[k]) < 1e-12 for k in hand)
          and lu20 is not None and abs(lu20 / WORKED_LU["lu20"] - 1) < 0.01
          and lu30 is not None and abs(lu30 / WORKED_LU["lu30"] - 1) < 0.01 and bool(flagged))
    return TargetCheck("K8", "lysis maths: % specific lysis, LU (Pross), spontaneous flag", v,
                       "exact", ok, "killing.md §4")


def all_killing_targets() -> list[Callable[[], TargetCheck]]:
    return [k1_k562, k2_aml, k3_normal, k4_allogeneic, k5_per_cell_ordering, k6_b_all,
            k7_blocking, k8_lysis_maths]

"""Product target C12: the product's composition and size flow into the patient and trial.

Computed on the shipped example release data (``release-cik-lots``, six lots of different
mix and size) and on the clinical culture protocol's lots, through the same functions a trial
uses (``ciksim.trial.runner.simulate_chunk``) and the patient model's infusion dose.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np

from ciksim.analysis.product import (
    ProductLots,
    built_product,
    read_release_data,
    release_data_path,
)
from ciksim.engines import simulate
from ciksim.models.patient import patient_model
from ciksim.protocol import Event, Protocol
from ciksim.targets.base import TargetCheck

#: The small trial C12 is checked on: dose, infusions and follow-up of its CIK arm. Delivery
#: failures (T5, drawn independently of the lot) are switched off, so the check isolates the
#: lot's size and mix.
C12_TRIAL = {
    "name": "c12", "seed": 5, "patients_per_arm": 24, "follow_up_years": 0.5,
    "population": {"scenario": "aml-cr1"}, "delivery": {"enabled": False},
    "arms": [{"name": "cik", "cik": {"dose_per_kg": 1e7, "infusions": 3, "first_day": 30}}],
}


@cache
def release_lots() -> ProductLots:
    """The shipped example release data (six lots)."""
    return read_release_data(release_data_path("release-cik-lots"))


def infused_mix(lots: ProductLots, lot: int, dose_per_kg: float = 1e7) -> dict[str, float]:
    """Effector shares in the marrow just after one infusion of ``lot`` (patient model)."""
    proto = Protocol("one", (Event(day=0.0, action="dose", dose="cik", amount=dose_per_kg),))
    pars = {"prod_cik": float(lots.f_cik[lot]), "prod_t": float(lots.f_t[lot]),
            "prod_nk": float(lots.f_nk[lot])}
    r = simulate(patient_model(), proto, 1e-4, times=[0.0, 1e-4], parameters=pars)
    e = {k: float(r[f"E_{k}"][-1, 0]) for k in ("cik", "t", "nk")}
    total = sum(e.values())
    return {k: v / total for k, v in e.items()}


def c12_product_flows() -> TargetCheck:
    """Structural: the infused mix is the lot's, the infusions are those its cells supply.

    (1) For every released lot, the CD3+CD56+ / CD3+CD56- / NK mix reaching the marrow after
    an infusion equals the lot's shares. (2) In a trial arm drawing from the release data,
    each patient's infusions equal min(scheduled, floor(viable CD3+ cells / (dose x weight)))
    of the lot the patient received, and lots of different size give different numbers.
    (3) The built-in clinical product's lots differ in mix and size (they come from the
    culture run, one per donor).
    """
    from ciksim.trial.runner import simulate_chunk
    from ciksim.trial.spec import TrialSpec

    lots = release_lots()
    mix_err = 0.0
    for i in range(lots.lots):
        got = infused_mix(lots, i)
        share = np.array([lots.f_cik[i], lots.f_t[i], lots.f_nk[i]])
        want = share / share.sum()
        mix_err = max(mix_err, float(np.max(np.abs(np.array(list(got.values())) - want))))
    spec = TrialSpec.from_dict(C12_TRIAL)
    cik = spec.arms[0].cik
    assert cik is not None
    df = simulate_chunk(spec, 0, 0, spec.patients_per_arm, lots)
    per_infusion = cik.dose_per_kg * df["weight"].to_numpy()
    expected = np.minimum(np.floor(lots.cd3_cells[df["product_lot"].to_numpy()]
                                   / per_infusion + 1e-9), cik.infusions)
    dose_ok = bool(np.array_equal(expected, df["infusions_given"].to_numpy()))
    gmp = built_product("cik-gmp", donors=20, seed=0)
    assert gmp.cd3_cells is not None
    spread = {"cd3cd56_share_p05_p95": np.quantile(gmp.f_cik, [0.05, 0.95]).tolist(),
              "cd3_cells_p05_p95": np.quantile(gmp.cd3_cells, [0.05, 0.95]).tolist()}
    v = {"max_mix_error": mix_err, "infusions_match_lot_size": dose_ok,
         "infusions_given_counts": df["infusions_given"].value_counts().sort_index().to_dict(),
         "lots_used": int(df["product_lot"].nunique()), "cik_gmp_lots": spread}
    ok = (mix_err < 1e-3 and dose_ok and df["infusions_given"].nunique() > 1
          and np.ptp(gmp.f_cik) > 0 and np.ptp(gmp.cd3_cells) > 0)
    return TargetCheck("C12", "product mix and the infusions a lot supplies flow into the "
                       "patient and trial stages (release data; cik-gmp lots)", v,
                       "structural", ok, "targets.md C12")


def all_product_targets() -> list[Callable[[], TargetCheck]]:
    return [c12_product_flows]

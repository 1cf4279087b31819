"""Parameter recovery and forecast coverage of ``ciksim fit culture`` on simulated donors.

Each donor's true parameters are drawn from the model's donor variability, every
donor-varying parameter (not only the fitted ones: a real donor differs in all of them);
its counts on days 0-7 (partial data, as on day 7 of a real culture) get the fit's noise
model. Reports how often the 95% credible intervals contain the truth and how often the 95%
prediction interval of the day 1e9 CD3+CD56+ cells are reached contains the true day (a
true day after day 28 counts as covered when the interval reaches past day 28), with the
sampler's diagnostics (acceptance, autocorrelation time against the kept chain) and the
share of each parameter's posterior below the truth (its rank: uniform over donors when
the posterior is right, so the central 50% interval should cover half of them).

Run with `make bench`. DONORS (default 20) sets the number of donors; MARGINALISE=0 fixes
the non-fitted donor parameters at their medians (the overconfident fit of earlier
versions); WALKERS, STEPS, BURN override the fit's sampler defaults. Every donor is one
fit whose result is kept in ``OUT/d<i>.json`` (OUT default ``out/fit-recovery``, one folder
per setting): a rerun skips donors already done (resume), BUDGET_S (seconds) stops starting
new donors after that long, and ``python benchmarks/recovery.py report`` summarises the
donors done.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ciksim.engines import simulate
from ciksim.inference.culture import (
    DEFAULT_FREE,
    SOLVER,
    CultureData,
    fit_culture,
    simulated_counts,
)
from ciksim.model.variability import sample_parameters
from ciksim.models.culture import culture_model
from ciksim.protocol import Protocol

DONORS = int(os.environ.get("DONORS", "20"))
MARGINALISE = os.environ.get("MARGINALISE", "1") != "0"
SAMPLER = {k.lower(): int(os.environ[k]) for k in ("WALKERS", "STEPS", "BURN")
           if k in os.environ}
BUDGET_S = float(os.environ.get("BUDGET_S", "inf"))
OUT = Path(os.environ.get("OUT", "out/fit-recovery"))
DOSE = 1e9


def donor_truth(draws: dict[str, np.ndarray], i: int) -> dict[str, float]:
    """Donor ``i``'s true parameters: every donor-varying parameter of its draw."""
    return {name: float(values[i]) for name, values in draws.items()}


def fit_donor(i: int, truth: dict[str, float]) -> dict:
    """Fit donor ``i``'s simulated days 0-7 and compare with its truth."""
    model = culture_model()
    proto = Protocol.load("cik-standard")
    counts = simulated_counts(truth, days=[0, 2, 4, 7], seed=100 + i, donor=f"d{i}")
    t0 = time.process_time()
    fit = fit_culture(CultureData(counts.assign(sd=np.nan)), protocol=proto, seed=i,
                      marginalise=MARGINALISE, **SAMPLER)[0]
    cpu = time.process_time() - t0
    est = fit.estimates().set_index("parameter")
    days = np.arange(0.0, 29.0)
    true = simulate(model, proto, 28, times=days, settings=SOLVER,
                    parameters={**truth, "start_cells": 1e8})["cd3cd56_cells"][:, 0]
    f = fit.forecast(DOSE)
    day = float(days[np.argmax(true >= DOSE)]) if (true >= DOSE).any() else None
    kept = len(fit.samples) // max(1, int(SAMPLER.get("walkers", 32)))
    return {
        "donor": i, "cpu_s": cpu, "acceptance": fit.acceptance,
        "tau_max": float(np.max(fit.autocorr)), "kept_steps": kept,
        "parameters": {name: {"truth": truth[name], "low": float(est.loc[name, "ci_low"]),
                              "median": float(est.loc[name, "estimate"]),
                              "high": float(est.loc[name, "ci_high"]),
                              "rank": float(np.mean(fit.samples[:, j] < truth[name]))}
                       for j, name in enumerate(DEFAULT_FREE)},
        "harvest": {"truth": day, "low": f["day_low"], "high": f["day_high"]},
    }


def covered(rec: dict, name: str) -> bool:
    if name == "harvest":
        h = rec["harvest"]
        truth = np.inf if h["truth"] is None else h["truth"]
        return h["low"] is not None and h["low"] <= truth <= (
            np.inf if h["high"] is None else h["high"])
    p = rec["parameters"][name]
    return p["low"] <= p["truth"] <= p["high"]


def report() -> None:
    recs = [json.loads(p.read_text()) for p in sorted(OUT.glob("d*.json"))]
    if not recs:
        print(f"no donors done in {OUT}")
        return
    n = len(recs)
    cpu = sum(r["cpu_s"] for r in recs)
    print(f"{n} simulated donors ({OUT}), days 0-7 only, non-fitted donor parameters "
          f"{'marginalised' if MARGINALISE else 'fixed at medians'}, "
          f"{cpu / n:.0f} CPU s per fit")
    for name in (*DEFAULT_FREE, "harvest"):
        k = sum(covered(r, name) for r in recs)
        what = "prediction interval of the harvest day" if name == "harvest" \
            else f"interval of {name:8s}"
        missed = [f"d{r['donor']}" for r in recs if not covered(r, name)]
        print(f"  95% {what} covers the truth: {k}/{n} = {k / n:.0%}"
              + (f" (missed: {', '.join(missed)})" if missed else ""))
    ranks = {name: np.array([r["parameters"][name]["rank"] for r in recs])
             for name in DEFAULT_FREE}
    print("  share of the posterior below the truth (uniform on (0, 1) when the intervals are "
          "right): " + "; ".join(
              f"{name} mean {v.mean():.2f}, central 50% covers {np.mean(abs(v - 0.5) <= 0.25):.0%}"
              for name, v in ranks.items()))
    tau = np.array([r["tau_max"] for r in recs])
    kept = np.array([r["kept_steps"] for r in recs])
    acc = np.array([r["acceptance"] for r in recs])
    print(f"  sampler: acceptance {acc.min():.2f}-{acc.max():.2f}; longest autocorrelation "
          f"time {np.median(tau):.0f} steps (median over donors, max {tau.max():.0f}) "
          f"against {int(np.median(kept))} kept steps")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    draws = sample_parameters(culture_model(), DONORS, seed=42)
    start = time.monotonic()
    for i in range(DONORS):
        path = OUT / f"d{i}.json"
        if path.exists():
            continue
        if time.monotonic() - start > BUDGET_S:
            print(f"budget of {BUDGET_S:g} s spent; rerun to go on")
            break
        rec = fit_donor(i, donor_truth(draws, i))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec, indent=1))
        tmp.replace(path)
        print(f"donor {i}: {rec['cpu_s']:.0f} CPU s", flush=True)
    report()


if __name__ == "__main__":
    report() if sys.argv[1:] == ["report"] else main()

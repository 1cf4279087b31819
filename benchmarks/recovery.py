"""Parameter recovery and forecast coverage of ``ciksim fit culture`` on simulated donors.

Each donor's true parameters are drawn from the model's donor variability, every
donor-varying parameter (not only the fitted ones: a real donor differs in all of them);
its counts on days 0-7 (partial data, as on day 7 of a real culture) get the fit's noise
model. Reports
how often the 95% credible intervals contain the truth and how often the 95% prediction
interval of the day 1e9 CD3+CD56+ cells are reached contains the true day (a true day after
day 28 counts as covered when the interval reaches past day 28).
Run with `make bench`; DONORS (default 20) sets the number of donors; MARGINALISE=0 fixes the
non-fitted donor parameters at their medians (the overconfident fit of earlier versions).
"""

from __future__ import annotations

import os
import time

import numpy as np

from ciksim.engines import simulate
from ciksim.inference.culture import DEFAULT_FREE, CultureData, fit_culture, simulated_counts
from ciksim.model.variability import sample_parameters
from ciksim.models.culture import culture_model
from ciksim.protocol import Protocol

DONORS = int(os.environ.get("DONORS", "20"))
MARGINALISE = os.environ.get("MARGINALISE", "1") != "0"
DOSE = 1e9


def donor_truth(draws: dict[str, np.ndarray], i: int) -> dict[str, float]:
    """Donor ``i``'s true parameters: every donor-varying parameter of its draw."""
    return {name: float(values[i]) for name, values in draws.items()}


def main() -> None:
    model = culture_model()
    draws = sample_parameters(model, DONORS, seed=42)
    proto = Protocol.load("cik-standard")
    covered = {name: 0 for name in DEFAULT_FREE}
    forecast_hits = forecast_n = 0
    t0 = time.perf_counter()
    for i in range(DONORS):
        truth = donor_truth(draws, i)
        counts = simulated_counts(truth, days=[0, 2, 4, 7], seed=100 + i, donor=f"d{i}")
        fit = fit_culture(CultureData(counts.assign(sd=np.nan)), protocol=proto, seed=i,
                          marginalise=MARGINALISE)[0]
        est = fit.estimates().set_index("parameter")
        for name in DEFAULT_FREE:
            value = truth[name]
            covered[name] += est.loc[name, "ci_low"] <= value <= est.loc[name, "ci_high"]
        days = np.arange(0.0, 29.0)
        true = simulate(model, proto, 28, times=days,
                        parameters={**truth, "start_cells": 1e8})["cd3cd56_cells"][:, 0]
        forecast_n += 1
        f = fit.forecast(DOSE)
        day = days[np.argmax(true >= DOSE)] if (true >= DOSE).any() else np.inf
        forecast_hits += f["day_low"] is not None and f["day_low"] <= day <= (
            f["day_high"] if f["day_high"] is not None else np.inf)
    print(f"{DONORS} simulated donors, days 0-7 only, non-fitted donor parameters "
          f"{'marginalised' if MARGINALISE else 'fixed at medians'}, "
          f"{time.perf_counter() - t0:.0f} s")
    for name, k in covered.items():
        print(f"  95% interval of {name:8s} covers the truth: {k}/{DONORS} = {k / DONORS:.0%}")
    if forecast_n:
        print(f"  95% prediction interval of the harvest day covers the truth: "
              f"{forecast_hits}/{forecast_n} = {forecast_hits / forecast_n:.0%}")


if __name__ == "__main__":
    main()

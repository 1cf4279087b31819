"""Calibration check of the trial's posterior-predictive effect (issue 12).

For each replicate: true values of every calibrated coordinate are drawn from their priors;
the shipped studies' designs are simulated at the truth to give synthetic evidence
(``calibration_recovery.synthetic``); the calibration runs on it (PARTICLES x GENERATIONS);
the default trial design then runs over DRAWS posterior draws (COHORT patients per arm per
draw), giving the 90% posterior-predictive interval of the true effect (3-year RFS
difference, RMST difference at 3 years, log HR). The true effect itself is the same design
at the true parameters, on TRUE_COHORT patients per arm. Goal: each interval covers the
true effect in at least 8 of 10 replicates.

Replicates FIRST … FIRST + REPLICATES - 1 are run (so the check can be split into short
runs); rows are appended to out/trial-calibration/coverage.csv, and the coverage so far is
printed. Never part of the test suite.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibration_recovery import synthetic, template
from calibration_run import env_ints

from ciksim.evidence import calibrate, parse_evidence
from ciksim.evidence.effect import dimensions
from ciksim.trial.draws import MEASURES, DrawDesign, run_over_draws
from ciksim.trial.sources import DrawSource
from ciksim.trial.spec import TrialSpec

FIRST, REPLICATES, PARTICLES, GENERATIONS, WORKERS, DRAWS, COHORT, TRUE_COHORT = env_ints(
    FIRST=0, REPLICATES=10, PARTICLES=60, GENERATIONS=3, WORKERS=2, DRAWS=40, COHORT=400,
    TRUE_COHORT=4000)
OUT = Path(os.environ.get("OUT", "out/trial-calibration"))
COMPOSITION = {"f_cik": 0.49, "f_t": 0.47, "f_nk": 0.035}
SPEC = {"name": "calibration-check", "seed": 12, "patients_per_arm": 100,
        "follow_up_years": 4, "population": {"scenario": "aml-cr1"},
        "arms": [{"name": "chemotherapy"},
                 {"name": "chemotherapy + CIK", "cik": {"dose_per_kg": 5e7}}]}


class Truth:
    """A sampler that always returns the true effect parameters."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        return pd.DataFrame([self.values] * n)


def run_one(r: int, truth: dict[str, float], spec: TrialSpec) -> dict[str, object]:
    data = synthetic(truth, 1, key=2000 + r)
    ev = parse_evidence(data, origin="synthetic")
    out = OUT / f"rep{r:02d}"
    shutil.rmtree(out, ignore_errors=True)
    res = calibrate(ev, out=out, particles=PARTICLES, generations=GENERATIONS,
                    workers=WORKERS, seed=r, ppc_draws=10)
    post = DrawSource(res.posterior, "posterior", f"synthetic replicate {r}")
    pp = run_over_draws(spec, post, DrawDesign(draws=DRAWS, cohort=COHORT, sizes=(100,)),
                        workers=WORKERS, composition=COMPOSITION).summary()
    effects = {k: v for k, v in truth.items() if k in res.posterior.effects}
    true = run_over_draws(spec, DrawSource(Truth(effects), "sampler", "truth"),
                          DrawDesign(draws=2, cohort=TRUE_COHORT, sizes=(100,)),
                          workers=WORKERS, composition=COMPOSITION).table
    row: dict[str, object] = {"replicate": r, **{f"true_{k}": v for k, v in effects.items()}}
    for m in MEASURES:
        t = float(true[m].mean())
        e = pp["effect"][m]
        row.update({f"{m}_true": t, f"{m}_q05": e["q05"], f"{m}_q95": e["q95"],
                    f"{m}_covered": bool(e["q05"] <= t <= e["q95"])})
    return row


def main() -> None:
    base = parse_evidence(template(), origin="shipped")
    dims = dimensions(base)
    rng = np.random.default_rng(20261212)
    truths = [{d.name: float(d.to_natural(d.rv().rvs(random_state=rng))) for d in dims}
              for _ in range(FIRST + REPLICATES)]
    spec = TrialSpec.from_dict(SPEC)
    OUT.mkdir(parents=True, exist_ok=True)
    table = OUT / "coverage.csv"
    t0 = time.perf_counter()
    for r in range(FIRST, FIRST + REPLICATES):
        row = run_one(r, truths[r], spec)
        old = pd.read_csv(table) if table.exists() else pd.DataFrame()
        if not old.empty:
            old = old[old["replicate"] != r]
        pd.concat([old, pd.DataFrame([row])], ignore_index=True).to_csv(table, index=False)
        print(row, f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    df = pd.read_csv(table)
    for m in MEASURES:
        print(f"{m}: the 90% posterior-predictive interval covers the true effect in "
              f"{int(df[f'{m}_covered'].sum())} of {len(df)} replicates (goal >= 8 of 10)")


if __name__ == "__main__":
    main()

"""Recovery of the in vivo effect from evidence simulated at known parameter values.

For each of REPLICATES replicates, true values of every calibrated coordinate (effects,
bias and offset terms) are drawn from their priors; each shipped study's design (arms,
products, doses, schedules, endpoint, follow-up; n per arm x SIZE) is simulated at the
truth to give its observed counts; the calibration is run on that synthetic evidence
(PARTICLES x GENERATIONS) and the 90% posterior interval of each effect parameter is
checked against the truth. Then the first NARROW replicates are repeated with every study
NARROW_SIZE times larger, to show that the posterior narrows as studies grow.
Writes out/recovery/recovery.csv and out/recovery/recovery.png. With NARROW_TRUTH (e.g.
"potency=0.05,persistence_sd=0.8") it instead calibrates that one truth (bias terms 0) at
each study-size factor in SIZES (default 1,4) and writes out/recovery/narrowing.csv.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from ciksim.evidence import calibrate, parse_evidence
from ciksim.evidence.effect import dimensions
from ciksim.evidence.simulate import Z90, prepare, simulate_batch, summaries

REPLICATES = int(os.environ.get("REPLICATES", "10"))
PARTICLES = int(os.environ.get("PARTICLES", "60"))
GENERATIONS = int(os.environ.get("GENERATIONS", "3"))
WORKERS = int(os.environ.get("WORKERS", "2"))
NARROW = int(os.environ.get("NARROW", "2"))
NARROW_SIZE = int(os.environ.get("NARROW_SIZE", "4"))
OUT = Path(os.environ.get("OUT", "out/recovery"))
NARROW_TRUTH = os.environ.get("NARROW_TRUTH", "")
SIZES = [int(x) for x in os.environ.get("SIZES", "1,4").split(",")]


def template() -> dict:
    text = (resources.files("ciksim.data") / "evidence" / "clinical.toml").read_text("utf-8")
    data = tomllib.loads(text)
    data["studies"] = [s for s in data["studies"] if s.get("use", True)]
    return data


def synthetic(truth: dict[str, float], size: int, key: int) -> dict:
    """The shipped designs with n x size and observed results simulated at ``truth``."""
    data = copy.deepcopy(template())
    data["version"] = f"synthetic-{key}-x{size}"
    for s in data["studies"]:
        for arm in s["arms"]:
            arm["n"] = arm["n"] * size
            if "events" in arm:
                arm["events"] = 0
    ev = parse_evidence(data, origin="synthetic")
    prepared = prepare(ev)
    raw = simulate_batch(prepared, [truth], [key], seed=key)[0]
    sim = summaries(prepared, raw, truth)
    for s, ps in zip(data["studies"], prepared, strict=True):
        if s["endpoint"]["kind"] == "hazard_ratio":
            lo, hi = s["endpoint"]["ci90"]
            se = (np.log(hi) - np.log(lo)) / (2 * Z90) / np.sqrt(size)
            est = float(np.exp(sim[f"{ps.study.id}/log_hr"]))
            s["endpoint"].update(estimate=est, ci90=[est * np.exp(-Z90 * se),
                                                    est * np.exp(Z90 * se)])
        else:
            for arm in s["arms"]:
                p = sim[f"{ps.study.id}/{arm['name']}"]
                arm["events"] = int(np.clip(round(p * (arm["n"] + 1) - 0.5), 0, arm["n"]))
    return data


def run_one(r: int, size: int, truth: dict[str, float]) -> dict[str, object]:
    data = synthetic(truth, size, key=1000 + r)
    ev = parse_evidence(data, origin="synthetic")
    out = OUT / f"rep{r:02d}-x{size}"
    shutil.rmtree(out, ignore_errors=True)
    res = calibrate(ev, out=out, particles=PARTICLES, generations=GENERATIONS,
                    workers=WORKERS, seed=r, ppc_draws=20)
    summ = res.posterior.summary().set_index("parameter")
    row: dict[str, object] = {"replicate": r, "size": size, "evaluations": res.evaluations}
    for name in res.posterior.effects:
        lo, hi = summ.loc[name, "q05"], summ.loc[name, "q95"]
        row[f"{name}_true"] = truth[name]
        row[f"{name}_q05"], row[f"{name}_q95"] = lo, hi
        row[f"{name}_covered"] = bool(lo <= truth[name] <= hi)
        row[f"{name}_width_ratio"] = summ.loc[name, "width_ratio"]
    return row


def main() -> None:
    base = parse_evidence(template(), origin="shipped")
    dims = dimensions(base)
    if NARROW_TRUTH:
        narrow_only(dims)
        return
    rng = np.random.default_rng(20261130)
    truths = []
    for _ in range(REPLICATES):
        truths.append({d.name: float(d.to_natural(d.rv().rvs(random_state=rng)))
                       for d in dims})
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for r, truth in enumerate(truths):
        rows.append(run_one(r, 1, truth))
        print(rows[-1], f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    for r in range(min(NARROW, REPLICATES)):
        rows.append(run_one(r, NARROW_SIZE, truths[r]))
        print(rows[-1], f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(OUT / "recovery.csv", index=False)
    one = df[df["size"] == 1]
    effects = [c.removesuffix("_covered") for c in df.columns if c.endswith("_covered")]
    for name in effects:
        print(f"{name}: 90% interval covers the truth in {int(one[f'{name}_covered'].sum())}"
              f" of {len(one)} replicates")
    for name in effects:
        for r in range(min(NARROW, REPLICATES)):
            w = df[df["replicate"] == r].set_index("size")[f"{name}_width_ratio"]
            print(f"{name}, replicate {r}: width ratio {w.loc[1]:.2f} at n x1, "
                  f"{w.loc[NARROW_SIZE]:.2f} at n x{NARROW_SIZE}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    plot(df, effects)


def narrow_only(dims: list) -> None:
    """NARROW_TRUTH="potency=0.05,persistence_sd=0.8": that truth (bias and offset terms 0)
    calibrated at each study-size factor in SIZES; prints the 90% intervals and widths."""
    truth = {d.name: 0.0 for d in dims}
    for item in NARROW_TRUTH.split(","):
        name, value = item.split("=")
        truth[name.strip()] = float(value)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for size in SIZES:
        rows.append(run_one(0, size, truth))
        print(rows[-1], f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(OUT / "narrowing.csv", index=False)
    for name in (c.removesuffix("_covered") for c in df.columns if c.endswith("_covered")):
        for _, r in df.iterrows():
            print(f"{name} (truth {truth[name]:g}), studies x{r['size']}: 90% interval "
                  f"{r[f'{name}_q05']:.3g}-{r[f'{name}_q95']:.3g}, width ratio "
                  f"{r[f'{name}_width_ratio']:.2f}")


def plot(df: pd.DataFrame, effects: list[str]) -> None:
    from ciksim.report.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(effects), figsize=(5 * len(effects), 3.6), squeeze=False)
    for ax, name in zip(axes[0], effects, strict=True):
        one = df[df["size"] == 1].reset_index(drop=True)
        log = name == "potency"
        for i, row in one.iterrows():
            color = "#4c72b0" if row[f"{name}_covered"] else "#c44e52"
            ax.plot([i, i], [row[f"{name}_q05"], row[f"{name}_q95"]], color=color, lw=4)
            ax.plot(i, row[f"{name}_true"], "k_", ms=12, mew=2)
        big = df[df["size"] > 1].reset_index(drop=True)
        for _, row in big.iterrows():
            i = int(row["replicate"]) + 0.3
            ax.plot([i, i], [row[f"{name}_q05"], row[f"{name}_q95"]], color="#55a868", lw=4)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("replicate (green: studies x" f"{NARROW_SIZE})")
        ax.set_ylabel(name)
        ax.set_title(f"{name}: 90% posterior interval vs truth (black)")
    fig.tight_layout()
    fig.savefig(OUT / "recovery.png", dpi=120)


if __name__ == "__main__":
    main()

"""Recovery of the in vivo effect from evidence simulated at known parameter values, and
the narrowing of the posterior as the studies grow.

Two designs (TRUTHS):

* ``fixed`` (the issue's criterion, "evidence simulated from known parameter values is
  calibrated back"): one known truth for every replicate, the effect parameters at the
  medians of the shipped patient posterior (the effect the real evidence points to, where
  users' calibrations operate) and every study bias/offset term at 0 (the studies as
  designed, no bias: the terms' prior mean); the replicates differ only in the simulated
  evidence (key FIXED_KEY + r) and the calibration seed (r). Coverage of the 90% intervals
  is counted per parameter. Chosen before any fixed-truth cell was run.
* ``prior`` (stricter, simulation-based-calibration style): for each replicate, true values
  of every calibrated coordinate (effects, bias and offset terms) are drawn from their
  priors, tails included; over many replicates a calibrated posterior covers 90% of them.

For each replicate and its truth, each shipped study's design (arms,
products, doses, schedules, endpoint, follow-up; n per arm x size) is simulated at the
truth to give its observed counts; the calibration is run on that synthetic evidence
(PARTICLES per generation, the default final tolerance, at most MAX_GENERATIONS) and the
90% posterior interval of each effect parameter is checked against the truth (coverage, at
the shipped sizes). Every replicate is also calibrated at the study-size factors in SIZES
(default 0.25: a quarter of each arm, at least one patient), and the first NARROW
replicates (default 3) at BIG_SIZES (default 4; e.g. BIG_SIZES=4,16), so that the width
of the posterior can be compared across sizes for the same truth. Cells run size by size
(all replicates at x1 first). One study set at x16 takes about 0.24 CPU s, 15 times one
at x1; with the study terms integrated out a cell needs 300-700 of them.

ONLY (sizes) and FIRST (a replicate index) restrict a process to some cells, so that a
second process can run the large sizes or further replicates (REPLICATES=20 FIRST=10
ONLY=1: replicates 10-19 at the shipped sizes; the truths of the first 10 stay the same).

Every (replicate, size) cell is one calibration whose result is kept in
``OUT/cells/rep<r>-x<size>.json`` (OUT: ``out/recovery`` for the prior design,
``out/recovery-fixed`` for the fixed one): a rerun skips the cells already done (resume),
and BUDGET_S (seconds) stops starting new cells after that long, so the benchmark can be
run in pieces on a loaded machine. ``python benchmarks/calibration_recovery.py report``
(also printed at the end of every run) summarises the cells done: coverage at size 1 with
its Clopper-Pearson 90% interval and the binomial probability of so few covered if the
intervals had 90% coverage, the mean and median width ratio per size, how many replicates
narrowed, and a figure (``OUT/recovery.png``); ``OUT/recovery.csv`` holds one row per cell.
``... calibration_recovery.py persistence`` prints how the studies' summaries move with
``persistence_sd`` against potency (docs/inference.md: why it is not identified).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
import sys
import time
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from pyabc.weighted_statistics import effective_sample_size
from scipy import stats

from ciksim.evidence import Posterior, calibrate, parse_evidence
from ciksim.evidence.effect import dimensions
from ciksim.evidence.simulate import Z90, prepare, simulate_batch, summaries

REPLICATES = int(os.environ.get("REPLICATES", "10"))
PARTICLES = int(os.environ.get("PARTICLES", "100"))
MAX_GENERATIONS = int(os.environ.get("MAX_GENERATIONS", "20"))
WORKERS = int(os.environ.get("WORKERS", "2"))
SIZES = [float(x) for x in os.environ.get("SIZES", "0.25").split(",") if x]
BIG_SIZES = [float(x) for x in os.environ.get("BIG_SIZES", "4").split(",") if x]
NARROW = int(os.environ.get("NARROW", "3"))
BUDGET_S = float(os.environ.get("BUDGET_S", "inf"))
#: Only the cells of these sizes (e.g. ONLY=16 in a second process while another runs the
#: rest; a cell already done or being written by the other is skipped by its file).
ONLY = [float(x) for x in os.environ.get("ONLY", "").split(",") if x]
FIRST = int(os.environ.get("FIRST", "0"))  # skip the cells of replicates below FIRST
TRUTHS = os.environ.get("TRUTHS", "prior")
if TRUTHS not in ("prior", "fixed"):
    raise SystemExit(f"TRUTHS={TRUTHS!r}: use prior or fixed")
OUT = Path(os.environ.get("OUT", "out/recovery" + ("-fixed" if TRUTHS == "fixed" else "")))
TRUTH_SEED = 20261130
FIXED_KEY = 3000  # evidence keys of the fixed design (the prior design uses 1000 + r)


def template() -> dict:
    text = (resources.files("ciksim.data") / "evidence" / "clinical.toml").read_text("utf-8")
    data = tomllib.loads(text)
    data["studies"] = [s for s in data["studies"] if s.get("use", True)]
    return data


def synthetic(truth: dict[str, float], size: float, key: int) -> dict:
    """The shipped designs with n x size (at least 1) and observed results simulated at
    ``truth``."""
    data = copy.deepcopy(template())
    data["version"] = f"synthetic-{key}-x{size:g}"
    for s in data["studies"]:
        for arm in s["arms"]:
            arm["n"] = max(1, round(arm["n"] * size))
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


def truths() -> list[dict[str, float]]:
    """REPLICATES truths: drawn from the priors of the shipped evidence's coordinates
    (``prior``), or the shipped posterior's effect medians with every term 0 (``fixed``)."""
    dims = dimensions(parse_evidence(template(), origin="shipped"))
    if TRUTHS == "fixed":
        medians = Posterior.load().summary().set_index("parameter")["median"]
        fixed = {d.name: float(medians[d.name]) if d.kind == "effect" else 0.0
                 for d in dims}
        return [dict(fixed) for _ in range(REPLICATES)]
    rng = np.random.default_rng(TRUTH_SEED)
    return [{d.name: float(d.to_natural(d.rv().rvs(random_state=rng))) for d in dims}
            for _ in range(REPLICATES)]


def run_cell(r: int, size: float, truth: dict[str, float]) -> dict[str, object]:
    """Calibrate replicate ``r`` at study-size factor ``size``; one result row."""
    key = (FIXED_KEY if TRUTHS == "fixed" else 1000) + r
    ev = parse_evidence(synthetic(truth, size, key=key), origin="synthetic")
    out = OUT / "runs" / f"rep{r:02d}-x{size:g}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = calibrate(ev, out=out, particles=PARTICLES, generations=MAX_GENERATIONS,
                    workers=WORKERS, seed=r, ppc_draws=20)
    m = res.posterior.manifest
    summ = res.posterior.summary().set_index("parameter")
    row: dict[str, object] = {
        "replicate": r, "size": size, "evaluations": res.evaluations,
        "generations": res.generations, "final_epsilon": m["epsilons"][-1],
        "converged": m["converged"], "wall_s": round(time.perf_counter() - t0, 1),
        "ess": round(float(effective_sample_size(res.posterior.weights)), 1),
        "terms": m.get("terms", "sampled"),
        "pooled_generations": len(m.get("pooled_generations", [1]))}
    for name in res.posterior.effects:
        lo, hi = float(summ.loc[name, "q05"]), float(summ.loc[name, "q95"])
        row[f"{name}_true"] = truth[name]
        row[f"{name}_q05"], row[f"{name}_q95"] = lo, hi
        row[f"{name}_covered"] = bool(lo <= truth[name] <= hi)
        row[f"{name}_width_ratio"] = float(summ.loc[name, "width_ratio"])
        # the truth's rank: the posterior's weighted CDF at it (uniform over prior-drawn
        # truths when the posterior is calibrated)
        below = res.posterior.samples[name].to_numpy(float) <= truth[name]
        row[f"{name}_cdf"] = float(res.posterior.weights[below].sum())
    shutil.rmtree(out, ignore_errors=True)  # the database of every cell would fill the disk
    return row


def cells() -> list[tuple[int, float]]:
    """All (replicate, size) cells: each replicate at the shipped sizes (coverage) and at
    SIZES, replicate by replicate; then BIG_SIZES for the first NARROW replicates."""
    out = [(r, size) for size in [1.0, *SIZES] for r in range(REPLICATES)]
    for size in BIG_SIZES:
        out += [(r, size) for r in range(min(NARROW, REPLICATES))]
    return [c for c in out if (not ONLY or c[1] in ONLY) and c[0] >= FIRST]


def run() -> None:
    done_dir = OUT / "cells"
    done_dir.mkdir(parents=True, exist_ok=True)
    ts = truths()
    t0 = time.perf_counter()
    for r, size in cells():
        path = done_dir / f"rep{r:02d}-x{size:g}.json"
        if path.is_file():
            continue
        if time.perf_counter() - t0 > BUDGET_S:
            print(f"budget of {BUDGET_S:.0f} s used; rerun to continue", flush=True)
            break
        row = run_cell(r, size, ts[r])
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(row) + "\n", encoding="utf-8")
        tmp.replace(path)
        print(row, f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    report()


def report() -> None:
    rows = [json.loads(p.read_text(encoding="utf-8"))
            for p in sorted((OUT / "cells").glob("rep*-x*.json"))]
    if not rows:
        print("no cells done yet")
        return
    df = pd.DataFrame(rows).sort_values(["size", "replicate"]).reset_index(drop=True)
    df.to_csv(OUT / "recovery.csv", index=False)
    effects = [c.removesuffix("_covered") for c in df.columns if c.endswith("_covered")]
    sizes = sorted(df["size"].unique())
    print(f"cells done: {len(df)}; {PARTICLES} particles, default final tolerance; "
          f"evaluations per cell (median) by size: "
          + ", ".join(f"x{s:g}: {int(df[df['size'] == s]['evaluations'].median())}"
                      for s in sizes)
          + f"; wall {df['wall_s'].sum() / 60:.1f} min in all")
    print(f"truths: {TRUTHS}; converged (final tolerance reached): "
          f"{int(df['converged'].sum())} of {len(df)}")
    for size in sizes:
        one = df[df["size"] == size]
        for name in effects:
            k, n = int(one[f"{name}_covered"].sum()), len(one)
            lo, hi = stats.binomtest(k, n).proportion_ci(0.9)
            print(f"x{size:g}: {name}: 90% interval covers the truth in {k} of {n} "
                  f"replicates (coverage 90% CI {lo:.2f}-{hi:.2f}; P(<= {k} | 90%) "
                  f"{stats.binom.cdf(k, n, 0.9):.2f}); width ratio mean "
                  f"{one[f'{name}_width_ratio'].mean():.2f}, median "
                  f"{one[f'{name}_width_ratio'].median():.2f}")
            for m in (10, 20):
                if n > m and size == 1:
                    first = one[one["replicate"] < m]
                    print(f"x1: {name}: first {m} replicates: "
                          f"{int(first[f'{name}_covered'].sum())} of {len(first)}")
            # ranks are uniform only over prior-drawn truths, not at one fixed truth
            if TRUTHS == "prior" and f"{name}_cdf" in one \
                    and one[f"{name}_cdf"].notna().sum() >= 10:
                u = one[f"{name}_cdf"].dropna().to_numpy(float)
                print(f"x{size:g}: {name}: posterior CDF at the truth: below 0.05 in "
                      f"{int((u < 0.05).sum())}, above 0.95 in {int((u > 0.95).sum())} of "
                      f"{len(u)}; mean {u.mean():.2f}; Kolmogorov-Smirnov p against "
                      f"uniform {stats.kstest(u, 'uniform').pvalue:.2f}")
    wide = df.pivot(index="replicate", columns="size",
                    values=[f"{n}_width_ratio" for n in effects])
    for name in effects:
        w = wide[f"{name}_width_ratio"]
        for a, b in itertools.pairwise(sizes):
            both = w[[a, b]].dropna()
            if len(both):
                print(f"{name}: narrower at x{b:g} than at x{a:g} in "
                      f"{int((both[b] < both[a]).sum())} of {len(both)} replicates "
                      f"(mean ratio {both[a].mean():.2f} -> {both[b].mean():.2f})")
        if len(sizes) > 2:
            full = w[sizes].dropna()
            mono = int((full.diff(axis=1).iloc[:, 1:] < 0).all(axis=1).sum())
            steps = " -> ".join(f"x{x:g}" for x in sizes)
            print(f"{name}: narrower at every step {steps} in "
                  f"{mono} of {len(full)} replicates")
    plot(df, effects, sizes)


def plot(df: pd.DataFrame, effects: list[str], sizes: list[float]) -> None:
    from ciksim.report.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(2, len(effects), figsize=(5.2 * len(effects), 7),
                             squeeze=False)
    colors = ["#4c72b0", "#55a868", "#8172b2", "#ccb974"]
    for col, name in enumerate(effects):
        ax = axes[0][col]
        for k, size in enumerate(sizes):
            part = df[df["size"] == size]
            x = part["replicate"].to_numpy() + 0.25 * k
            for xi, (_, row) in zip(x, part.iterrows(), strict=True):
                ax.plot([xi, xi], [row[f"{name}_q05"], row[f"{name}_q95"]],
                        color=colors[k % 4] if row[f"{name}_covered"] else "#c44e52", lw=3,
                        label=f"studies x{size:g}" if xi == x[0] else None)
        one = df[df["size"] == sizes[0]]
        ax.plot(one["replicate"] + 0.125 * (len(sizes) - 1), one[f"{name}_true"], "k_",
                ms=14, mew=2, label="truth")
        if name == "potency":
            ax.set_yscale("log")
        ax.set_xlabel("replicate (red: truth outside the 90% interval)")
        ax.set_ylabel(name)
        ax.set_title(f"{name}: 90% posterior intervals ({TRUTHS} truths)")
        ax.legend(fontsize=7)
        ax = axes[1][col]
        if len(sizes) == 1 and TRUTHS == "prior" and f"{name}_cdf" in df:  # truths' ranks
            u = df[f"{name}_cdf"].dropna().to_numpy(float)
            ax.hist(u, bins=10, range=(0, 1), color="#4c72b0", edgecolor="white")
            ax.axhline(len(u) / 10, color="k", lw=1.5, ls="--", label="uniform (calibrated)")
            ax.set_xlabel("posterior CDF at the truth")
            ax.set_ylabel("replicates")
            ax.set_title(f"{name}: rank of the truth (x{sizes[0]:g})")
            ax.legend(fontsize=7)
            continue
        wide = df.pivot(index="replicate", columns="size", values=f"{name}_width_ratio")
        for _, row in wide.iterrows():
            ax.plot(sizes, row[sizes].to_numpy(float), color="#999999", lw=1, marker=".")
        ax.plot(sizes, wide[sizes].mean().to_numpy(float), color="k", lw=2.5, marker="o",
                label="mean")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [f"x{s:g}" for s in sizes])
        ax.set_xlabel("every study's n multiplied by")
        ax.set_ylabel("posterior / prior 90% width")
        ax.set_title(f"{name}: narrowing with study size")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "recovery.png", dpi=110)


def persistence() -> None:
    """How much the studies' summaries move with persistence_sd at a fixed potency, against
    how much they move with potency: every shipped design 16 times larger (little noise),
    potency 0.005, 0.02, 0.05 x persistence_sd 0, 0.8, 1.6, bias terms 0."""
    data = copy.deepcopy(template())
    for s in data["studies"]:
        for arm in s["arms"]:
            arm["n"] *= 16
    prepared = prepare(parse_evidence(data, origin="x16"))
    thetas = [{"potency": pot, "persistence_sd": sd} for pot in (0.005, 0.02, 0.05)
              for sd in (0.0, 0.8, 1.6)]
    raw = simulate_batch(prepared, thetas, list(range(len(thetas))), seed=7)
    rows = [{**th, **summaries(prepared, r, th)} for th, r in zip(thetas, raw, strict=True)]
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    {"report": report, "persistence": persistence}.get(" ".join(sys.argv[1:]), run)()

"""A trial design run over parameter draws: posterior-predictive effect and assurance (T3).

For each draw ``d`` of the effect parameters (posterior or prior, :mod:`.sources`):

* the **true population effect**: a virtual cohort of ``cohort`` patients, each simulated in
  both arms (common random numbers: the same patient with and without CIK, so the
  difference carries little Monte Carlo noise); the effect is that of the planned estimand
  (intention to treat, as the trial's delivery rates say): difference in milestone survival
  at ``horizon`` (3-year RFS by default), difference in RMST up to ``horizon`` and the Cox
  log hazard ratio (all lifelines, :mod:`.estimands`);
* **the trial as planned** for each size ``n`` per arm: the control arm is cohort patients
  ``0 … n-1`` in the control arm, the treated arm patients ``cohort/2 … cohort/2 + n - 1``
  with treatment, so the two arms hold different patients and sizes are nested; the
  planned analysis (``spec.analysis``) says whether the trial succeeds.

Parameter uncertainty (between draws) and Monte Carlo error (within a draw, and from the
finite number of draws) are kept apart: each draw's effect is also estimated on the two
halves of its cohort (even/odd patients), whose difference estimates the within-draw Monte
Carlo variance (lifelines' own standard errors would ignore the pairing of the arms and
overstate it); the error of the reported medians and interval ends from the finite number
of draws is scipy's bootstrap standard error; assurance's is binomial.

Patients of draw ``d`` have random streams keyed by (trial seed, draw, patient), whatever
chunk, worker or backend simulates them; chunks of draws are written atomically, so a run
resumes where it stopped. Same seed → same numbers for any workers, chunks or Dask.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ciksim._version import __version__
from ciksim.errors import DataError
from ciksim.trial.sources import DrawSource, patient_parameters, persistence_deviates
from ciksim.trial.spec import TrialSpec

if TYPE_CHECKING:
    from ciksim.analysis.product import ProductLots

#: Bits of a patient's index that hold the patient; the draw sits above them.
DRAW_SHIFT = 20
#: The effect measures reported, with plain labels and units.
MEASURES = {
    "delta_milestone": ("difference in {h:g}-month {e} (treated − control)", "fraction"),
    "delta_rmst": ("difference in restricted mean {e} time up to {h:g} months", "months"),
    "log_hr": ("log hazard ratio of {e} (treated vs control)", "1"),
}


def parse_sizes(text: str | Sequence[Any], field_name: str = "n") -> tuple[int, ...]:
    """Sample sizes per arm from ``"20,40,80"`` or a list: positive whole numbers."""
    parts = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    out = []
    for p in parts:
        try:
            v = int(p) if not isinstance(p, bool) and str(p).lstrip("+").isdigit() else None
        except ValueError:
            v = None
        if v is None or v < 1:
            raise DataError(f"{field_name}: {p!r} is not a positive whole number; give sample "
                            "sizes per arm such as 20,40,80,160")
        out.append(v)
    if not out:
        raise DataError(f"{field_name}: give at least one sample size per arm, e.g. 20,40,80")
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class DrawDesign:
    """How a design is run over draws: number of draws, virtual cohort size (patients in
    each arm per draw), trial sizes per arm, the arms compared (names; default the first
    two), and draws per chunk."""

    draws: int = 200
    cohort: int = 2000
    sizes: tuple[int, ...] = ()
    control: str | None = None
    treated: str | None = None
    chunk_draws: int = 10

    def resolved(self, spec: TrialSpec) -> DrawDesign:
        """Validated against ``spec``: arms exist, sizes fit in half the cohort."""
        names = [a.name for a in spec.arms]
        control = self.control or names[0]
        if self.treated is None and len(names) < 2:
            raise DataError("arms: a trial over draws compares two arms; the spec has one")
        treated = self.treated or names[1]
        for which, name in (("control", control), ("treated", treated)):
            if name not in names:
                raise DataError(f"arm: {which} arm {name!r} is not in the spec; its arms are "
                                f"{', '.join(names)}")
        if control == treated:
            raise DataError("arm: compare two different arms")
        for name, v, low in (("draws", self.draws, 2), ("cohort", self.cohort, 20),
                             ("chunk-draws", self.chunk_draws, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise DataError(f"{name}: need a whole number >= {low}, got {v!r}")
        sizes = parse_sizes(self.sizes or (spec.posterior.get("n_per_arm",
                                                              spec.patients_per_arm),), "n")
        cohort = max(int(self.cohort), 2 * max(sizes))
        if cohort >= 1 << DRAW_SHIFT:
            raise DataError(f"cohort: at most {(1 << DRAW_SHIFT) - 1} patients per draw")
        return DrawDesign(int(self.draws), cohort, sizes, control, treated,
                          int(self.chunk_draws))

    def as_dict(self) -> dict[str, Any]:
        return {"draws": self.draws, "cohort": self.cohort, "sizes": list(self.sizes),
                "control": self.control, "treated": self.treated,
                "chunk_draws": self.chunk_draws}


def cohort_seed(spec: TrialSpec) -> int:
    """The virtual cohorts' seed: one for both arms (each patient simulated in both)."""
    return int(np.random.SeedSequence([spec.seed, zlib.crc32(b"draw-cohort")])
               .generate_state(1)[0])


def simulate_draws(spec: TrialSpec, draws: pd.DataFrame, first: int, design: DrawDesign,
                   composition: ProductLots | dict[str, float]) -> pd.DataFrame:
    """Per-patient table of draws ``first … first + len(draws) - 1``: both arms of each
    draw's virtual cohort (a ``draw`` column added)."""
    from ciksim.trial.runner import simulate_chunk

    n = design.cohort
    d_idx = np.repeat(np.arange(first, first + len(draws)), n)
    indices = (d_idx.astype(np.int64) << DRAW_SHIFT) + np.tile(np.arange(n), len(draws))
    seed = cohort_seed(spec)
    u = persistence_deviates(seed, indices)
    pars = patient_parameters(draws, d_idx - first, u)
    names = [a.name for a in spec.arms]
    frames = []
    for name in (design.control, design.treated):
        df = simulate_chunk(spec, names.index(name), 0, 0, composition, pars,
                            indices=indices, seed=seed)
        df.insert(0, "draw", df["patient"].to_numpy() >> DRAW_SHIFT)
        df["patient"] = df["patient"].to_numpy() & ((1 << DRAW_SHIFT) - 1)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def analyse_draw(spec: TrialSpec, df: pd.DataFrame, design: DrawDesign) -> dict[str, Any]:
    """One draw's true effect (whole cohort and its two halves) and the planned trials."""
    from ciksim.trial.estimands import effect

    a = spec.analysis
    c, t = design.control, design.treated
    ok = df[df["status"] == "ok"]
    row: dict[str, Any] = {"failed_patients": int((df["status"] != "ok").sum())}
    row.update(effect(ok, c, t, a.horizon_months, a.endpoint, ph_test=False))
    if "first_infusion_day" in df:  # allo: how many got donor cells, how many relapsed
        for which, arm in (("control", c), ("treated", t)):
            g = ok[ok["arm"] == arm]
            row[f"share_given_{which}"] = float(np.isfinite(
                g["first_infusion_day"].to_numpy(float)).mean())
            row[f"share_relapsed_{which}"] = float(np.isfinite(
                g["relapse_day"].to_numpy(float)).mean())
    for half, parity in (("a", 0), ("b", 1)):
        h = effect(ok[ok["patient"] % 2 == parity], c, t, a.horizon_months, a.endpoint,
                   ph_test=False)
        h.pop("log_hr_se")
        row.update({f"{k}_{half}": v for k, v in h.items()})
    mid = design.cohort // 2
    for n in design.sizes:
        ctrl = ok[(ok["arm"] == c) & (ok["patient"] < n)]
        trt = ok[(ok["arm"] == t) & (ok["patient"] >= mid) & (ok["patient"] < mid + n)]
        r = a.evaluate(pd.concat([ctrl, trt]), c, t)
        row[f"p_{n}"], row[f"success_{n}"] = r["p"], r["success"]
    return row


def draw_chunk(raw: dict[str, Any], design: dict[str, Any], draws: pd.DataFrame,
               first: int, composition: ProductLots | dict[str, float] | None
               ) -> pd.DataFrame:
    """Top-level (picklable) task: simulate and analyse draws ``first …``; one row each
    (an allo spec's draws by :func:`ciksim.trial.allosim.simulate_allo_draws`)."""
    spec = TrialSpec.from_dict(raw)
    des = DrawDesign(**{**design, "sizes": tuple(design["sizes"])})
    if getattr(spec, "setting", None) == "allo":
        from ciksim.trial.allosim import simulate_allo_draws

        pat = simulate_allo_draws(spec, draws, first, des.control, des.treated, des.cohort)
    else:
        pat = simulate_draws(spec, draws, first, des, composition)
    rows = []
    for d, g in pat.groupby("draw", sort=True):
        rows.append({"draw": int(d), **draws.iloc[int(d) - first].to_dict(),
                     **analyse_draw(spec, g, des)})
    return pd.DataFrame(rows)


@dataclass
class DrawRun:
    """Per-draw results (one row per draw, sorted), the design, the source and manifest."""

    spec: TrialSpec
    design: DrawDesign
    source: DrawSource
    table: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.table) == self.design.draws

    def summary(self, seed: int | None = None) -> dict[str, Any]:
        """Posterior-predictive effect (median, 90% interval), assurance per size, and
        their Monte Carlo errors (see the module docstring)."""
        return summarize_draws(self.table, self.spec, self.design, self.source,
                               self.spec.seed if seed is None else seed)


def _json_atomic(data: dict[str, Any], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def run_over_draws(
    spec: TrialSpec,
    source: DrawSource,
    design: DrawDesign | None = None,
    *,
    out: str | Path | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    resume: bool = False,
    composition: ProductLots | dict[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
    max_chunks: int | None = None,
) -> DrawRun:
    """Run ``spec`` over ``design.draws`` draws of ``source`` (see the module docstring).

    ``out``: a folder for the chunks (``draws/``), ``draws.parquet`` and ``manifest.json``;
    ``resume`` continues a run there. ``workers``/``scheduler`` as for ``run_trial``;
    ``progress(done, total)`` counts draws; ``max_chunks`` stops early (tests).
    ``composition``: the product's lots (default: the spec's, ``product_lots``) or one
    composition for every patient (size not limiting).
    """
    from ciksim.analysis.product import ProductLots
    from ciksim.trial.runner import execute, fixed_composition, product_lots

    t0 = time.perf_counter()
    des = (design or DrawDesign()).resolved(spec)
    draws = source.draws(des.draws, spec.seed)
    allo = getattr(spec, "setting", None) == "allo"
    comp = (None if allo else composition if isinstance(composition, ProductLots) else
            fixed_composition(composition) if composition is not None else product_lots(spec))
    digest = hashlib.sha256(json.dumps(
        {"trial": spec.digest(), "design": des.as_dict(), "source": source.kind,
         "provenance": {k: v for k, v in source.provenance.items() if k != "warnings"},
         "draws": pd.util.hash_pandas_object(draws, index=False).tolist(),
         "ciksim": __version__}, sort_keys=True, default=str).encode()).hexdigest()[:16]
    starts = list(range(0, des.draws, des.chunk_draws))
    files = {s: f"draws-{s:07d}-{min(s + des.chunk_draws, des.draws):07d}.parquet"
             for s in starts}
    done: dict[int, pd.DataFrame] = {}
    folder = Path(out) if out is not None else None
    if folder is not None:
        cdir = folder / "draws"
        mpath = folder / "manifest.json"
        if cdir.exists() and any(cdir.iterdir()):
            if not resume:
                raise DataError(f"{folder} already holds a trial over draws; pass --resume to "
                                "continue it, or choose another --out")
            old = json.loads(mpath.read_text()) if mpath.exists() else {}
            if old.get("digest") != digest:
                raise DataError(f"{folder} holds a different run (spec, design or draws "
                                "changed); choose another --out")
        cdir.mkdir(parents=True, exist_ok=True)
        _json_atomic({"status": "running", "digest": digest}, mpath)
        for s in starts:
            if resume and (cdir / files[s]).exists():
                done[s] = pd.read_parquet(cdir / files[s])
    pending = [s for s in starts if s not in done]
    if max_chunks is not None:
        pending = pending[:max_chunks]
    raw, ddict = dict(spec.raw), des.as_dict()
    tasks = [(s, (raw, ddict, draws.iloc[s:s + des.chunk_draws].reset_index(drop=True), s,
                  comp)) for s in pending]
    n_done = sum(len(v) for v in done.values())
    if progress:
        progress(n_done, des.draws)
    seconds: list[float] = []
    for s, df, sec in execute(draw_chunk, tasks, workers, scheduler):
        done[s] = df
        seconds.append(sec)
        if folder is not None:
            _parquet_atomic(df, folder / "draws" / files[s])
        n_done += len(df)
        if progress:
            progress(n_done, des.draws)
    frames = [done[s] for s in starts if s in done]
    table = (pd.concat(frames, ignore_index=True).sort_values("draw", ignore_index=True)
             if frames else pd.DataFrame())
    for n in des.sizes:
        table.attrs.setdefault("units", {}).update({f"p_{n}": "1", f"success_{n}": "1"})
        table.attrs.setdefault("descriptions", {}).update({
            f"p_{n}": f"p-value of the planned analysis in the trial of {n} patients per arm",
            f"success_{n}": f"1 if the trial of {n} patients per arm succeeded"})
    complete = len(table) == des.draws
    manifest = {
        "status": "complete" if complete else "incomplete", "digest": digest,
        "seed": spec.seed, "spec": spec.raw, "design": des.as_dict(),
        "source": {"kind": source.kind, "label": source.label, **source.provenance},
        "analysis": spec.analysis.as_dict(),
        "delivery": None if allo else spec.delivery.as_dict(),
        "product_composition": None if comp is None else comp.summary()["composition"],
        "product": None if comp is None else comp.summary(),
        "ciksim_version": __version__,
        "backend": "dask" if scheduler else ("process" if (workers or os.cpu_count() or 1) > 1
                                             else "in-process"),
        "wall_seconds": time.perf_counter() - t0, "chunk_seconds": seconds,
    }
    if folder is not None:
        if complete:
            _parquet_atomic(table, folder / "draws.parquet")
        _json_atomic(manifest, folder / "manifest.json")
    return DrawRun(spec, des, source, table, manifest)


def _quantiles(x: np.ndarray) -> tuple[float, float, float]:
    q = np.quantile(x, [0.05, 0.5, 0.95])
    return float(q[0]), float(q[1]), float(q[2])


def summarize_draws(table: pd.DataFrame, spec: TrialSpec, design: DrawDesign,
                    source: DrawSource, seed: int = 0) -> dict[str, Any]:
    """Effect (median, 90% interval), assurance per size and Monte Carlo errors.

    ``mc_error[measure]``: ``within_draw`` (the simulation's Monte Carlo error: RMS over
    draws of the SE of a draw's true effect, from its two half-cohorts), ``of_median``/
    ``of_q05``/``of_q95`` (bootstrap SE of the reported numbers from the finite number of
    draws), ``posterior_sd`` (SD of the true effect across draws less the within-draw
    noise), ``ratio`` = within_draw / posterior_sd and ``ok`` when it is at most 0.1 (T3).
    """
    from scipy import stats

    if table.empty:
        raise DataError("no finished draws to summarise; run (or resume) the trial first")
    a = spec.analysis
    from ciksim.trial.estimands import ENDPOINTS

    words = ENDPOINTS[a.endpoint]
    effect: dict[str, Any] = {}
    mc: dict[str, Any] = {}
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(b"mc")]))
    for m, (label, unit) in MEASURES.items():
        x = table[m].to_numpy(float)
        fin = np.isfinite(x)
        x = x[fin]
        if x.size < 2:
            effect[m] = None
            continue
        lo, med, hi = _quantiles(x)
        effect[m] = {"label": label.format(h=a.horizon_months, e=words), "unit": unit,
                     "median": med, "q05": lo, "q95": hi, "mean": float(x.mean()),
                     "interval": 0.9}
        half = (table[f"{m}_a"].to_numpy(float) - table[f"{m}_b"].to_numpy(float))[fin]
        within_var = float(np.nanmean(half ** 2) / 4)
        total_var = float(np.var(x, ddof=1))
        post_sd = math.sqrt(max(total_var - within_var, 0.0))
        errs = {"within_draw": math.sqrt(within_var)}
        for name, q in (("of_median", 0.5), ("of_q05", 0.05), ("of_q95", 0.95)):
            boot = stats.bootstrap((x,), lambda v, q=q: np.quantile(v, q), n_resamples=400,
                                   random_state=rng, method="percentile")
            errs[name] = float(boot.standard_error)
        within = errs["within_draw"]
        mc[m] = {**errs, "posterior_sd": post_sd,
                 "ratio": within / post_sd if post_sd > 0 else math.inf,
                 "ok": bool(post_sd > 0 and within <= 0.1 * post_sd)}
    assurance = []
    for n in design.sizes:
        s = table[f"success_{n}"].to_numpy(bool)
        k, d = int(s.sum()), s.size
        ci = stats.binomtest(k, d).proportion_ci(0.95)
        assurance.append({"n_per_arm": int(n), "assurance": k / d,
                          "mc_se": math.sqrt(k / d * (1 - k / d) / d),
                          "ci_low": float(ci.low), "ci_high": float(ci.high), "draws": d})
    planned_n = spec.posterior.get("n_per_arm", spec.patients_per_arm)
    planned = next((r for r in assurance if r["n_per_arm"] == planned_n), assurance[-1])
    mc["assurance"] = planned["mc_se"]
    return {
        "source": {"kind": source.kind, "label": source.label},
        "draws": len(table), "cohort_per_arm": design.cohort,
        "arms": {"control": design.control, "treated": design.treated},
        "analysis": a.as_dict(), "effect": effect,
        "assurance": planned["assurance"], "assurance_n_per_arm": planned["n_per_arm"],
        "assurance_curve": assurance, "mc_error": mc,
        "failed_patients": int(table["failed_patients"].sum()),
    }

"""The calibrated posterior: weighted samples, a manifest, summaries, draws and figures.

Saved as one Parquet file: one column per calibrated coordinate (natural scale) plus
``weight``; the manifest (evidence version and hash, seed, package and pyabc versions,
priors, the run's generations, and the posterior-predictive check per study) is JSON in
the file's metadata. ``Posterior.load()`` with no path gives the posterior shipped with
the package (``make calibrate`` regenerates it).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ciksim.errors import DataError
from ciksim.evidence.effect import Dimension

_META_KEY = b"ciksim.posterior"
SHIPPED = ("posterior", "patient.parquet")
#: Shipped posteriors by model (``make calibrate``, ``make calibrate-allo``).
SHIPPED_MODELS = ("patient", "allo")


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """Quantiles of weighted samples (interpolating the weighted empirical CDF)."""
    order = np.argsort(x)
    xs, ws = np.asarray(x, float)[order], np.asarray(w, float)[order]
    cdf = (np.cumsum(ws) - 0.5 * ws) / ws.sum()
    return np.interp(q, cdf, xs)


@dataclass(frozen=True)
class Posterior:
    """Weighted posterior samples of the effect and bias parameters (natural scale)."""

    samples: pd.DataFrame
    weights: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, float)
        if w.shape != (len(self.samples),) or not np.all(np.isfinite(w)) or w.sum() <= 0 \
                or np.any(w < 0):
            raise DataError("posterior: need one finite weight >= 0 per sample, not all 0")
        object.__setattr__(self, "weights", w / w.sum())

    @property
    def dimensions(self) -> list[Dimension]:
        return [Dimension(**d) for d in self.manifest.get("dimensions", [])]

    @property
    def effects(self) -> list[str]:
        return [d.name for d in self.dimensions if d.kind == "effect"]

    @property
    def ppc(self) -> pd.DataFrame:
        """Posterior-predictive check: per observed summary, observed vs 90% interval."""
        return pd.DataFrame(self.manifest.get("ppc", []))

    def summary(self) -> pd.DataFrame:
        """Per coordinate: posterior median and 90% interval, prior 90% interval, and the
        width ratio (posterior / prior 90% width on the sampling scale, log10 for
        log-uniform priors): below 1 means the evidence narrowed it."""
        rows = []
        for d in self.dimensions:
            x = self.samples[d.name].to_numpy(float)
            q = weighted_quantile(x, self.weights, [0.05, 0.5, 0.95])
            plo, phi = d.interval(0.9)
            width = float(d.to_sampling(q[2]) - d.to_sampling(q[0]))
            pwidth = float(d.to_sampling(phi) - d.to_sampling(plo))
            rows.append({"parameter": d.name, "kind": d.kind, "unit": d.unit,
                         "median": q[1], "q05": q[0], "q95": q[2], "prior_q05": plo,
                         "prior_q95": phi, "width_ratio": width / pwidth})
        return pd.DataFrame(rows)

    def sample(self, n: int, seed: int) -> pd.DataFrame:
        """``n`` draws (weighted resampling with replacement), reproducible by ``seed``."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise DataError(f"n: need a whole number >= 1, got {n!r}")
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9E37]))
        idx = rng.choice(len(self.samples), size=int(n), p=self.weights)
        return self.samples.iloc[idx].reset_index(drop=True)

    def effect_draws(self, n: int, seed: int) -> list[dict[str, float]]:
        """``n`` draws of the effect parameters only (what a trial simulates with)."""
        df = self.sample(n, seed)[self.effects]
        return [dict(r) for r in df.to_dict("records")]

    # ---- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the Parquet file atomically (a temporary file moved into place)."""
        import pyarrow.parquet as pq

        from ciksim.exchange.tables import arrow_table

        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        df = self.samples.copy()
        df["weight"] = self.weights
        df.attrs["units"] = {"weight": "1"}  # each parameter's unit comes from its declaration
        df.attrs["descriptions"] = {"weight": "importance weight of the posterior sample"}
        table = arrow_table(df)
        meta = {**(table.schema.metadata or {}),
                _META_KEY: json.dumps(self.manifest, default=float).encode()}
        table = table.replace_schema_metadata(meta)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give the usual mode
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return dest

    @classmethod
    def load(cls, path: str | Path | None = None, *, model: str = "patient") -> Posterior:
        """A saved posterior, or (``path`` None) the one shipped with ciksim for ``model``
        (``patient``: the in vivo CIK effect; ``allo``: alloreactivity)."""
        import pyarrow.parquet as pq

        if path is None:
            if model not in SHIPPED_MODELS:
                raise DataError(f"model: no shipped posterior for {model!r}; use one of "
                                f"{', '.join(SHIPPED_MODELS)}")
            res = resources.files("ciksim.data").joinpath(SHIPPED[0], f"{model}.parquet")
            if not res.is_file():
                make = "calibrate" if model == "patient" else f"calibrate-{model}"
                raise DataError(f"no shipped {model} posterior in this installation; run "
                                f"`make {make}` (or `ciksim calibrate {model}`)")
            with resources.as_file(res) as p:
                return cls.load(p)
        p = Path(path)
        if p.is_dir():
            p = p / "posterior.parquet"
        if not p.is_file():
            raise DataError(f"posterior file {str(p)!r} does not exist; give the "
                            "posterior.parquet of a calibration (or its folder)")
        try:
            table = pq.read_table(p)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"{p}: not a readable Parquet posterior ({exc})") from None
        meta = (table.schema.metadata or {}).get(_META_KEY)
        if meta is None:
            raise DataError(f"{p}: no ciksim posterior manifest in the file")
        df = table.to_pandas()
        if "weight" not in df:
            raise DataError(f"{p}: no weight column")
        w = df.pop("weight").to_numpy(float)
        return cls(df, w, json.loads(meta))

    # ---- figures -------------------------------------------------------------------------
    def plot(self, axes: Sequence[Any] | None = None) -> Any:
        """Prior (line) and posterior (histogram) of every coordinate, side by side."""
        from ciksim.report.plots import pyplot

        dims = self.dimensions
        if axes is None:
            cols = min(4, len(dims))
            rows = -(-len(dims) // cols)
            _, ax = pyplot().subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows),
                                        squeeze=False)
            axes = list(ax.ravel())
            for extra in axes[len(dims):]:
                extra.set_visible(False)
        for ax, d in zip(axes, dims, strict=False):
            x = np.asarray(d.to_sampling(self.samples[d.name].to_numpy(float)))
            rv = d.rv()
            lo, hi = rv.ppf(0.001), rv.ppf(0.999)
            grid = np.linspace(min(lo, x.min()), max(hi, x.max()), 200)
            ax.hist(x, bins=30, weights=self.weights, density=True, color="#4c72b0",
                    alpha=0.6, label="posterior")
            ax.plot(grid, rv.pdf(grid), color="#dd8452", lw=2, label="prior")
            scale = "log10 " if d.prior == "loguniform" else ""
            ax.set_xlabel(f"{scale}{d.name}")
            ax.set_yticks([])
        axes[0].legend(fontsize=8)
        return axes[0].figure

    def plot_ppc(self, ax: Any = None) -> Any:
        """Each observed summary (dot) against the 90% posterior-predictive interval."""
        from ciksim.report.plots import pyplot

        df = self.ppc
        if ax is None:
            _, ax = pyplot().subplots(figsize=(7, 0.45 * max(len(df), 2) + 1))
        y = np.arange(len(df))
        ax.hlines(y, df["q05"], df["q95"], color="#4c72b0", lw=6, alpha=0.5,
                  label="simulated study, 90% interval")
        ok = df["covered"].to_numpy(bool)
        ax.plot(df["observed"][ok], y[ok], "o", color="k", label="observed, covered")
        ax.plot(df["observed"][~ok], y[~ok], "o", color="#c44e52", label="observed, outside")
        ax.set_yticks(y, df["summary"])
        ax.invert_yaxis()
        ax.set_xlabel("proportion (log HR for hazard ratios)")
        ax.legend(fontsize=8, loc="lower right")
        return ax

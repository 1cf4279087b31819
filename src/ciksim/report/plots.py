"""Publication figures. Functions take ``ax``/``axes`` (created when None) and return them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ciksim.analysis.culture import CultureRun

_SUBSETS = (
    ("total_cells", "all cells"),
    ("cd3cd56_cells", "CD3+CD56+"),
    ("cd3_cd56neg", "CD3+CD56−"),
    ("NK", "CD3−CD56+ NK"),
)


def pyplot() -> Any:
    """matplotlib.pyplot with a non-interactive backend unless one is already chosen."""
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_culture(runs: Sequence[CultureRun], axes: Sequence[Any] | None = None) -> list[Any]:
    """Two panels: cell subsets (log axis, donor median and 5-95% band) and phenotype shares.

    Several runs (protocols) share the panels, one line style per protocol.
    """
    import numpy as np

    plt = pyplot()
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    ax_cells, ax_share = axes
    styles = ["-", "--", ":", "-."]
    colors = ["black", "tab:red", "tab:blue", "tab:green"]
    for k, run in enumerate(runs):
        r = run.result
        kept = r.kept
        t_neg = r["T_rest"] + r["T_g1a"] + r["T_g1b"] + r["T_act"]
        series = {
            "total_cells": r["total_cells"],
            "cd3cd56_cells": r["cd3cd56_cells"],
            "cd3_cd56neg": t_neg,
            "NK": r["NK"],
        }
        ls = styles[k % len(styles)]
        for (key, label), color in zip(_SUBSETS, colors, strict=True):
            v = series[key] / kept
            med = np.median(v, axis=1)
            ax_cells.plot(run.days, med, ls=ls, color=color,
                          label=f"{label} ({run.protocol.name})")
            if run.donors > 1 and (len(runs) == 1 or key in ("total_cells", "cd3cd56_cells")):
                lo, hi = np.quantile(v, [0.05, 0.95], axis=1)
                ax_cells.fill_between(run.days, lo, hi, color=color, alpha=0.12, lw=0)
        shares = run.per_donor
        for key, label, color in (("cd3cd56_pct", "% CD3+CD56+", "tab:red"),
                                  ("cd3_pct", "% CD3+", "tab:purple"),
                                  ("nk_pct", "% NK", "tab:green")):
            v = shares[key]
            ax_share.plot(run.days, np.median(v, axis=1), ls=ls, color=color,
                          label=f"{label} ({run.protocol.name})")
            if run.donors > 1 and (len(runs) == 1 or key == "cd3cd56_pct"):
                lo, hi = np.quantile(v, [0.05, 0.95], axis=1)
                ax_share.fill_between(run.days, lo, hi, color=color, alpha=0.12, lw=0)
    ax_cells.set_yscale("log")
    ax_cells.set_xlabel("culture day")
    ax_cells.set_ylabel("cells (cumulative, as if none discarded)")
    ax_cells.set_title("Expansion (median, 5–95% of donors)")
    ax_cells.legend(fontsize=7, ncol=1 if len(runs) == 1 else 2)
    ax_share.set_xlabel("culture day")
    ax_share.set_ylabel("% of cells in culture")
    ax_share.set_ylim(0, 100)
    ax_share.set_title("Phenotype")
    ax_share.legend(fontsize=7)
    return [ax_cells, ax_share]


def plot_lysis_curve(assay: Any, ax: Any = None) -> Any:
    """Simulated % specific lysis vs E:T: donor median with its 5–95% band."""
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    s = assay.summary().sort_values("et_ratio")
    label = f"{assay.effector} vs {assay.target}" + (f" (anti-{assay.block})" if assay.block
                                                      else "")
    ax.plot(s["et_ratio"], s["lysis_pct"], "o-", label=label)
    ax.fill_between(s["et_ratio"], s["lysis_pct_p05"], s["lysis_pct_p95"], alpha=0.2, lw=0)
    ax.set_xscale("log")
    ax.set_xlabel("E:T ratio")
    ax.set_ylabel("% specific lysis")
    ax.set_ylim(0, 100)
    ax.set_title(f"Simulated {assay.hours:g}-h assay (median, 5–95% of donors)")
    ax.legend(fontsize=8)
    return ax

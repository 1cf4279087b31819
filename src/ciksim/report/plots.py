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


def literal_text(fig: Any) -> Any:
    """``fig`` with user text shown literally: a ``$`` in an arm, target, effector or
    protocol name is not matplotlib mathtext (``$x^{99999}$`` would be typeset or fail).
    Tick labels matplotlib itself writes in mathtext (``\\mathdefault``) are left alone."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        s = text.get_text()
        if "$" in s and "\\mathdefault" not in s:
            text.set_parse_math(False)
    return fig


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


def plot_patient(run: Any, axes: Sequence[Any] | None = None) -> list[Any]:
    """One virtual patient: leukemic cells (log scale, MRD and relapse thresholds), infused
    effectors in the marrow, and normal marrow cells; chemotherapy and infusions marked."""
    import numpy as np

    plt = pyplot()
    if axes is None:
        _, axes = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True, constrained_layout=True)
    res = run.result
    months = res.grid / (365.25 / 12)
    k_marrow = res.series("K_marrow")[:, 0]
    leuk = res.series("L_tot")[:, 0]
    ax = axes[0]
    shown = np.where(leuk > 0, leuk, np.nan)
    ax.plot(months, shown, color="tab:red", label="leukemic cells")
    ax.axhline(1e-4 * k_marrow[0], color="grey", ls=":", label="MRD 1e-4")
    ax.axhline(run.threshold * k_marrow[0], color="black", ls="--",
               label=f"relapse ({100 * run.threshold:g}% blasts)")
    ext = res.extinction_time[0]
    if np.isfinite(ext):
        ax.axvline(ext / (365.25 / 12), color="tab:green", ls="-.", label="extinct (cure)")
    ax.set_yscale("log")
    ax.set_ylim(0.5, None)
    ax.set_ylabel("cells")
    ax.legend(fontsize=7, loc="upper right")
    axes[1].plot(months, res.series("E_tot")[:, 0], color="tab:blue")
    axes[1].set_ylabel("infused effectors\nin marrow (cells)")
    axes[2].plot(months, 100 * res.series("normal_fraction")[:, 0], color="tab:purple")
    axes[2].set_ylabel("normal marrow\n(% of full)")
    axes[2].set_xlabel("months from remission")
    for e in run.scenario.protocol.events:
        for a in axes:
            a.axvline(e.day / (365.25 / 12), color="orange", lw=0.6, alpha=0.6)
    if run.cik is not None:
        for d in run.cik.days:
            for a in axes:
                a.axvline(d / (365.25 / 12), color="tab:blue", lw=0.6, alpha=0.4)
    axes[0].set_title(f"{run.scenario.name}: {'chemotherapy + CIK' if run.cik else 'chemotherapy'}"
                      " (orange: chemotherapy, blue: infusions)")
    return list(axes)


def plot_rfs(durations: Sequence[Any], events: Sequence[Any], labels: Sequence[str],
             ax: Any = None) -> Any:
    """Kaplan-Meier relapse-free survival (lifelines) with 95% bands, one curve per group;
    ``events`` are event labels (relapse and death in remission both end RFS)."""
    from lifelines import KaplanMeierFitter

    from ciksim.trial.estimands import event_labels

    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for d, e, label in zip(durations, events, labels, strict=True):
        ended = event_labels(e) != "censored"
        KaplanMeierFitter(label=label).fit(d, ended).plot_survival_function(ax=ax)
    ax.set_xlabel("months from remission")
    ax.set_ylabel("relapse-free survival")
    ax.set_ylim(0, 1)
    return ax


def plot_trial(patients: Any, arm_names: Sequence[str], axes: Sequence[Any] | None = None
               ) -> list[Any]:
    """Kaplan-Meier relapse-free survival per arm (95% bands; relapse and death in remission
    end it) and Aalen-Johansen cumulative incidence of relapse (solid) and of death in
    remission (dotted), each the other's competing event."""
    from lifelines import KaplanMeierFitter

    from ciksim.trial.estimands import cumulative_incidence, event_labels

    plt = pyplot()
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    ok = patients[patients["status"] == "ok"]
    for name in arm_names:
        g = ok[ok["arm"] == name]
        ended = event_labels(g["event"]) != "censored"
        km = KaplanMeierFitter(label=f"{name} (n={len(g)})").fit(g["duration"], ended)
        km.plot_survival_function(ax=axes[0])
        cir = cumulative_incidence(g, "relapse")
        line = axes[1].step(cir.index, cir.values, where="post", label=f"{name}: relapse")
        nrm = cumulative_incidence(g, "death")
        axes[1].step(nrm.index, nrm.values, where="post", ls=":", color=line[0].get_color(),
                     label=f"{name}: death in remission")
    axes[0].set_title("Relapse-free survival (Kaplan-Meier, 95% CI)")
    axes[0].set_ylabel("alive and relapse-free")
    axes[1].set_title("Cumulative incidence (Aalen-Johansen, competing events)")
    axes[1].set_ylabel("share of patients")
    for ax in axes:
        ax.set_xlabel("months from remission")
        ax.set_ylim(0, 1)
    axes[1].legend(fontsize=8)
    return list(axes)


def plot_power(table: Any, ax: Any = None) -> Any:
    """Probability of a significant log-rank test per sample size, with 95% CIs."""
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    ax.errorbar(table["n_per_arm"], table["power"],
                yerr=[table["power"] - table["power_ci_low"],
                      table["power_ci_high"] - table["power"]], fmt="o-", capsize=3)
    ax.axhline(0.8, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("patients per arm")
    ax.set_ylabel(f"power (log-rank p < {table['alpha'].iloc[0]:g})")
    ax.set_ylim(0, 1)
    return ax


def patient_figure(run: Any) -> Any:
    """A single patient's trajectories, or the relapse-free survival of many; the Figure."""
    if run.replicates == 1:
        return plot_patient(run)[0].figure
    df = run.outcomes()
    return plot_rfs([df["duration"]], [df["event"]], [run.scenario.name]).figure


def plot_culture_fits(fits: Sequence[Any], data: Any) -> Any:
    """Culture fits per donor: posterior median and 95% band over days 0-28, with the data
    (total cells on a log axis, % CD3+CD56+); returns the Figure."""
    import numpy as np

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for k, fit in enumerate(fits):
        color = f"C{k % 10}"
        rows = data.rows[data.rows["donor"] == fit.donor]
        days = np.arange(0.0, 29.0)
        pred = fit.predictive(days, draws=100)
        for ax, q in ((axes[0], "total_cells"), (axes[1], "cd3cd56_pct")):
            lo, med, hi = np.quantile(pred[q], [0.025, 0.5, 0.975], axis=1)
            ax.plot(days, med, color=color, label=fit.donor)
            ax.fill_between(days, lo, hi, color=color, alpha=0.15, lw=0)
            obs = rows[rows["quantity"] == q]
            ax.plot(obs["day"], obs["value"], "o", color=color)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("cells")
    axes[1].set_ylabel("% CD3+CD56+")
    for ax in axes:
        ax.set_xlabel("culture day")
    axes[0].set_title("Fit and forecast (posterior median, 95% band; dots: data)")
    axes[0].legend(fontsize=7)
    return fig

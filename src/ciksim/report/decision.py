"""Decision outputs of a trial, for a clinician: survival with numbers at risk, cumulative
incidence of relapse and of death in remission, the posterior of the treatment effect,
the assurance curve, value of information, and where every default comes from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ciksim.report.html import Report

#: Plain labels (with units) for the per-arm endpoint table.
ENDPOINT_COLUMNS = {
    "name": "arm", "n": "patients",
    "rfs_3y": "relapse-free survival at 3 years (%)",
    "os_3y": "overall survival at 3 years (%)",
    "cir_3y": "cumulative incidence of relapse at 3 years (%)",
    "nrm_3y": "death in remission by 3 years (%)",
    "rmst_rfs_months": "mean relapse-free months over the first 3 years (RMST, months)",
    "rmst_os_months": "mean months alive over the first 3 years (RMST, months)",
}


def endpoint_table(summary: dict[str, Any]) -> pd.DataFrame:
    """Per arm: the endpoints with plain labels; fractions as percentages."""
    rows = []
    for a in summary["arms"]:
        row = {}
        for k, label in ENDPOINT_COLUMNS.items():
            v = a.get(k)
            row[label] = (round(100 * v, 1) if isinstance(v, float) and k.endswith("_3y")
                          else v)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_survival_at_risk(patients: pd.DataFrame, arm_names: Sequence[str],
                          endpoint: str = "rfs") -> Any:
    """Kaplan-Meier curves of ``endpoint`` per arm with lifelines' numbers at risk."""
    from lifelines.plotting import add_at_risk_counts

    from ciksim.report.plots import pyplot
    from ciksim.trial.estimands import ENDPOINTS, kaplan_meier

    label = ENDPOINTS[endpoint]
    fig, ax = pyplot().subplots(figsize=(7, 4.8), constrained_layout=True)
    ok = patients[patients["status"] == "ok"]
    fitters = []
    for name in arm_names:
        g = ok[ok["arm"] == name]
        km = kaplan_meier(g, endpoint, label=str(name))
        km.plot_survival_function(ax=ax)
        fitters.append(km)
    ax.set_xlabel("months from remission")
    ax.set_ylabel(f"{label} (fraction)")
    ax.set_ylim(0, 1)
    ax.set_title(f"Kaplan-Meier {label} (95% CI)")
    # lifelines str.format()s the labels: braces in a user's arm name must stay literal
    labels = [str(n).replace("{", "{{").replace("}", "}}") for n in arm_names]
    add_at_risk_counts(*fitters, ax=ax, rows_to_show=["At risk"], labels=labels)
    return fig


def plot_incidence(patients: pd.DataFrame, arm_names: Sequence[str]) -> Any:
    """Aalen-Johansen cumulative incidence of relapse and of death in remission per arm."""
    from ciksim.report.plots import pyplot
    from ciksim.trial.estimands import cumulative_incidence

    fig, axes = pyplot().subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    ok = patients[patients["status"] == "ok"]
    for name in arm_names:
        g = ok[ok["arm"] == name]
        for ax, of in zip(axes, ("relapse", "death"), strict=True):
            c = cumulative_incidence(g, of)
            ax.step(c.index, c.values, where="post", label=str(name))
    axes[0].set_title("Cumulative incidence of relapse (death competing)")
    axes[1].set_title("Cumulative incidence of death in remission (relapse competing)")
    for ax in axes:
        ax.set_xlabel("months from remission")
        ax.set_ylabel("fraction of patients")
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    return fig


def plot_effect_posterior(table: pd.DataFrame, summary: dict[str, Any]) -> Any:
    """Histograms of the true effect across draws, with the 90% interval marked."""
    from ciksim.report.plots import pyplot

    measures = [m for m, e in summary["effect"].items() if e is not None]
    fig, axes = pyplot().subplots(1, len(measures), figsize=(4 * len(measures), 3.4),
                                  constrained_layout=True, squeeze=False)
    for ax, m in zip(axes[0], measures, strict=True):
        e = summary["effect"][m]
        x = table[m].to_numpy(float)
        ax.hist(x[np.isfinite(x)], bins=30, color="#4c72b0", alpha=0.7)
        for v, ls in ((e["q05"], ":"), (e["median"], "-"), (e["q95"], ":")):
            ax.axvline(v, color="k", ls=ls, lw=1)
        ax.axvline(0, color="#c44e52", lw=1)
        ax.set_xlabel(f"{e['label']} ({e['unit']})", fontsize=8)
        ax.set_yticks([])
    return fig


def plot_assurance(curve: pd.DataFrame) -> Any:
    """Assurance against patients per arm, with 95% Monte Carlo intervals."""
    from ciksim.report.plots import pyplot

    n, a = curve["n_per_arm"].to_numpy(float), curve["assurance"].to_numpy(float)
    low, high = curve["ci_low"].to_numpy(float), curve["ci_high"].to_numpy(float)
    fig, ax = pyplot().subplots(figsize=(5.5, 4), constrained_layout=True)
    ax.errorbar(n, a, yerr=np.vstack([a - low, high - a]), fmt="o-", capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("patients per arm")
    ax.set_ylabel("assurance (probability the trial succeeds)")
    ax.set_ylim(0, 1)
    return fig


def default_sources(spec: Any) -> pd.DataFrame:
    """Every default a trial relies on, with its value and source."""
    from ciksim.trial.delivery import SOURCES

    if getattr(spec, "setting", None) == "allo":
        from ciksim.report.allotrial import allo_defaults

        return allo_defaults(spec)
    d, rows = spec.delivery, []
    if d.enabled:
        for key in ("manufactured", "target_dose_reached", "not_infused",
                    "below_target_dose_fraction"):
            rows.append({"setting": key.replace("_", " "), "value": f"{getattr(d, key):.3g}",
                         "source": SOURCES[key]})
        rows.append({"setting": "not infused: reasons",
                     "value": ", ".join(f"{k} {v:g}" for k, v in d.not_infused_reasons.items()),
                     "source": SOURCES["not_infused_reasons"]})
    else:
        rows.append({"setting": "product delivery", "value": "every product infused as "
                     "planned", "source": "the trial specification ([delivery] enabled = "
                     "false)"})
    rows.append({"setting": "median survival after relapse (months)",
                 "value": f"{spec.after_relapse.median_months:g}",
                 "source": SOURCES["post_relapse_median_months"]})
    rows.append({"setting": "patient population", "value": spec.scenario.name,
                 "source": "scenario parameters: docs/models/patient.md (each with its "
                           "source)"})
    rows.append({"setting": "planned analysis", "value": spec.analysis.as_dict()
                 ["description"], "source": "the trial specification ([analysis])"})
    return pd.DataFrame(rows)


def decision_sections(rep: Report, decision: Any | None, spec: Any,
                      patients: pd.DataFrame | None) -> None:
    """Add the decision outputs (and the survival figures of ``patients``) to ``rep``."""
    from ciksim.report.plots import pyplot

    rep.paragraph(f"Run on {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
                  note=True)
    if decision is not None:
        s = decision.summary_data
        rep.heading("Decision: the treatment effect and the chance the trial succeeds")
        src = s["source"]
        rep.paragraph(f"Parameter draws: {src['label']} ({src['kind']}); {s['draws']} draws, "
                      f"{s['cohort_per_arm']} virtual patients per arm each (the same "
                      f"patients in both arms). Compared: {s['arms']['treated']} vs "
                      f"{s['arms']['control']}.")
        for w in decision.source.provenance.get("warnings", []):
            rep.paragraph(f"Warning: {w}")
        rows = [{"effect": e["label"], "unit": e["unit"], "median": e["median"],
                 "90% interval, low": e["q05"], "90% interval, high": e["q95"],
                 "Monte Carlo error (per draw)": s["mc_error"][m]["within_draw"]}
                for m, e in s["effect"].items() if e is not None]
        rep.table(pd.DataFrame(rows))
        over = [s["effect"][m]["label"] for m, v in s["mc_error"].items()
                if isinstance(v, dict) and not v["ok"] and s["effect"].get(m)]
        rep.paragraph("Monte Carlo error (the simulation's, within a draw) is "
                      + ("at most a tenth of the effect's spread across draws for every "
                         "measure (T3)." if not over else
                         "above a tenth of the effect's spread across draws for: "
                         + "; ".join(over) + ". Raise [posterior] cohort (or --cohort)."),
                      note=True)
        fig = plot_effect_posterior(decision.run.table, s)
        rep.figure(fig, "True effect across parameter draws (median solid, 90% interval "
                   "dotted, no effect red)")
        pyplot().close(fig)
        curve = pd.DataFrame(s["assurance_curve"])
        rep.paragraph(f"Assurance (probability that the planned analysis succeeds, "
                      f"{s['analysis']['description']}) with {s['assurance_n_per_arm']} "
                      f"patients per arm: {100 * s['assurance']:.0f}% (Monte Carlo SE "
                      f"{100 * s['mc_error']['assurance']:.1f} points).")
        rep.table(curve.rename(columns={
            "n_per_arm": "patients per arm", "assurance": "assurance (fraction)",
            "mc_se": "Monte Carlo SE", "ci_low": "95% low", "ci_high": "95% high"}))
        fig = plot_assurance(curve)
        rep.figure(fig, "Assurance against sample size")
        pyplot().close(fig)
        if decision.voi is not None:
            rep.heading("Which uncertainty matters (value of information)")
            v = pd.DataFrame(decision.voi["table"])
            rep.paragraph("Share of the effect's uncertainty each parameter explains "
                          "(first-order index) and how much its 90% interval would narrow if "
                          "the parameter were known. " + decision.voi["estimator"] + ".",
                          note=True)
            rep.table(v.rename(columns={"S1": "share of variance explained",
                                        "interval_narrowing": "interval narrowing "
                                                              "(fraction)"}))
    if patients is not None and not patients.empty:
        arms = [a.name for a in spec.arms]
        rep.heading("Survival per arm (intention to treat)")
        from ciksim.trial.analysis import summarize

        summ = summarize(patients, arms, 12 * spec.follow_up_years)
        rep.table(endpoint_table(summ))
        for endpoint in ("rfs", "os"):
            fig = plot_survival_at_risk(patients, arms, endpoint)
            rep.figure(fig, "Kaplan-Meier curves with the numbers at risk")
            pyplot().close(fig)
        fig = plot_incidence(patients, arms)
        rep.figure(fig, "Aalen-Johansen cumulative incidences (competing events)")
        pyplot().close(fig)
    rep.heading("Where the defaults come from")
    rep.table(default_sources(spec))

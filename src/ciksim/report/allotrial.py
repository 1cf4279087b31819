"""Report of a trial after allogeneic stem-cell transplantation: the arms' donor cells,
GRFS and overall survival (Kaplan-Meier with numbers at risk), cumulative incidences of
relapse, non-relapse mortality, acute GvHD II-IV and chronic GvHD (Aalen-Johansen), the
comparisons on the primary endpoint, and the decision outputs (effect over parameter draws,
assurance)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from ciksim.report.allo import dose_words
from ciksim.report.html import Report
from ciksim.report.trial import specification_and_provenance

#: The four competing-risk panels: (incidence key, title).
INCIDENCE_PANELS = (
    ("relapse", "Relapse (non-relapse mortality competing)"),
    ("death", "Non-relapse mortality (relapse competing)"),
    ("agvhd", "Acute GvHD grade II-IV (relapse and death competing)"),
    ("cgvhd", "Chronic GvHD (relapse and death competing)"),
)
#: Per-arm columns of the endpoint table, with plain labels.
_KEYS = (("grfs", "GRFS"), ("os", "overall survival"), ("rfs", "relapse-free survival"),
         ("cir", "relapse"), ("nrm", "non-relapse mortality"),
         ("agvhd", "acute GvHD II-IV"), ("cgvhd", "chronic GvHD"))
#: What the allo calibration can and cannot support (its status is computed by ``ciksim
#: validate``, group "allo (calibrated)", and described in docs/inference.md).
CALIBRATION_CAVEAT = (
    "Caveat on the allo calibration: on its posterior predictive the shipped allo posterior "
    "meets A1 (12-month GvHD rising with the DLI dose), A2 (escalating DLI stopped at "
    "response or GvHD at most half the GvHD of bulk DLI), A4 (CR after donor CIK at "
    "relapse), A5 (survival after pre-emptive DLI above that after DLI at relapse, as "
    "observed; in the model through whom the trigger selects, not through the DLI) and A6 "
    "(the control arm's relapse hazard, fitted jointly), but not A3 (donor-CIK acute GvHD: "
    "the model gives far less than the four series report together, and CIK add little to "
    "the GvHD the same recipients have without them). In "
    "particular the posterior cannot say how donor CIK compare with DLI in GvHD at equal "
    "CD3+ dose, which is the question of a donor CIK against DLI trial such as the "
    "cik-vs-dli example: the effect and assurance below show the model's assumptions, not "
    "evidence. Current status: `ciksim validate` (group \"allo (calibrated)\"); details: "
    "docs/inference.md, \"What the shipped allo posterior says, and what it cannot say\".")
#: The headline table's parameters differ from the decision section's.
HEADLINE_PARAMETERS = (
    "Parameters of this table: the scenario's default (uncalibrated) medians, with its "
    "between-patient spreads; NOT the posterior. The effect and assurance of the decision "
    "section are computed over the parameter draws (posterior or prior, as named there), so "
    "the two can disagree.")


def arm_text(arm: Any) -> str:
    """What an arm gives, in words: fixed donor-cell doses and triggers."""
    parts = []
    doses = [e for e in arm.events if e.get("action") == "dose"]
    if doses:
        parts.append("; ".join(f"{dose_words(e.get('dose'), float(e.get('amount', 0)))} on day "
                               f"{_days(e)}" for e in doses))
    for t in arm.triggers:
        side = "above" if "above" in t else "below"
        mon = t.get("monitor") or {"days": t["days"]}
        when = (f"days {mon['days']}" if "days" in mon else
                f"every {mon.get('every'):g} days from day {mon.get('first'):g} to "
                f"{mon.get('last'):g}")
        ds = ", ".join(f"{dose_words(d.get('dose'), float(d.get('amount', 0)))} at "
                       f"+{float(d.get('offset', 0)):g} d"
                       for d in t.get("doses", [])) or "monitoring only (records the day)"
        parts.append(f"when {t['watch']} is {side} {t[side]:g} (monitored {when}): {ds}")
    return " | ".join(parts) or "transplant alone (no donor-cell infusion)"


def _days(event: Any) -> str:
    if "day" in event:
        return f"{float(event['day']):g}"
    if "days" in event:
        return ", ".join(f"{float(d):g}" for d in event["days"])
    return f"{float(event['from']):g} every {float(event['every']):g} days"


def endpoint_table(summary: dict[str, Any], months: Sequence[int]) -> pd.DataFrame:
    """Per arm and milestone: survivals and cumulative incidences in %."""
    rows = []
    for a in summary["arms"]:
        for m in months:
            row: dict[str, Any] = {"arm": a["name"], "months": m}
            for key, label in _KEYS:
                v = a.get(f"{key}_{m}m")
                row[f"{label} (%)"] = None if v is None else round(100 * v, 1)
            rows.append(row)
    return pd.DataFrame(rows)


def comparison_table(summary: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for c in summary["comparisons"]:
        ci = c["hazard_ratio_ci"]
        rows.append({"arm": c["arm"], "versus": c["versus"],
                     "hazard ratio": c["hazard_ratio"],
                     "95% CI": "–" if ci is None else f"{ci[0]:.3f}–{ci[1]:.3f}",
                     "proportional-hazards test p": c["ph_test_p"],
                     "log-rank p": c["logrank_p"],
                     f"difference at {summary['rmst_horizon_months']:g} months (fraction)":
                         c["delta_milestone"],
                     "RMST difference (months)": c["delta_rmst"]})
    return pd.DataFrame(rows)


def plot_allo_incidence(patients: pd.DataFrame, arm_names: Sequence[str]) -> Any:
    """Aalen-Johansen cumulative incidences of relapse, NRM, acute GvHD II-IV and chronic
    GvHD per arm (2 x 2 panels)."""
    from ciksim.report.plots import pyplot
    from ciksim.trial.estimands import cumulative_incidence

    fig, axes = pyplot().subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    ok = patients[patients["status"] == "ok"]
    for name in arm_names:
        g = ok[ok["arm"] == name]
        for ax, (of, _) in zip(axes.flat, INCIDENCE_PANELS, strict=True):
            c = cumulative_incidence(g, of)
            ax.step(c.index, c.values, where="post", label=str(name))
    for ax, (_, title) in zip(axes.flat, INCIDENCE_PANELS, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("months from the stem-cell infusion")
        ax.set_ylabel("cumulative incidence (fraction)")
        ax.set_ylim(0, 1)
    axes.flat[0].legend(fontsize=8)
    return fig


def plot_tradeoff(summary: dict[str, Any], months: int) -> Any:
    """Per arm at ``months``: cumulative incidence of relapse (x) against acute GvHD II-IV
    and chronic GvHD (y): the GvL / GvHD trade-off of each dose and schedule."""
    from ciksim.report.plots import pyplot

    fig, ax = pyplot().subplots(figsize=(7, 5), constrained_layout=True)
    for a in summary["arms"]:
        x = a[f"cir_{months}m"]
        for key, marker, label in (("agvhd", "o", "acute GvHD II-IV"),
                                   ("cgvhd", "s", "chronic GvHD")):
            ax.scatter(x, a[f"{key}_{months}m"], marker=marker, color="#4c72b0" if
                       key == "agvhd" else "#c44e52", label=label)
        ax.annotate(a["name"], (x, a[f"agvhd_{months}m"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    handles, labels = ax.get_legend_handles_labels()
    keep = {lab: h for h, lab in zip(handles, labels, strict=True)}
    ax.legend(keep.values(), keep.keys(), fontsize=8)
    ax.set_xlabel(f"cumulative incidence of relapse at {months} months")
    ax.set_ylabel(f"cumulative incidence of GvHD at {months} months")
    ax.set_xlim(left=0)
    ax.set_ylim(0, 1)
    return fig


def plot_allo_survival(patients: pd.DataFrame, arm_names: Sequence[str], endpoint: str
                       ) -> Any:
    """Kaplan-Meier ``endpoint`` (grfs, os, rfs) per arm with the numbers at risk."""
    from ciksim.report.decision import plot_survival_at_risk

    fig = plot_survival_at_risk(patients, arm_names, endpoint)
    fig.axes[0].set_xlabel("months from the stem-cell infusion")
    return fig


def allo_defaults(spec: Any) -> pd.DataFrame:
    """The settings an allo trial relies on, with their source."""
    from ciksim.trial.allo import DELIVERY_NOTE

    pop = spec.population
    return pd.DataFrame([
        {"setting": "patient population",
         "value": ", ".join(f"{k} {v}" for k, v in pop.items()
                            if k not in ("parameters", "variability")),
         "source": "allo scenario and model: docs/models/allo.md (each parameter with its "
                   "source; the alloreactivity parameters are assumed or calibrated)"},
        {"setting": "GRFS", "value": f"first of acute GvHD grade {spec.grfs_agvhd}, chronic "
         "GvHD, relapse or death",
         "source": "Holtan et al., Blood 2015 (the conventional definition, not in the "
                   "reference pack); chronic GvHD counts whatever its severity (the model "
                   "has none)"},
        {"setting": "donor cells during GvHD",
         "value": "withheld (fixed or triggered) from the onset of acute GvHD grade II-IV or "
                  "chronic GvHD on, and after death",
         "source": "clinical practice (no DLI or CIK during active GvHD); the same rule as "
                   "the allo evidence layer's eligibility (ciksim.evidence.allo.arm_outcome)"},
        {"setting": "donor-cell delivery", "value": DELIVERY_NOTE,
         "source": "assumed (donor cells are collected from a healthy donor)"},
        {"setting": "planned analysis", "value": spec.analysis.as_dict()["description"],
         "source": "the trial specification ([analysis])"},
    ])


def allo_sections(rep: Report, spec: Any, patients: pd.DataFrame, summary: dict[str, Any],
                  decision: Any | None) -> None:
    """The allo trial's sections (arms, endpoints, figures, decision, defaults)."""
    from ciksim.report.decision import decision_sections
    from ciksim.report.plots import pyplot

    names = [a.name for a in spec.arms]
    rep.heading("Arms")
    rep.table(pd.DataFrame([{"arm": a.name, "donor cells": arm_text(a)} for a in spec.arms]))
    rep.heading("Endpoints per arm (intention to treat) at the scenario's default "
                "(uncalibrated) parameters")
    rep.paragraph(HEADLINE_PARAMETERS)
    months = summary["milestones_months"]
    rep.table(endpoint_table(summary, months), digits=3)
    if summary["not_modelled"]:
        rep.paragraph("Not modelled by this version of the allo model (never happens in "
                      "these tables): " + ", ".join(summary["not_modelled"]) + ".", note=True)
    rep.paragraph(f"Primary endpoint: {summary['endpoint_label']}; comparisons with the first "
                  "arm (Cox hazard ratio with lifelines' proportional-hazards test, log-rank "
                  "test, Kaplan-Meier milestone and RMST differences).", note=True)
    comp = comparison_table(summary)
    if not comp.empty:
        rep.table(comp)
    for endpoint in ("grfs", "os"):
        fig = plot_allo_survival(patients, names, endpoint)
        rep.figure(fig, f"Kaplan-Meier {'GRFS' if endpoint == 'grfs' else 'overall survival'} "
                   "with the numbers at risk")
        pyplot().close(fig)
    fig = plot_allo_incidence(patients, names)
    rep.figure(fig, "Cumulative incidences per arm (Aalen-Johansen, competing events): "
               + "; ".join(t for _, t in INCIDENCE_PANELS))
    pyplot().close(fig)
    if months:
        fig = plot_tradeoff(summary, months[-1])
        rep.figure(fig, f"GvL against GvHD per arm at {months[-1]} months: relapse against "
                   "acute GvHD II-IV (circles) and chronic GvHD (squares)")
        pyplot().close(fig)
    rep.heading("What ended GRFS first (share of patients)")
    rep.table(pd.DataFrame([{"arm": a["name"], **{k: round(100 * v, 1) for k, v in
                                                  a["grfs_ended_by"].items()}}
                            for a in summary["arms"]]).fillna(0.0))
    given = pd.DataFrame([{"arm": a["name"],
                           "given donor cells (%)": round(100 * a["given_donor_cells"], 1),
                           "median day of the first infusion": a["median_first_infusion_day"]}
                          for a in summary["arms"]])
    rep.table(given)
    if decision is not None and "share_given_control" in decision.run.table:
        t = decision.run.table
        arms = decision.summary_data["arms"]
        rep.heading("Over the parameter draws: who got donor cells, who relapsed")
        rep.table(pd.DataFrame([
            {"arm": arms[which],
             "given donor cells (%, median over draws)":
                 round(100 * float(t[f"share_given_{which}"].median()), 1),
             "draws in which anyone got donor cells": int((t[f"share_given_{which}"] > 0)
                                                          .sum()),
             "relapsed (%, median over draws)":
                 round(100 * float(t[f"share_relapsed_{which}"].median()), 1),
             "draws": len(t)} for which in ("control", "treated")]))
        if not (t[["share_given_control", "share_given_treated"]].to_numpy() > 0).any():
            rep.paragraph("No virtual patient received donor cells in any draw (no trigger "
                          "fired), so the arms cannot differ: the effect is 0 and the trial "
                          "cannot succeed under these draws.", note=True)
    if decision is not None:
        rep.paragraph(CALIBRATION_CAVEAT)
    decision_sections(rep, decision, spec, None)


def allo_trial_report(spec: Any, run: Any, summary: dict[str, Any], decision: Any | None,
                      preface: Sequence[str] = ()) -> str:
    """The HTML report of an allo trial (``preface``: paragraphs first, e.g. what ``ciksim
    run`` skipped)."""
    rep = Report(f"ciksim virtual trial after allogeneic transplantation: {spec.name}")
    if spec.description:
        rep.paragraph(spec.description)
    for text in preface:
        rep.paragraph(text, note=True)
    rep.paragraph(f"{spec.patients_per_arm} patients per arm, {spec.follow_up_years:g} years "
                  f"of follow-up from the stem-cell infusion, seed {spec.seed}.", note=True)
    rep.paragraph(CALIBRATION_CAVEAT)
    allo_sections(rep, spec, run.patients, summary, decision)
    specification_and_provenance(rep, spec.raw, run.manifest)
    return rep.render()

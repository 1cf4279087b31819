"""Figure and HTML report of the allo patient job (``ciksim patient --scenario allo-aml-cr``).

One patient: its recipient leukemia (initiating cells, blasts, MRD), donor cells
(alloreactive precursors and activated cells, the CIK product's effectors), host-tissue
damage with the GvHD grade, and chimerism with immunosuppression, over days after the
stem-cell infusion. Many patients: the share with each event by each day (cumulative
incidences; every patient is followed to the horizon or death, so no censoring).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ciksim.report.html import Report
from ciksim.report.plots import pyplot

if TYPE_CHECKING:
    from ciksim.jobs.allo import AlloPatientResult

_MARKS = (("relapse_day", "relapse", "tab:red"), ("agvhd_day", "aGvHD II-IV", "tab:orange"),
          ("cgvhd_day", "chronic GvHD", "tab:brown"), ("death_day", "death", "black"))


def _positive(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.nan)


def _one_patient(result: AlloPatientResult) -> Any:
    plt = pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(8, 9.5), sharex=True, constrained_layout=True)
    c = result.cohort.courses
    assert c is not None
    day = c["day"].to_numpy()
    ax = axes[0]
    ax.plot(day, _positive(c["LIC"].to_numpy()), color="tab:red", label="initiating cells")
    ax.plot(day, _positive(c["B"].to_numpy()), color="salmon", label="blasts")
    ax.set_yscale("log")
    ax.set_ylim(0.5, None)
    ax.set_ylabel("recipient leukemic\ncells")
    right = ax.twinx()
    right.plot(day, _positive(c["mrd"].to_numpy()), color="grey", ls=":", label="MRD")
    right.axhline(result.scenario.relapse_threshold, color="black", ls="--", lw=0.8,
                  label=f"relapse ({100 * result.scenario.relapse_threshold:g}% blasts)")
    right.set_yscale("log")
    right.set_ylim(1e-8, 2.0)
    right.set_ylabel("MRD (leukemic share)")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper right")
    ax = axes[1]
    for col, label, color in (("P_t", "alloreactive T precursors", "tab:purple"),
                              ("X_t", "activated alloreactive T", "purple"),
                              ("P_cik", "alloreactive CIK precursors", "tab:cyan"),
                              ("X_cik", "activated alloreactive CIK", "tab:blue"),
                              ("M", "alloreactive memory (GvL-restricted)", "tab:olive"),
                              ("X_m", "recalled memory effectors (GvL only)", "olive"),
                              ("E_tot", "CIK product effectors (marrow)", "tab:green")):
        values = _positive(c[col].to_numpy())
        if np.isfinite(values).any():
            ax.plot(day, values, color=color, label=label)
    ax.set_yscale("log")
    ax.set_ylim(1.0, None)
    ax.set_ylabel("donor cells")
    ax.legend(fontsize=7, loc="upper right")
    ax = axes[2]
    ax.plot(day, c["gvhd_grade"], color="tab:orange", label="acute GvHD grade (from damage)")
    ax.plot(day, 4 * c["Fib"], color="tab:brown", ls="--", label="chronic injury (x4)")
    for g in (1, 2, 3):
        ax.axhline(g, color="grey", lw=0.5, ls=":")
    ax.set_ylim(0, 4.2)
    ax.set_ylabel("host tissue")
    ax.legend(fontsize=7, loc="upper right")
    ax = axes[3]
    ax.plot(day, 100 * c["donor_chimerism"], color="tab:green", label="donor chimerism")
    ax.plot(day, 100 * np.minimum(c["IS"], 1), color="grey", label="immunosuppression")
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_xlabel("days after the stem-cell infusion")
    ax.legend(fontsize=7, loc="lower right")
    row = result.cohort.table.iloc[0]
    for col, label, color in _MARKS:
        if np.isfinite(row[col]):
            for a in axes:
                a.axvline(row[col], color=color, lw=0.8, alpha=0.7)
            axes[0].annotate(label, (row[col], 1), xycoords=("data", "axes fraction"),
                             fontsize=7, color=color, rotation=90, va="top")
    for e in result.scenario.protocol.events:
        for a in axes:
            a.axvline(e.day, color="tab:blue", lw=0.6, alpha=0.4)
    axes[0].set_title(f"{result.scenario.name} ({result.scenario.donor}, "
                      f"{result.scenario.conditioning}), seed {result.cohort.seed} "
                      "(blue: infusions and other events)")
    return fig


def _incidences(result: AlloPatientResult) -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    t = result.cohort.table
    days = np.linspace(0.0, result.cohort.horizon_days, 400)
    for col, label, color in (*_MARKS, ("nrm_day", "non-relapse death", "tab:grey")):
        x = t[col].to_numpy()
        ax.step(days, (x[None, :] <= days[:, None]).mean(axis=1), where="post", color=color,
                label=label)
    ax.set_ylim(0, 1)
    ax.set_xlabel("days after the stem-cell infusion")
    ax.set_ylabel("cumulative incidence")
    ax.set_title(f"{result.scenario.name} ({result.scenario.donor}, "
                 f"{result.scenario.conditioning}): {len(t)} patients, seed "
                 f"{result.cohort.seed}")
    ax.legend(fontsize=8)
    return fig


def allo_patient_figure(result: AlloPatientResult) -> Any:
    """One patient's course (four panels), or the cumulative incidences of many; the
    Figure."""
    if result.cohort.courses is not None and len(result.cohort.table) == 1:
        return _one_patient(result)
    return _incidences(result)


def allo_patient_report(result: AlloPatientResult) -> str:
    """Event shares by the horizon, the figure and the settings."""
    s = result.summary()
    rep = Report(f"ciksim patient: {result.scenario.name}")
    rep.table(pd.DataFrame([{"event": label, "share of patients": share}
                            for label, share in result.event_rows()]))
    rep.paragraph(f"{s['patients']} patient(s), {s['horizon_days']:g} days after the stem-cell "
                  f"infusion; donor {s['donor']}, conditioning {s['conditioning']}; median "
                  f"peak GvHD grade {s['median_peak_grade']:.2f}, median donor chimerism "
                  f"{100 * s['median_donor_chimerism']:.1f}%. Uncalibrated model defaults: "
                  "illustrative, not predictions (docs/models/allo.md).", note=True)
    for caveat in result.scenario.caveats:
        rep.paragraph(f"Not modelled: {caveat}", note=True)
    fig = allo_patient_figure(result)
    rep.figure(fig, "Course of one patient, or cumulative incidences")
    pyplot().close(fig)
    rep.heading("Settings")
    rows = [{"setting": k, "value": str(v)} for k, v in s.items()]
    rows += [{"setting": "events", "value": line} for line in _event_lines(result)]
    rep.table(pd.DataFrame(rows))
    return rep.render()


def _amount(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else str(value)


#: Donor cells by name in reports.
DONOR_CELL_NAMES = {"dli": "DLI", "cik": "donor CIK"}


def dose_words(dose: Any, amount: Any) -> str:
    """One allo-model dose in words: donor cells in CD3+ cells/kg, the withdrawal of
    immunosuppression by name (with its share when not all), another dose by name, amount
    and declared unit."""
    from ciksim.models.allo import WITHDRAWAL, allo_model

    text = _amount(amount)
    if dose in DONOR_CELL_NAMES:
        return f"{DONOR_CELL_NAMES[dose]} {text} CD3+/kg"
    if dose == WITHDRAWAL:
        whole = isinstance(amount, (int, float)) and amount >= 1
        return "immunosuppression withdrawn" + ("" if whole else f" (share {text})")
    unit = allo_model().dose_by_name[str(dose)].unit
    return f"{dose} {text}" + ("" if unit == "1" else f" {unit}")


def _event_lines(result: AlloPatientResult) -> list[str]:
    """The scenario's protocol in words: fixed events (doses in their units, days after
    the stem-cell infusion) and triggers."""
    protocol = result.scenario.protocol
    lines = [f"{dose_words(e.dose, e.amount)} on day {e.day:g}" if e.action == "dose"
             else f"{e.action} on day {e.day:g}" for e in protocol.events]
    for trig in protocol.triggers:
        cond = (f"above {_amount(trig.above)}" if trig.above is not None
                else f"below {_amount(trig.below)}")
        doses = ", ".join(f"{dose_words(d.dose, d.amount)} {d.offset:g} days later"
                          for d in trig.doses) or "monitoring only (records the day)"
        m = trig.monitor
        days = (", ".join(f"{d:g}" for d in m) if len(m) <= 6
                else f"{m[0]:g}, {m[1]:g}, ..., {m[-1]:g}: {len(m)} days")
        lines.append(f"trigger {trig.name!r}: when {trig.watch} is {cond} on a monitoring "
                     f"day ({days}): {doses}")
    return lines or ["none (no donor-cell infusion)"]

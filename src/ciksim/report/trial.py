"""Reports of a virtual trial and of the whole chain (product → killing check → trial)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from ciksim.report.html import Report

if TYPE_CHECKING:
    from ciksim.analysis.culture import CultureRun
    from ciksim.analysis.killing import AssayRun
    from ciksim.trial.runner import TrialRun
    from ciksim.trial.spec import TrialSpec

ARM_COLUMNS = ["arm", "n", "relapsed", "cured", "RFS 1y", "RFS 2y", "RFS 3y", "RFS 4y",
               "median RFS (months)"]


def arm_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row of text per arm (columns ``ARM_COLUMNS``) from a trial summary."""
    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.1f}%"

    return [[a["name"], str(a["n"]), pct(a["relapse_fraction"]), pct(a["cure_fraction"]),
             pct(a["rfs_1y"]), pct(a["rfs_2y"]), pct(a["rfs_3y"]), pct(a["rfs_4y"]),
             "not reached" if a["median_rfs_months"] is None
             else f"{a['median_rfs_months']:.1f}"] for a in summary["arms"]]


def comparison_text(c: dict[str, Any]) -> str:
    """``"B vs A: hazard ratio 0.7 (95% CI ...); log-rank p = ..."``."""
    hr = c["hazard_ratio"]
    hr_text = "–" if hr is None else (f"{hr:.3f} (95% CI {c['hazard_ratio_ci'][0]:.3f}-"
                                      f"{c['hazard_ratio_ci'][1]:.3f})")
    return f"{c['arm']} vs {c['versus']}: hazard ratio {hr_text}; log-rank p = " \
           f"{c['logrank_p']:.3g}"


def trial_report(spec: TrialSpec, run: TrialRun, summary: dict[str, Any],
                 extra: Callable[[Report], None] | None = None) -> str:
    """The HTML report of a trial (figures embedded, spec and provenance included);
    ``extra(report)`` adds sections before the survival results."""
    from ciksim.report.plots import plot_trial, pyplot

    rep = Report(f"ciksim virtual trial: {spec.name}")
    if spec.description:
        rep.paragraph(spec.description)
    if extra is not None:
        extra(rep)
    rep.heading("Relapse-free survival")
    rep.table(pd.DataFrame(arm_rows(summary), columns=ARM_COLUMNS))
    comp = pd.DataFrame([{"arm": c["arm"], "versus": c["versus"],
                          "hazard ratio": c["hazard_ratio"],
                          "95% CI": "–" if c["hazard_ratio_ci"] is None else
                          f"{c['hazard_ratio_ci'][0]:.3f}–{c['hazard_ratio_ci'][1]:.3f}",
                          "log-rank p": c["logrank_p"]} for c in summary["comparisons"]])
    if not comp.empty:
        rep.table(comp)
    axes = plot_trial(run.patients, [a.name for a in spec.arms])
    rep.figure(axes[0].figure, "Kaplan-Meier relapse-free survival with 95% bands; "
               "cumulative incidence of relapse")
    pyplot().close(axes[0].figure)
    rep.paragraph("Relapse is the only event modelled (no deaths in remission), so the "
                  "cumulative incidence of relapse is 1 − relapse-free survival. Hazard "
                  "ratios: Cox model, arm vs the first arm.", note=True)
    specification_and_provenance(rep, spec.raw, run.manifest)
    return rep.render()


def specification_and_provenance(rep: Report, raw: Mapping[str, Any],
                                 manifest: Mapping[str, Any]) -> None:
    """The specification as run and the run's provenance (version, seed, digest, backend,
    patients, failures, wall time in seconds)."""
    rep.heading("Specification")
    rep.preformatted(json.dumps(raw, indent=2))
    rep.heading("Provenance")
    m = manifest
    rep.table(pd.DataFrame([{"ciksim": m["ciksim_version"], "seed": m["seed"],
                             "digest": m["digest"], "backend": m["backend"],
                             "patients": m["patients"], "failed": m["failed_patients"],
                             "wall seconds": round(m["wall_seconds"], 1)}]))


def chain_report(spec: TrialSpec, run: TrialRun, summary: dict[str, Any],
                 culture: CultureRun | None, assays: Mapping[str, AssayRun],
                 decision: Any = None) -> str:
    """The report of ``ciksim run``: product culture (when simulated), killing check per
    target, then the trial with its decision outputs (``decision``: a DecisionResult)."""
    from ciksim.report.plots import plot_culture, plot_lysis_curve, pyplot

    def sections(rep: Report) -> None:
        if culture is not None:
            rep.heading(f"1. Product: {spec.product_protocol} culture, "
                        f"{spec.product_donors} donors")
            s = culture.summary()
            rep.table(s[s["day"].isin([0, 7, 14, 21])][
                ["day", "total_fold", "total_fold_p05", "total_fold_p95", "cd3cd56_pct",
                 "cd3_pct", "nk_pct", "il2_iu_ml"]])
            axes = plot_culture([culture])
            rep.figure(axes[0].figure, "Expansion and phenotype (median, 5-95% of donors)")
            pyplot().close(axes[0].figure)
        rep.heading("2. Killing check (simulated 4-h assay)")
        kill = pd.concat([a.summary().assign(target=t) for t, a in assays.items()])
        rep.table(kill[["target", "et_ratio", "lysis_pct", "lysis_pct_p05", "lysis_pct_p95"]])
        ax = None
        for a in assays.values():
            ax = plot_lysis_curve(a, ax=ax)
        rep.figure(ax.figure, "% specific lysis of AML blasts and normal PBMC")
        pyplot().close(ax.figure)
        rep.heading("3. Trial")
        from ciksim.report.decision import decision_sections

        decision_sections(rep, decision, spec, run.patients)

    return trial_report(spec, run, summary, sections)

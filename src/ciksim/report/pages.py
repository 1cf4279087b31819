"""HTML reports of the single-step jobs (culture, harvest plan, killing, lysis, fits,
patient, power, sensitivity). Each takes the job's result and returns one HTML string."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ciksim.report.html import Report

if TYPE_CHECKING:
    from ciksim.analysis.culture import CultureRun, HarvestPlan
    from ciksim.analysis.killing import AssayRun
    from ciksim.analysis.patient import PatientRun
    from ciksim.assays.lysis import LysisAnalysis
    from ciksim.inference.culture import CultureData
    from ciksim.trial.spec import TrialSpec


def _figure(rep: Report, fig: Any, caption: str) -> None:
    from ciksim.report.plots import pyplot

    fig = getattr(fig, "figure", fig)
    rep.figure(fig, caption)
    pyplot().close(fig)


def _settings(rep: Report, settings: dict[str, Any]) -> None:
    rep.heading("Settings")
    rep.preformatted(json.dumps(settings, indent=2, default=str))


def culture_report(runs: Sequence[CultureRun]) -> str:
    """Daily donor medians with 5-95% bands per protocol, and the expansion figure."""
    from ciksim.report.plots import plot_culture

    names = ", ".join(r.protocol.name for r in runs)
    rep = Report(f"ciksim culture: {names}")
    for r in runs:
        rep.heading(f"{r.protocol.name}: {r.donors} donors, seed {r.seed}, "
                    f"{r.start_cells:.3g} PBMC seeded")
        s = r.summary()
        rep.table(s[["day", "total_cells", "total_fold", "cd3cd56_pct", "cd3cd56_pct_p05",
                     "cd3cd56_pct_p95", "cd3cd56_fold", "cd3_pct", "nk_pct", "il2_iu_ml"]])
    _figure(rep, plot_culture(runs)[0], "Expansion and phenotype, median and 5-95% of donors")
    return rep.render()


def harvest_plan_report(run: CultureRun, plan: HarvestPlan, course: str) -> str:
    """The harvest plan (earliest day, PBMC to seed) for ``course`` (text) and the culture
    it is read from."""
    from ciksim.report.plots import plot_culture

    rep = Report(f"ciksim harvest plan: {run.protocol.name}")
    rep.table(pd.DataFrame([{k: ("not reached" if v is None else v)
                             for k, v in plan.as_dict().items()}]))
    rep.paragraph(f"Course: {course}.")
    _figure(rep, plot_culture([run])[0], "Expansion and phenotype, median and 5-95% of "
            "donors")
    return rep.render()


def killing_report(a: AssayRun, donors: int, seed: int) -> str:
    """% specific lysis per E:T (median, 5-95% of donors) and the curve."""
    from ciksim.report.plots import plot_lysis_curve

    rep = Report(f"ciksim killing: {a.effector} vs {a.target}")
    rep.paragraph(f"{a.hours:g}-h assay" + (f", anti-{a.block.upper()} block" if a.block else "")
                  + f"; {donors} simulated effector donors, seed {seed}.")
    rep.table(a.summary())
    _figure(rep, plot_lysis_curve(a), "% specific lysis vs E:T, median and 5-95% of donors")
    return rep.render()


def lysis_report(an: LysisAnalysis, targets_per_well: float, hours: float) -> str:
    """% specific lysis, lytic units, the killing-model fit and any data warnings."""
    from ciksim.assays.lysis import LU_METHOD, plot_lysis

    rep = Report("ciksim lysis analysis")
    rep.heading("% specific lysis")
    rep.table(an.groups)
    rep.heading(f"Lytic units per 1e7 effectors ({targets_per_well:g} targets per well)")
    rep.table(an.lytic)
    rep.paragraph(LU_METHOD, note=True)
    rep.heading(f"Killing-model fit ({hours:g} h assay)")
    rep.table(an.fits)
    for w in an.warnings:
        rep.paragraph(f"warning: {w}")
    _figure(rep, plot_lysis(an), "% specific lysis vs E:T (mean ± SD) with exponential fits")
    return rep.render()


def culture_fit_report(fits: Sequence[Any], data: CultureData, estimates: pd.DataFrame,
                       forecast: Sequence[dict[str, Any]]) -> str:
    """Posterior estimates per donor, the harvest-day forecast and the fit figure."""
    from ciksim.inference.culture import FIT_METHOD
    from ciksim.report.plots import plot_culture_fits

    rep = Report("ciksim culture fit")
    rep.table(estimates)
    if forecast:
        rep.heading("Harvest-day forecast")
        rep.table(pd.DataFrame(list(forecast)))
    _figure(rep, plot_culture_fits(fits, data), "Fit and forecast (posterior median, "
            "95% band; dots: data)")
    rep.paragraph(FIT_METHOD, note=True)
    return rep.render()


def killing_fit_report(estimates: Sequence[dict[str, Any]], warnings: Sequence[str],
                       hours: float) -> str:
    """The killing model's rate and susceptible fraction with 95% intervals."""
    rep = Report(f"ciksim killing-model fit ({hours:g} h assay)")
    rep.table(pd.DataFrame(list(estimates)))
    for w in warnings:
        rep.paragraph(f"warning: {w}")
    return rep.render()


def patient_report(run: PatientRun, seed: int) -> str:
    """Outcome fractions with 95% intervals and the patient (or RFS) figure."""
    from ciksim.report.plots import patient_figure

    rep = Report(f"ciksim patient: {run.scenario.name}")
    s = run.summary()
    rows = [{"outcome": label, "fraction": s[key]["value"], "95% CI low": s[key]["ci_low"],
             "95% CI high": s[key]["ci_high"]}
            for key, label in (("cure", "cured"), ("relapse", "relapsed"),
                               ("relapse_3y", "relapsed within 3 years")) if s[key]]
    rep.table(pd.DataFrame(rows))
    med = s["median_rfs_months"]
    rep.paragraph(f"{s['replicates']} patient(s), {run.years:g} years; median relapse-free "
                  f"survival {'not reached' if med is None else f'{med:.1f} months'}.")
    _figure(rep, patient_figure(run), "Trajectories (one patient) or relapse-free survival")
    _settings(rep, {"scenario": run.scenario.name, "seed": seed,
                    "cik": None if run.cik is None else run.cik.__dict__,
                    "relapse_threshold": run.threshold})
    return rep.render()


def power_report(spec: TrialSpec, table: pd.DataFrame, repeats: int) -> str:
    """Power per sample size with 95% intervals and the power curve."""
    from ciksim.report.plots import plot_power

    arms = spec.arms
    rep = Report(f"ciksim trial power: {arms[1].name} vs {arms[0].name}")
    rep.paragraph(f"Log-rank p < 0.05, {repeats} simulated trials per size.")
    rep.table(table)
    _figure(rep, plot_power(table), "Power vs patients per arm")
    return rep.render()


def sensitivity_report(table: pd.DataFrame, title: str, samples: int) -> str:
    """Sobol indices with 95% confidence and the bar chart."""
    from ciksim.inference.sensitivity import plot_sobol

    rep = Report(f"ciksim sensitivity: {title}")
    rep.paragraph(f"{samples} Sobol base samples; 95% confidence.")
    rep.table(table)
    _figure(rep, plot_sobol(table, title), "First-order and total Sobol indices")
    return rep.render()

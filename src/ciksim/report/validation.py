"""The validation report: every target with its computed value, range, source and verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from ciksim.report.html import Report

if TYPE_CHECKING:
    from ciksim.targets.base import TargetCheck


def format_value(value: Any) -> str:
    """A target's computed value as short text (dicts as ``key value; ...``)."""
    if isinstance(value, dict):
        return "; ".join(f"{k} {format_value(v)}" for k, v in value.items())
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def short_value(value: Any, width: int = 70) -> str:
    """``format_value`` shortened to ``width`` characters at whole items (``...`` marks the
    cut): never a number cut in the middle (13.0 shown as 1)."""
    import textwrap

    return textwrap.shorten(format_value(value), width=width, placeholder=" ...")


def validation_report(checks: Sequence[TargetCheck]) -> str:
    """The HTML report of ``ciksim validate``: the target table and one figure per level."""
    rep = Report("ciksim validation against the published targets")
    rep.paragraph("Each statistic is computed from the default models by "
                  "ciksim.targets (the same code the tests run); ranges and sources are "
                  "those of shared/reference/targets.md.", note=True)
    rep.table(pd.DataFrame([{"id": c.id, "target": c.description,
                             "model": format_value(c.value), "range": c.range,
                             "source": c.source, "pass": "pass" if c.passed else "FAIL"}
                            for c in checks]))
    _figures(rep)
    return rep.render()


def _figures(rep: Report) -> None:
    from ciksim.analysis.killing import run_assay
    from ciksim.report.plots import plot_culture, plot_lysis_curve, plot_trial, pyplot
    from ciksim.targets.culture import culture_runs
    from ciksim.targets.killing import cik_product
    from ciksim.targets.patient import chemo_only
    from ciksim.targets.trial import control_arm

    rep.heading("Culture (C1-C9): cik-standard and LAK, 200 donors")
    axes = plot_culture([culture_runs("cik-standard"), culture_runs("lak")])
    rep.figure(axes[0].figure, "Expansion and phenotype, median and 5-95% of donors")
    pyplot().close(axes[0].figure)
    rep.heading("Killing (K1-K8): the cik-standard product, 4-h assays")
    ax = None
    for target in ("k562", "aml-blast", "b-all-blast", "normal-pbmc-allogeneic",
                   "normal-pbmc"):
        ax = plot_lysis_curve(run_assay(cik_product(), target, et=(60, 40, 20, 10, 5, 2.5)),
                              ax=ax)
    rep.figure(ax.figure, "% specific lysis vs E:T, median and 5-95% of donors")
    pyplot().close(ax.figure)
    rep.heading("Patient (P1-P8) and trial (T1-T2): chemotherapy alone, aml-cr1")
    patients = chemo_only("aml-cr1").outcomes().assign(arm="aml-cr1 (patient model)",
                                                        status="ok")
    trial = control_arm().patients.assign(arm="default trial, control arm")
    both = pd.concat([patients[["arm", "duration", "event", "status"]],
                      trial[["arm", "duration", "event", "status"]]])
    axes = plot_trial(both, ["aml-cr1 (patient model)", "default trial, control arm"])
    rep.figure(axes[0].figure, "Relapse-free survival and cumulative incidence of relapse")
    pyplot().close(axes[0].figure)

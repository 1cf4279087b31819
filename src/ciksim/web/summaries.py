"""Each job's JSON summary shown as small HTML tables (numbers to 4 significant digits)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shiny import ui


def fmt(value: Any) -> str:
    """A summary value as shown on the page: 4 significant digits, '–' for missing."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> Any:
    """An HTML table; each cell shows ``fmt(value)``."""
    head = ui.tags.thead(ui.tags.tr(*[ui.tags.th(c) for c in columns]))
    body = ui.tags.tbody(*[ui.tags.tr(*[ui.tags.td(fmt(v)) for v in r]) for r in rows])
    return ui.tags.table(ui.tags.caption(caption) if caption else None, head, body,
                         class_="table table-sm table-striped w-auto")


def _culture(s: dict[str, Any]) -> Any:
    runs = s.get("protocols", [s])
    cols = ["total_cells", "total_fold", "cd3cd56_pct", "cd3cd56_fold", "nk_pct"]
    out = []
    for r in runs:
        last = r["rows"][-1]["day"]
        rows = [[x["day"], *[x[c] for c in cols]] for x in r["rows"]
                if x["day"] in (0, 7, 14, 21, last)]
        out.append(table(["day", *cols], rows, f"{r['protocol']}: donor medians, "
                         f"{r['donors']} donors, seed {r['seed']}"))
    return ui.div(*out)


def _plan(s: dict[str, Any]) -> Any:
    keys = ["required_cells", "day_median", "day_p05", "by_day", "start_needed_median",
            "start_needed_p05"]
    return table(keys, [[s[k] for k in keys]], f"{s['protocol']}: harvest plan")


def _killing(s: dict[str, Any]) -> Any:
    cols = ["et_ratio", "lysis_pct", "lysis_pct_p05", "lysis_pct_p95"]
    return table(cols, [[r[c] for c in cols] for r in s["rows"]],
                 f"{s['effector']} vs {s['target']}: % specific lysis over {s['donors']} donors")


def _lysis(s: dict[str, Any]) -> Any:
    lu = ["effector", "target", "lu20_per_1e7", "lu30_per_1e7"]
    parts = [table(lu, [[r[c] for c in lu] for r in s["lytic_units"]],
                   "Lytic units per 1e7 effectors")]
    if s["fits"]:
        cols = [c for c in ("effector", "target", "k_kill_per_h", "k_kill_ci_low",
                            "k_kill_ci_high", "susceptible_fraction") if c in s["fits"][0]]
        parts.append(table(cols, [[r[c] for c in cols] for r in s["fits"]],
                           "Killing-model fit"))
    g = ["effector", "target", "et_ratio", "lysis_pct_mean", "lysis_pct_sd", "n"]
    parts.append(table(g, [[r[c] for c in g] for r in s["groups"]], "% specific lysis"))
    parts += [ui.p(f"warning: {w}", class_="text-warning") for w in s["warnings"]]
    return ui.div(*parts)


def _fit(s: dict[str, Any]) -> Any:
    cols = ["donor", "parameter", "estimate", "ci_low", "ci_high", "unit"]
    parts = [table(cols, [[r[c] for c in cols] for r in s["estimates"]],
                   "Posterior estimates (95% credible intervals)")]
    if s["forecast"]:
        f = ["donor", "dose", "cells", "day_median", "day_low", "day_high"]
        parts.append(table(f, [[r.get(c) for c in f] for r in s["forecast"]],
                           "Harvest-day forecast"))
    parts.append(ui.p(s["method"], class_="text-muted small"))
    return ui.div(*parts)


def _patient(s: dict[str, Any]) -> Any:
    keys = ["replicates", "cure_fraction", "relapse_fraction", "relapse_fraction_3y",
            "median_rfs_months", "normal_nadir_fraction"]
    return table(keys, [[s[k] for k in keys]], "Outcomes")


def _trial(s: dict[str, Any]) -> Any:
    if s.get("setting") == "allo":  # GRFS, OS, RFS and cumulative incidences per milestone
        cols = [k for k in s["arms"][0] if not isinstance(s["arms"][0][k], (list, dict))]
        arms = table(cols, [[a[c] for c in cols] for a in s["arms"]],
                     f"Arms (after allogeneic transplantation; primary endpoint "
                     f"{s['endpoint']})")
    else:
        cols = ["name", "n", "relapse_fraction", "cure_fraction", "rfs_1y", "rfs_2y",
                "rfs_3y", "median_rfs_months"]
        arms = table(cols, [[a[c] for c in cols] for a in s["arms"]], "Arms")
    ci = s["hazard_ratio_ci"]
    return ui.div(arms,
                  table(["hazard_ratio", "ci_low", "ci_high", "logrank_p"],
                        [[s["hazard_ratio"], ci[0] if ci else None, ci[1] if ci else None,
                          s["logrank_p"]]], "Effect (second arm vs the first)"))


def _posterior(s: dict[str, Any]) -> Any:
    cols = ["parameter", "kind", "median", "q05", "q95", "prior_q05", "prior_q95",
            "width_ratio"]
    checks = ["summary", "observed", "q05", "median", "q95", "covered"]
    head = (f"evidence {s.get('evidence_version')}, {s.get('generations')} generations, "
            f"{s.get('evaluations')} simulated study sets")
    return ui.div(
        table(cols, [[p[c] for c in cols] for p in s["parameters"]],
              f"Posterior (median, 90% interval) vs prior 90% interval; {head}"),
        table(checks, [[c.get(k) for k in checks] for c in s["checks"]],
              "Posterior-predictive check per study: observed vs simulated 90% interval"))


def _allo(s: dict[str, Any]) -> Any:
    shares = [k for k in s if k.endswith("_fraction")]
    head = (f"{s['patients']} patient(s), {s['horizon_days']:.0f} days; donor {s['donor']}, "
            f"conditioning {s['conditioning']}, seed {s['seed']}")
    return ui.div(
        table([k[: -len("_fraction")] for k in shares], [[s[k] for k in shares]],
              f"Share of patients with each event by the horizon; {head}"),
        table(["median_peak_grade", "median_donor_chimerism"],
              [[s["median_peak_grade"], s["median_donor_chimerism"]]], "GvHD and chimerism"))


SHOW: dict[str, Callable[[dict[str, Any]], Any]] = {
    "culture": _culture, "harvest-plan": _plan, "killing": _killing, "lysis": _lysis,
    "fit-culture": _fit, "patient": _patient, "trial": _trial, "calibration": _posterior,
    "posterior": _posterior, "allo-patient": _allo,
    "allo-calibration": _posterior,
}

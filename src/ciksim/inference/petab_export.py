"""PEtab (v1) export of the culture fitting problem, checked with the petab linter.

The problem is the one ``ciksim fit culture`` solves (see :mod:`ciksim.inference.culture`):

- ``mode``, how the donors' parameters relate (PEtab v1 has no random effects):

  - ``per-donor`` (default): each donor is a condition, and each free parameter has one
    estimated parameter per donor (``phi_max__donor_0``...) mapped in the condition
    table, so the joint problem separates into the per-donor fits ciksim makes;
  - ``pooled``: one set for all donors (a pooled fit, which ciksim does not make);
  - ``hierarchical``: per-donor parameters, each with a normal prior on its fitting
    scale whose mean and SD are the population mean and between-donor SD estimated from
    ciksim's per-donor fits (``population_priors``). This is an **empirical-Bayes,
    penalised** formulation: the MAP estimate shrinks each donor towards the population
    mean by an amount set by the between-donor spread. It is *not* a full hierarchical
    (mixed-effects) model: the population mean and SD are fixed numbers in the prior
    columns, not estimated jointly with the donors, and their uncertainty is not carried;
    ciksim's own fit stays per donor with uniform priors;
- initial amounts per donor from its day-0 count (``start_cells``) in the condition table
  (the SBML holds initial amounts as numbers);
- noise as ciksim's likelihood: counts log-normal (``observableTransformation = log``)
  with SD ``sd/value`` on the log scale, percentages normal with SD ``sd``; the ``sd``
  column of the data is carried per measurement as ``noiseParameters`` (defaults: CV
  0.15 for counts, 3 points for percentages);
- parameter scales and bounds as ciksim uses them: the declared plausible range as bounds,
  ``log`` (natural) scale where the range is positive and spans more than a factor 10,
  ``lin`` otherwise; priors uniform on that scale over the range
  (``parameterScaleUniform``), as ciksim's, except in the hierarchical mode
  (``parameterScaleNormal``; the bounds stay).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ciksim.engines.sbml import initial_values, to_sbml
from ciksim.errors import CikError, DataError
from ciksim.inference.culture import COUNT_CV, PCT_SD, CultureData, log_scaled
from ciksim.models.culture import culture_model
from ciksim.protocol import Protocol

OBSERVABLES = {
    "total_cells": ("total_cells / kept_fraction", "log"),
    "cd3cd56_pct": ("100 * cd3cd56_cells / total_cells", "lin"),
    "cd3_pct": ("100 * cd3_cells / total_cells", "lin"),
    "nk_pct": ("100 * NK / total_cells", "lin"),
    "viability_pct": ("100 * viability", "lin"),
}
DEFAULT_START = 1e8


MODES = ("per-donor", "pooled", "hierarchical")
#: Smallest between-donor SD of the hierarchical priors, as a share of the width of the
#: parameter's range on its fitting scale (a zero spread would fix every donor at the mean).
MIN_SPREAD = 0.01


def population_priors(fits: Sequence[Any]) -> dict[str, tuple[float, float]]:
    """Population mean and between-donor SD of each free parameter on its fitting scale
    (natural log where ``log_scaled``), from ciksim's per-donor posterior samples
    (``DonorFit.samples``): the mean is the mean of the donors' posterior medians; the
    between-donor variance is the variance of those medians less the donors' mean posterior
    variance (method of moments, as DerSimonian-Laird), floored at ``MIN_SPREAD`` of the
    range's width."""
    if len(fits) < 2:
        raise DataError(f"petab mode hierarchical: needs at least 2 donors to estimate a "
                        f"between-donor spread, got {len(fits)}; use per-donor")
    model = culture_model()
    out = {}
    for j, name in enumerate(fits[0].free):
        p = model.parameter_by_name[name]
        log = log_scaled(p)
        scaled = [np.log(f.samples[:, j]) if log else f.samples[:, j] for f in fits]
        medians = np.array([np.median(x) for x in scaled])
        within = float(np.mean([np.var(x, ddof=1) for x in scaled]))
        between = float(np.var(medians, ddof=1)) - within
        width = (math.log(p.high) - math.log(p.low)) if log else p.high - p.low
        out[name] = (float(np.mean(medians)), max(math.sqrt(max(between, 0.0)),
                                                  MIN_SPREAD * width))
    return out


def write_petab(data: CultureData, folder: str | Path, *, protocol: Protocol,
                free: Sequence[str], mode: str = "per-donor",
                fits: Sequence[Any] | None = None) -> Path:
    """Write SBML, conditions, observables, measurements, parameters and the YAML file;
    returns the path of ``problem.yaml``. ``mode``: per-donor, pooled or hierarchical (the
    last needs ``fits``, ciksim's per-donor fits of the same data and ``free``)."""
    if mode not in MODES:
        raise DataError(f"petab mode: {mode!r} is not one of {', '.join(MODES)}")
    priors = None
    if mode == "hierarchical":
        if not fits or tuple(fits[0].free) != tuple(free):
            raise DataError("petab mode hierarchical: needs ciksim's per-donor fits of these "
                            "data and free parameters (ciksim fit culture --petab-mode "
                            "hierarchical runs them)")
        priors = population_priors(fits)
    shared = mode == "pooled"
    model = culture_model()
    bad = [f for f in free if f not in model.parameter_by_name]
    if bad or not free:
        raise DataError(f"free: unknown parameter(s) {', '.join(bad) or '(none given)'}; "
                        f"choose from {', '.join(model.parameter_names)}")
    in_initial = sorted({f for f in free for s in model.species
                         if f in model.expression("init:" + s.name).symbols})
    if in_initial:
        raise DataError(f"free: {', '.join(in_initial)} set(s) initial amounts, which the "
                        "PEtab export gives per donor as numbers; fit other parameters")
    base = {**protocol.parameter_values(model)}
    rows = data.rows
    conds, meas = [], []
    for k, donor in enumerate(data.donors):
        cid = f"donor_{k}"
        d = rows[rows["donor"] == donor]
        start = d[(d["quantity"] == "total_cells") & (d["day"] == 0)]["value"]
        start_cells = float(start.iloc[0]) if len(start) else DEFAULT_START
        init = initial_values(model, {**base, "start_cells": start_cells})
        cond = {"conditionId": cid, "conditionName": str(donor), "start_cells": start_cells}
        cond.update({s.name: init[s.name] for s in model.species
                     if "start_cells" in model.expression("init:" + s.name).symbols})
        if not shared:
            cond.update({f: f"{f}__{cid}" for f in free})
        conds.append(cond)
        for r in d.itertuples():
            given = r.sd == r.sd
            if r.quantity == "total_cells":
                sigma = r.sd / r.value if given else COUNT_CV
            else:
                sigma = r.sd if given else PCT_SD
            meas.append({"observableId": f"obs_{r.quantity}", "simulationConditionId": cid,
                         "measurement": r.value, "time": r.day, "noiseParameters": sigma})
    obs = pd.DataFrame([{"observableId": f"obs_{q}", "observableName": q,
                         "observableFormula": f, "observableTransformation": scale,
                         "noiseDistribution": "normal",
                         "noiseFormula": f"noiseParameter1_obs_{q}"}
                        for q, (f, scale) in OBSERVABLES.items()
                        if q in set(rows["quantity"])])
    pars = pd.DataFrame([_parameter_row(model.parameter_by_name[f], pid,
                                        None if priors is None else priors[f])
                         for f in free
                         for pid in ([f] if shared else
                                     [f"{f}__donor_{k}" for k in range(len(data.donors))])])
    sbml = to_sbml(model, protocol, {**base, "start_cells": DEFAULT_START})
    files = {"model.xml": sbml,
             "conditions.tsv": pd.DataFrame(conds).to_csv(sep="\t", index=False),
             "observables.tsv": obs.to_csv(sep="\t", index=False),
             "measurements.tsv": pd.DataFrame(meas).to_csv(sep="\t", index=False),
             "parameters.tsv": pars.to_csv(sep="\t", index=False),
             "problem.yaml": ("format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
                              "- condition_files: [conditions.tsv]\n"
                              "  measurement_files: [measurements.tsv]\n"
                              "  observable_files: [observables.tsv]\n"
                              "  sbml_files: [model.xml]\n")}
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        _write(out / name, text)
    _flatten(out)
    return out / "problem.yaml"


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _flatten(out: Path) -> None:
    """Where the sd varies between one donor's measurements of a quantity, give each noise
    level its own observable (petab's flattening): AMICI and pyPESTO do not accept
    measurement-specific noise parameters."""
    petab = _petab()
    problem = petab.Problem.from_yaml(str(out / "problem.yaml"))
    if not petab.lint.measurement_table_has_timepoint_specific_mappings(
            problem.measurement_df):
        return
    petab.flatten_timepoint_specific_output_overrides(problem)
    _write(out / "observables.tsv", problem.observable_df.reset_index().to_csv(
        sep="\t", index=False))
    _write(out / "measurements.tsv", problem.measurement_df.to_csv(sep="\t", index=False))


def _petab():
    try:
        from petab import v1 as petab
    except ImportError:  # older petab
        import petab  # type: ignore[no-redef]
    return petab


def _parameter_row(p, pid: str, prior: tuple[float, float] | None = None
                   ) -> dict[str, object]:
    log = log_scaled(p)
    lo, hi = (math.log(p.low), math.log(p.high)) if log else (p.low, p.high)
    kind, args = ("parameterScaleUniform", (lo, hi)) if prior is None else (
        "parameterScaleNormal", prior)
    return {"parameterId": pid, "parameterName": p.name, "parameterScale": "log" if log
            else "lin", "lowerBound": p.low, "upperBound": p.high, "nominalValue": p.value,
            "estimate": 1, "objectivePriorType": kind,
            "objectivePriorParameters": f"{args[0]!r};{args[1]!r}"}


def lint(problem_yaml: str | Path) -> None:
    """Run the petab linter; raise CikError if it finds errors."""
    petab = _petab()
    problem = petab.Problem.from_yaml(str(problem_yaml))
    if petab.lint_problem(problem):
        raise CikError(f"PEtab export {problem_yaml} fails the petab linter (see log)")


__all__ = ["MODES", "lint", "population_priors", "write_petab"]

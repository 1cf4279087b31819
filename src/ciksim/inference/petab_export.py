"""PEtab (v1) export of the culture fitting problem, checked with the petab linter."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ciksim.engines.sbml import to_sbml
from ciksim.errors import CikError
from ciksim.inference.culture import COUNT_CV, PCT_SD, CultureData
from ciksim.models.culture import culture_model
from ciksim.protocol import Protocol

OBSERVABLES = {
    "total_cells": ("total_cells / kept_fraction", "log", repr(COUNT_CV)),
    "cd3cd56_pct": ("100 * cd3cd56_cells / total_cells", "lin", repr(PCT_SD)),
    "cd3_pct": ("100 * cd3_cells / total_cells", "lin", repr(PCT_SD)),
    "nk_pct": ("100 * NK / total_cells", "lin", repr(PCT_SD)),
    "viability_pct": ("100 * viability", "lin", repr(PCT_SD)),
}


def write_petab(data: CultureData, folder: str | Path, *, protocol: Protocol,
                free: Sequence[str]) -> Path:
    """Write SBML, conditions, observables, measurements, parameters and the YAML file."""
    model = culture_model()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rows = data.rows
    conds, meas = [], []
    for k, donor in enumerate(data.donors):
        cid = f"donor_{k}"
        d = rows[rows["donor"] == donor]
        start = d[(d["quantity"] == "total_cells") & (d["day"] == 0)]["value"]
        conds.append({"conditionId": cid, "conditionName": str(donor),
                      "start_cells": float(start.iloc[0]) if len(start) else 1e8})
        for r in d.itertuples():
            meas.append({"observableId": f"obs_{r.quantity}", "simulationConditionId": cid,
                         "measurement": r.value, "time": r.day})
    obs = pd.DataFrame([{"observableId": f"obs_{q}", "observableFormula": f,
                         "observableTransformation": scale, "noiseDistribution": "normal",
                         "noiseFormula": noise}
                        for q, (f, scale, noise) in OBSERVABLES.items()
                        if q in set(rows["quantity"])])
    pars = pd.DataFrame([{"parameterId": f, "parameterScale": "log10",
                          "lowerBound": max(model.parameter_by_name[f].low, 1e-12),
                          "upperBound": model.parameter_by_name[f].high,
                          "nominalValue": model.parameter_by_name[f].value, "estimate": 1}
                         for f in free])
    files = {"model.xml": to_sbml(model, protocol),
             "conditions.tsv": pd.DataFrame(conds).to_csv(sep="\t", index=False),
             "observables.tsv": obs.to_csv(sep="\t", index=False),
             "measurements.tsv": pd.DataFrame(meas).to_csv(sep="\t", index=False),
             "parameters.tsv": pars.to_csv(sep="\t", index=False),
             "problem.yaml": ("format_version: 1\nparameter_file: parameters.tsv\nproblems:\n"
                              "- condition_files: [conditions.tsv]\n"
                              "  measurement_files: [measurements.tsv]\n"
                              "  observable_files: [observables.tsv]\n"
                              "  sbml_files: [model.xml]\n")}
    for name, text in files.items():
        tmp = out / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out / name)
    return out / "problem.yaml"


def lint(problem_yaml: str | Path) -> None:
    """Run the petab linter; raise CikError if it finds errors."""
    try:
        from petab import v1 as petab
    except ImportError:  # older petab
        import petab  # type: ignore[no-redef]
    problem = petab.Problem.from_yaml(str(problem_yaml))
    if petab.lint_problem(problem):
        raise CikError(f"PEtab export {problem_yaml} fails the petab linter (see log)")


__all__ = ["lint", "write_petab"]

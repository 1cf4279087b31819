"""Global sensitivity (Sobol indices with SALib) of a model output to its parameters.

Parameters are sampled within their declared plausible ranges (log-uniformly where a range
spans more than a factor 10), so the declarations are the only input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ciksim.errors import DataError
from ciksim.model import Model

#: Parameter sets of the patient model simulated per batch (each with its virtual patients)
PATIENT_BATCH = 16

#: ``progress(done, total)`` after a parameter set's or a day's work
Progress = Callable[[int, int], None]

#: Default parameters studied for the patient cure fraction (the uncertain, assumed ones).
PATIENT_DEFAULT = ("start_burden", "logkill_L", "T_double", "lig_frac", "s_vivo", "f_marrow",
                   "t_half_E", "k_cik", "K_et", "n_kill")


@dataclass(frozen=True)
class Output:
    model: str
    description: str
    unit: str
    evaluate: Callable[[dict[str, np.ndarray], int, Progress | None], np.ndarray]
    default_parameters: Callable[[Model], list[str]]
    progress_unit: str  # what ``progress`` counts


def _culture_yield(pars: dict[str, np.ndarray], seed: int, progress: Progress | None = None
                   ) -> np.ndarray:
    """Day-21 yield per parameter sample: one batched solve (its shared step control is why
    it is not split), whose ``progress`` counts the culture days reached."""
    from ciksim.analysis.culture import run_culture, time_progress

    run = run_culture("cik-standard", donors=1, days=21, parameters=pars,
                      progress=time_progress(progress, [21.0], 0))
    return run.result["cd3cd56_cells"][-1]


def _cure_fraction(pars: dict[str, np.ndarray], seed: int, progress: Progress | None = None,
                   patients: int = 200) -> np.ndarray:
    """Cure fraction per parameter sample, each sample with the same virtual patients
    (common random numbers reduce the noise of the indices). Without ``progress`` all
    samples are one batched run; with it, batches of :data:`PATIENT_BATCH` samples, reported
    as each ends (patient ``i`` has the same random numbers in any batch: same numbers)."""
    from ciksim.analysis.patient import CikSchedule, run_patients
    from ciksim.models.patient import Scenario

    n = len(next(iter(pars.values())))
    scenario = Scenario.load("aml-cr1")
    step = n if progress is None else PATIENT_BATCH
    cured = []
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        k = rows.stop - rows.start
        run = run_patients(scenario, cik=CikSchedule(), replicates=k * patients, years=3,
                           seed=seed, indices=np.tile(np.arange(patients), k),
                           parameters={p: np.repeat(v[rows], patients)
                                       for p, v in pars.items()})
        cured.append(run.outcomes()["cured"].to_numpy().reshape(k, patients).mean(axis=1))
        if progress is not None:
            progress(rows.stop, n)
    return np.concatenate(cured)


def _culture_defaults(model: Model) -> list[str]:
    skip = {"start_cells", "seed_density"}
    return [p.name for p in model.parameters if p.high > p.low and p.name not in skip]


OUTPUTS = {
    "cd3cd56_yield": Output("culture", "CD3+CD56+ cells at day 21 (cik-standard, 1e8 PBMC)",
                            "cells", _culture_yield, _culture_defaults, "culture days"),
    "cure_fraction": Output("patient", "share of aml-cr1 patients cured with default CIK",
                            "1", _cure_fraction, lambda m: list(PATIENT_DEFAULT),
                            "parameter sets"),
}


def sobol(output: str, *, parameters: Sequence[str] | None = None, samples: int = 64,
          seed: int = 0, progress: Progress | None = None) -> pd.DataFrame:
    """First-order and total Sobol indices (with 95% confidence) of ``output``.
    ``progress(done, total)`` watches the model evaluations (in the output's
    ``progress_unit``); the indices are the same with or without it."""
    from SALib.analyze import sobol as analyze
    from SALib.sample import sobol as sample

    from ciksim.docs import model_by_name

    if output not in OUTPUTS:
        raise DataError(f"output: unknown output {output!r}; use {', '.join(OUTPUTS)}")
    spec = OUTPUTS[output]
    model = model_by_name(spec.model)
    names = list(parameters) if parameters else spec.default_parameters(model)
    bad = [n for n in names if n not in model.parameter_by_name]
    if bad:
        raise DataError(f"parameters: {', '.join(bad)} not in model {spec.model!r}")
    flat = [n for n in names if model.parameter_by_name[n].high <= model.parameter_by_name[n].low]
    if flat:
        raise DataError(f"parameters: {', '.join(flat)} have no range to vary")
    if samples < 4 or samples & (samples - 1):
        raise DataError("samples must be a power of 2 (>= 4) for Sobol sequences")
    logs = []
    bounds = []
    for n in names:
        p = model.parameter_by_name[n]
        log = p.low > 0 and p.high / p.low > 10
        logs.append(log)
        bounds.append([np.log10(p.low), np.log10(p.high)] if log else [p.low, p.high])
    problem = {"num_vars": len(names), "names": names, "bounds": bounds}
    x = sample.sample(problem, samples, calc_second_order=False, seed=seed)
    values = {n: (10 ** x[:, j] if logs[j] else x[:, j]) for j, n in enumerate(names)}
    y = np.asarray(spec.evaluate(values, seed, progress), dtype=float)
    if output == "cd3cd56_yield":
        y = np.log10(y)
    res = analyze.analyze(problem, y, calc_second_order=False, seed=seed)
    return pd.DataFrame({"parameter": names, "S1": res["S1"], "S1_conf": res["S1_conf"],
                         "ST": res["ST"], "ST_conf": res["ST_conf"]}
                        ).sort_values("ST", ascending=False, ignore_index=True)


def plot_sobol(table: pd.DataFrame, title: str, ax=None):
    from ciksim.report.plots import pyplot

    plt = pyplot()
    top = table.head(15)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(top) + 1.5), constrained_layout=True)
    y = np.arange(len(top))[::-1]
    ax.barh(y + 0.2, top["ST"], 0.4, xerr=top["ST_conf"], label="total (ST)")
    ax.barh(y - 0.2, top["S1"], 0.4, xerr=top["S1_conf"], label="first order (S1)")
    ax.set_yticks(y, top["parameter"])
    ax.set_xlabel("Sobol index")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return ax

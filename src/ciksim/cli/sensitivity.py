"""``ciksim sensitivity``: Sobol indices of an output over the parameters' ranges."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ciksim.cli import options as opt
from ciksim.cli.common import JsonFlag, console, emit, progress_bar, rich_table, verb

if TYPE_CHECKING:
    from ciksim.jobs.sensitivity import SensitivityResult


@verb()
def sensitivity(
    model: Annotated[str, typer.Argument(help="culture or patient.")],
    output: Annotated[str, typer.Option(help="cd3cd56_yield (culture) or cure_fraction "
                                             "(patient).")],
    parameters: Annotated[str | None, typer.Option(help="Comma-separated parameters "
                                                        "(default: the model's set).")] = None,
    samples: Annotated[int, typer.Option(help="Sobol base samples (power of 2).")] = 64,
    seed: opt.Seed = 0,
    out: Annotated[Path | None, typer.Option(help="Folder for the table, bar chart and "
                                                  "report.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Global sensitivity (Sobol indices, SALib) of an output to the parameters' ranges."""
    from ciksim.inference.sensitivity import OUTPUTS
    from ciksim.jobs.sensitivity import sensitivity_job

    names = [x.strip() for x in parameters.split(",") if x.strip()] if parameters else None
    unit = OUTPUTS[output].progress_unit if output in OUTPUTS else "evaluations"
    with progress_bar(f"sensitivity ({model})", sys.stderr.isatty() and not as_json,
                      unit=unit) as update:
        res = sensitivity_job(model, output, parameters=names, samples=samples, seed=seed,
                              progress=update)
    emit(res, out, as_json, lambda: _print_indices(res, samples))


def _print_indices(res: SensitivityResult, samples: int) -> None:
    rows = [[r.parameter, f"{r.S1:.3f} ± {r.S1_conf:.3f}", f"{r.ST:.3f} ± {r.ST_conf:.3f}"]
            for r in res.table.itertuples()]
    console.print(rich_table(f"{res.title} ({samples} base samples, 95% confidence)",
                             ["parameter", "first order", "total"], rows))

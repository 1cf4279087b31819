"""Sensitivity job: Sobol indices of a model output over the parameters' ranges."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ciksim.errors import DataError
from ciksim.io import Staging
from ciksim.jobs.base import JobResult, jsonable

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class SensitivityResult(JobResult):
    """First-order and total Sobol indices (95% confidence) per parameter."""

    model: str
    output: str
    samples: int
    table: pd.DataFrame

    @property
    def title(self) -> str:
        from ciksim.inference.sensitivity import OUTPUTS

        return f"{OUTPUTS[self.output].description}: Sobol indices"

    def summary(self) -> dict[str, Any]:
        return jsonable({"model": self.model, "output": self.output, "samples": self.samples,
                         "indices": self.table.to_dict("records")})

    def report_html(self) -> str:
        from ciksim.report.pages import sensitivity_report

        return sensitivity_report(self.table, self.title, self.samples)

    def stage(self, stage: Staging) -> None:
        from ciksim.inference.sensitivity import plot_sobol

        stage.table(self.table, f"sobol_{self.output}")
        stage.figure(plot_sobol(self.table, self.title), f"sobol_{self.output}")


def sensitivity_job(model: str, output: str, *, parameters: Sequence[str] | None = None,
                    samples: int = 64, seed: int = 0,
                    progress: Callable[[int, int], None] | None = None) -> SensitivityResult:
    """Sobol indices of ``output`` (cd3cd56_yield of culture, cure_fraction of patient) with
    ``samples`` base samples (a power of 2) over ``parameters`` (default: the model's set).
    ``progress(done, total)`` watches the model evaluations (culture days of the batched
    solve, or parameter sets of the patient model); it changes no number."""
    from ciksim.inference.sensitivity import OUTPUTS, sobol

    if output not in OUTPUTS or OUTPUTS[output].model != model:
        choices = ", ".join(f"{k} ({v.model})" for k, v in OUTPUTS.items())
        raise DataError(f"--output {output!r} is not an output of model {model!r}; use "
                        f"{choices}")
    table = sobol(output, parameters=list(parameters) if parameters else None,
                  samples=samples, seed=seed, progress=progress)
    return SensitivityResult(model, output, samples, table)

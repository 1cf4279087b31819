"""Patient job: virtual patients after chemotherapy, with or without CIK infusions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ciksim.io import Staging
from ciksim.jobs.base import JobResult, jsonable

if TYPE_CHECKING:
    from ciksim.analysis.patient import CikSchedule, PatientRun
    from ciksim.engines.stochastic import StochasticResult

#: patients simulated per chunk when progress is reported
CHUNK = 500


@dataclass(frozen=True)
class PatientResult(JobResult):
    """Outcomes of one or many virtual patients (trajectories kept for a single patient)."""

    run: PatientRun
    seed: int

    @property
    def cik(self) -> CikSchedule | None:
        return self.run.cik

    def intervals(self) -> dict[str, Any]:
        """Fractions with 95% intervals and the median RFS (see ``PatientRun.summary``)."""
        return self.run.summary()

    def summary(self) -> dict[str, Any]:
        s = self.intervals()
        return jsonable({
            "replicates": s["replicates"],
            "cure_fraction": s["cure"]["value"],
            "relapse_fraction": s["relapse"]["value"],
            "relapse_fraction_3y": s["relapse_3y"]["value"] if s["relapse_3y"] else None,
            "death_in_remission_fraction": s["death_in_remission"]["value"],
            "median_rfs_months": s["median_rfs_months"],
            "normal_nadir_fraction": s["normal_nadir_fraction"],
        })

    def report_html(self) -> str:
        from ciksim.report.pages import patient_report

        return patient_report(self.run, self.seed)

    def stage(self, stage: Staging) -> None:
        from ciksim.report.plots import patient_figure

        run = self.run
        stage.table(run.outcomes(), "patients")
        stage.json({**self.summary(), "intervals": self.intervals(),
                    "scenario": run.scenario.name,
                    "cik": None if self.cik is None else self.cik.__dict__,
                    "years": run.years, "seed": self.seed, "relapse_threshold": run.threshold,
                    "meta": run.result.meta}, "patient_summary")
        stage.figure(patient_figure(run), "patient")


def patient_job(scenario: str = "aml-cr1", *, subtype: str | None = None, cik: bool = True,
                cik_dose: float = 5e7, infusions: int = 3, interval: float = 21.0,
                first_infusion_day: float = 30.0, il2_support: bool = False,
                product: str | Path | None = None, start_burden: float | None = None,
                replicates: int = 1, years: float = 3.0, seed: int = 0,
                relapse: str = "haematologic",
                progress: Callable[[int, int], None] | None = None,
                chunk_size: int = CHUNK) -> PatientResult:
    """Simulate ``replicates`` patients of ``scenario`` for ``years``.

    With ``cik``: ``infusions`` of ``cik_dose`` CD3+ cells/kg every ``interval`` days from
    ``first_infusion_day`` (day), of ``product`` (a culture folder; default the cik-gmp
    product). ``start_burden``: leukemic fraction of marrow at day 0; ``relapse``:
    ``haematologic`` (>= 5% blasts) or ``molecular`` (MRD >= 1e-4). A single patient keeps
    its trajectories for the figure. ``progress(done, total)`` is called after each chunk of
    ``chunk_size`` patients; patient ``i`` keeps its random streams whatever the chunking,
    so the numbers are those of one run.
    """
    from ciksim.analysis.patient import CikSchedule, run_patients

    schedule = (CikSchedule(cik_dose, infusions, interval, first_infusion_day, il2_support)
                if cik else None)
    kwargs = dict(subtype=subtype, cik=schedule, product=product, start_burden=start_burden,
                  years=years, seed=seed, relapse=relapse)
    if progress is None or replicates <= chunk_size:
        run = run_patients(scenario, replicates=replicates, record=replicates == 1, **kwargs)
        if progress is not None:
            progress(replicates, replicates)
        return PatientResult(run, seed)
    runs = []
    for start in range(0, replicates, chunk_size):
        idx = np.arange(start, min(start + chunk_size, replicates))
        runs.append(run_patients(scenario, replicates=idx.size, indices=idx, **kwargs))
        progress(int(idx[-1]) + 1, replicates)
    return PatientResult(replace(runs[0], result=concat_results([r.result for r in runs])),
                         seed)


def concat_results(parts: list[StochasticResult]) -> StochasticResult:
    """Chunks of one cohort (consecutive patients, no trajectories) as one result."""
    first = parts[0]

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts], axis=-1)

    return replace(first, indices=cat("indices"), parameters=cat("parameters"),
                   extinction_time=cat("extinction_time"), crossing_time=cat("crossing_time"),
                   minimum=cat("minimum"), final=cat("final"), trajectory=None,
                   trigger_day={k: np.concatenate([p.trigger_day[k] for p in parts])
                                for k in first.trigger_day})

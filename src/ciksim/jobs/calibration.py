"""Calibration jobs: the in vivo CIK effect (patient) or the alloreactivity of the
post-transplant model (allo) fitted to clinical evidence (ABC-SMC), and a saved (or a
shipped) posterior shown with the same tables, figures and report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ciksim.errors import DataError
from ciksim.io import Staging
from ciksim.jobs.base import JobResult, jsonable


def _stage_posterior(post: Any, stage: Staging) -> None:
    stage.table(post.summary(), "summary")
    stage.table(post.ppc, "ppc")
    stage.figure(post.plot(), "prior_posterior")
    stage.figure(post.plot_ppc(), "ppc")


@dataclass(frozen=True)
class CalibrationJobResult(JobResult):
    """A calibration's posterior, its checks and the folder holding its run."""

    result: Any  # ciksim.evidence.CalibrationResult

    def summary(self) -> dict[str, Any]:
        """Each parameter's median and 90% interval, and each study's check."""
        return jsonable(self.result.as_json())

    def report_html(self) -> str:
        from ciksim.evidence.report import calibration_report

        return calibration_report(self.result.posterior)

    def stage(self, stage: Staging) -> None:
        _stage_posterior(self.result.posterior, stage)
        stage.json(self.summary(), "calibration")


def calibration_job(*, evidence: str | Path | None = None, add_cohort: str | Path | None = None,
                    study: str | Path | None = None, particles: int = 200,
                    generations: int = 12, min_epsilon: float | None = None, workers: int = 1,
                    scheduler: str | None = None, seed: int = 0, resume: bool = False,
                    ppc_draws: int = 100, out: str | Path,
                    progress: Callable[[str], None] | None = None) -> CalibrationJobResult:
    """Calibrate the effect to ``evidence`` (default: the shipped evidence), plus a cohort
    CSV (``add_cohort``) whose design is described by ``study`` (TOML). The run lives in
    ``out`` (resumable); ``result.write(out)`` adds tables, figures and the report.
    ``ppc_draws``: simulated study sets of the posterior-predictive check (>= 10)."""
    from ciksim.evidence import calibrate, cohort_study, load_evidence

    if (add_cohort is None) != (study is None):
        raise DataError("add-cohort and study go together: the cohort CSV gives the patients, "
                        "the study TOML its design (setting, design, population, arms)")
    ev = load_evidence(evidence)
    if add_cohort is not None:
        ev = ev.with_study(cohort_study(add_cohort, study))
    res = calibrate(ev, out=out, particles=particles, generations=generations,
                    min_epsilon=min_epsilon, workers=workers, scheduler=scheduler, seed=seed,
                    resume=resume, ppc_draws=ppc_draws, progress=progress)
    return CalibrationJobResult(res)


def allo_calibration_job(*, evidence: str | Path | None = None,
                         parameters: Sequence[str] | None = None, particles: int = 30,
                         generations: int = 3, min_epsilon: float | None = None,
                         workers: int = 1, scheduler: str | None = None, seed: int = 0,
                         resume: bool = False, out: str | Path, ppc_draws: int = 40,
                         progress: Callable[[str], None] | None = None
                         ) -> CalibrationJobResult:
    """Calibrate allo-model ``parameters`` (default
    :data:`ciksim.evidence.allo.DEFAULT_PARAMETERS`) to the allo ``evidence`` (default: the
    shipped ``allo.toml``). The run lives in ``out`` (resumable); the posterior-predictive
    check re-simulates the studies at ``ppc_draws`` posterior draws."""
    from ciksim.evidence import calibrate

    res = calibrate(evidence, out=out, particles=particles, generations=generations,
                    min_epsilon=min_epsilon, workers=workers, scheduler=scheduler, seed=seed,
                    resume=resume, progress=progress, model="allo", ppc_draws=ppc_draws,
                    effects=None if parameters is None else tuple(parameters))
    return CalibrationJobResult(res)


@dataclass(frozen=True)
class PosteriorJobResult(JobResult):
    """A saved posterior: intervals against the prior and its study checks."""

    posterior: Any  # ciksim.evidence.Posterior
    source: str

    def summary(self) -> dict[str, Any]:
        """Each parameter's median and 90% interval (with the prior's), each study's check."""
        m = self.posterior.manifest
        return jsonable({"source": self.source,
                         "evidence_version": m.get("evidence_version"),
                         "generations": m.get("generations"),
                         "evaluations": m.get("evaluations"),
                         "parameters": self.posterior.summary().to_dict("records"),
                         "checks": self.posterior.ppc.to_dict("records")})

    def report_html(self) -> str:
        from ciksim.evidence.report import calibration_report

        return calibration_report(self.posterior)

    def stage(self, stage: Staging) -> None:
        _stage_posterior(self.posterior, stage)
        stage.json(self.summary(), "posterior")


def posterior_job(path: str | Path | None = None, *, model: str = "patient"
                  ) -> PosteriorJobResult:
    """The posterior saved by a calibration (``path``: its ``posterior.parquet`` or folder;
    None: the posterior shipped with ciksim for ``model``, patient or allo)."""
    from ciksim.evidence import Posterior

    return PosteriorJobResult(Posterior.load(path, model=model),
                              f"shipped {model}" if path is None else str(path))

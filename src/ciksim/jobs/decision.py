"""Decision jobs: a trial design run over parameter draws (posterior-predictive effect,
assurance, Monte Carlo error, value of information) and the assurance curve."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ciksim.errors import DataError
from ciksim.io import Staging
from ciksim.jobs.base import JobResult, jsonable

if TYPE_CHECKING:
    from ciksim.analysis.product import ProductLots
    from ciksim.trial.draws import DrawRun
    from ciksim.trial.sources import DrawSource
    from ciksim.trial.spec import TrialSpec

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DecisionResult(JobResult):
    """A design run over draws: per-draw table, summary (effect, assurance, MC error) and
    value of information (None with fewer than 20 draws)."""

    spec: TrialSpec
    source: DrawSource
    run: DrawRun
    summary_data: dict[str, Any]
    voi: dict[str, Any] | None

    def summary(self) -> dict[str, Any]:
        s = self.summary_data
        out = {"source": s["source"], "draws": s["draws"], "arms": s["arms"],
               "effect": {m: None if e is None else
                          {"median": e["median"], "interval_90": [e["q05"], e["q95"]],
                           "unit": e["unit"], "label": e["label"]}
                          for m, e in s["effect"].items()},
               "assurance": s["assurance"], "assurance_n_per_arm": s["assurance_n_per_arm"],
               "assurance_curve": s["assurance_curve"], "mc_error": s["mc_error"],
               "analysis": s["analysis"]}
        if self.voi is not None:
            out["value_of_information"] = {"most_informative": self.voi["most_informative"],
                                           "estimator": self.voi["estimator"]}
        return jsonable(out)

    def report_html(self) -> str:
        from ciksim.report.decision import decision_sections
        from ciksim.report.html import Report

        rep = Report(f"ciksim trial decision: {self.spec.name}")
        decision_sections(rep, self, self.spec, None)
        return rep.render()

    def stage(self, stage: Staging) -> None:
        import pandas as pd

        from ciksim.report.decision import plot_assurance, plot_effect_posterior
        from ciksim.report.plots import pyplot

        stage.table(self.run.table, "draws")
        stage.table(pd.DataFrame(self.summary_data["assurance_curve"]), "assurance")
        if self.voi is not None:
            stage.table(pd.DataFrame(self.voi["table"]), "value_of_information")
        stage.json({**self.summary(), "manifest": jsonable(self.run.manifest)}, "decision")
        fig = plot_effect_posterior(self.run.table, self.summary_data)
        stage.figure(fig, "effect")
        pyplot().close(fig)
        fig = plot_assurance(pd.DataFrame(self.summary_data["assurance_curve"]))
        stage.figure(fig, "assurance")
        pyplot().close(fig)


def _source(posterior: Any, prior: bool, configured: str, allo: bool = False) -> DrawSource:
    """The draw source (``allo``: of allo-model parameters); when the shipped posterior is
    asked for by default and this installation has none, the prior, saying so (warning and
    label)."""
    import warnings

    from ciksim.errors import SimulationWarning
    from ciksim.trial.allosim import allo_source
    from ciksim.trial.sources import DrawSource, resolve_source

    resolve = allo_source if allo else resolve_source
    if posterior is not None or prior or configured != "shipped":
        return resolve(posterior, prior)
    try:
        return resolve()
    except DataError as exc:
        warnings.warn(f"{exc}; the decision outputs use the prior instead", SimulationWarning,
                      stacklevel=3)
        src = resolve(prior=True)
        what = "allo posterior" if allo else "posterior"
        return DrawSource(src.sampler, "prior", f"{src.label} (no shipped {what} in this "
                          "installation)" if allo else "prior (no shipped posterior in this "
                          "installation)", src.provenance)


def parse_arms(text: str | None) -> tuple[str | None, str | None]:
    """``--arm "control,treated"`` (or just the treated arm) → (control, treated)."""
    if text is None:
        return None, None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise DataError("arm: give the treated arm, or CONTROL,TREATED (two arm names)")


def decision_job(spec: str | Path | TrialSpec, *, posterior: str | Path | Any = None,
                 prior: bool = False, draws: int | None = None, cohort: int | None = None,
                 sizes: Sequence[int] | str | None = None, arms: str | None = None,
                 seed: int | None = None, n_per_arm: int | None = None,
                 out: str | Path | None = None, resume: bool = False,
                 workers: int | None = None, scheduler: str | None = None,
                 progress: Progress | None = None,
                 composition: ProductLots | dict[str, float] | None = None
                 ) -> DecisionResult:
    """Run the design of ``spec`` over parameter draws.

    ``posterior``: a saved posterior (file or folder) or any object with ``sample(n,
    seed)``; None → the spec's ``[posterior] source`` (default the shipped posterior);
    ``prior``: over the prior instead. ``draws``/``cohort`` override the spec's;
    ``sizes``: patients per arm for the assurance curve (default the spec's); ``arms``:
    ``"treated"`` or ``"control,treated"``; ``seed``/``n_per_arm`` override the spec's.
    ``out``: folder for the resumable chunks (``resume`` continues there).
    """
    from ciksim.trial.design import voi_summary
    from ciksim.trial.draws import DrawDesign, parse_sizes, run_over_draws
    from ciksim.trial.spec import load_spec

    s = load_spec(spec, n_per_arm)
    if seed is not None:
        s = s.with_seed(seed)
    if resume and out is None:
        raise DataError("resume: needs the --out folder of the interrupted run")
    cfg = s.posterior
    if posterior is None and not prior:
        if cfg["source"] == "prior":
            prior = True
        elif cfg["source"] != "shipped":
            posterior = cfg["source"]
    source = _source(posterior, prior, cfg["source"], getattr(s, "setting", None) == "allo")
    n_draws = cfg["draws"] if draws is None else draws
    control, treated = parse_arms(arms)
    design = DrawDesign(draws=n_draws, cohort=cfg["cohort"] if cohort is None else cohort,
                        sizes=parse_sizes(sizes, "n") if sizes is not None else (),
                        control=control, treated=treated)
    run = run_over_draws(s, source, design, out=out, resume=resume, workers=workers,
                         scheduler=scheduler, progress=progress, composition=composition)
    if not run.complete:
        raise DataError(f"the run over draws stopped after {len(run.table)} of "
                        f"{run.design.draws} draws; resume it with --resume")
    summary = run.summary()
    voi = voi_summary(run, s.seed) if len(run.table) >= 20 else None
    return DecisionResult(s, source, run, summary, voi)

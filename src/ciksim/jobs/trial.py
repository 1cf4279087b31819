"""Trial jobs: a virtual trial, its power curve, and the whole chain (culture → killing →
trial) behind ``ciksim run``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ciksim.errors import DataError
from ciksim.io import Staging
from ciksim.jobs.base import JobResult, jsonable
from ciksim.trial.spec import load_spec

if TYPE_CHECKING:
    import pandas as pd

    from ciksim.analysis.culture import CultureRun
    from ciksim.analysis.killing import AssayRun, Product
    from ciksim.analysis.product import ProductLots
    from ciksim.jobs.decision import DecisionResult
    from ciksim.trial.runner import TrialRun
    from ciksim.trial.spec import TrialSpec

Progress = Callable[[int, int], None]
#: Targets and E:T ratios of the killing check in the whole chain.
ASSAY_TARGETS = ("aml-blast", "normal-pbmc")
ASSAY_ET = (40, 20, 10, 5, 2.5)


def compact_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The headline of a trial summary: per-arm RFS (allo: GRFS, OS, RFS and the cumulative
    incidences at each milestone) and the first comparison."""
    if summary.get("setting") == "allo":
        from ciksim.trial.alloanalysis import INCIDENCE, SURVIVAL

        keys = [f"{k}_{m}m" for m in summary["milestones_months"]
                for k in (*SURVIVAL, *INCIDENCE)]
        return {"setting": "allo", "endpoint": summary["endpoint"],
                "arms": [{"name": a["name"], "n": a["n"], **{k: a[k] for k in keys},
                          "given_donor_cells": a["given_donor_cells"]}
                         for a in summary["arms"]],
                "hazard_ratio": summary["hazard_ratio"],
                "hazard_ratio_ci": summary["hazard_ratio_ci"],
                "logrank_p": summary["logrank_p"], "not_modelled": summary["not_modelled"]}
    keys = ("name", "n", "relapse_fraction", "rfs_1y", "rfs_2y", "rfs_3y", "rfs_4y",
            "median_rfs_months", "cure_fraction")
    return {"arms": [{k: a[k] for k in keys} for a in summary["arms"]],
            "hazard_ratio": summary["hazard_ratio"],
            "hazard_ratio_ci": summary["hazard_ratio_ci"],
            "logrank_p": summary["logrank_p"]}


@dataclass(frozen=True)
class TrialResult(JobResult):
    """Patients of every arm, the run manifest and the survival analysis.

    ``folder`` is where the runner already keeps ``patients.parquet``, ``manifest.json``
    and its chunks (None when run in memory); :meth:`write` adds what is missing.
    """

    spec: TrialSpec
    run: TrialRun
    analysis: dict[str, Any]
    folder: Path | None = None
    decision: DecisionResult | None = None

    @property
    def patients(self) -> pd.DataFrame:
        return self.run.patients

    def summary(self) -> dict[str, Any]:
        out = compact_summary(self.analysis)
        if self.decision is not None:
            d = self.decision.summary()
            out.update({k: d[k] for k in ("effect", "assurance", "assurance_n_per_arm",
                                          "mc_error", "source")})
        return jsonable(out)

    @property
    def allo(self) -> bool:
        """Whether this is a trial after allogeneic transplantation."""
        return getattr(self.spec, "setting", None) == "allo"

    def report_html(self) -> str:
        from ciksim.report.decision import decision_sections
        from ciksim.report.trial import trial_report

        if self.allo:
            from ciksim.report.allotrial import allo_trial_report

            return allo_trial_report(self.spec, self.run, self.analysis, self.decision)

        def sections(rep: Any) -> None:
            decision_sections(rep, self.decision, self.spec, self.patients)

        return trial_report(self.spec, self.run, self.analysis, sections)

    def stage(self, stage: Staging) -> None:
        from ciksim.report.plots import plot_trial

        if self.folder is None or stage.fmt != "parquet":  # the runner keeps the Parquet
            stage.table(self.patients, "patients")
        if self.folder is None:
            stage.json(self.run.manifest, "manifest")
        stage.json({**self.summary(), "details": jsonable(self.analysis)}, "summary")
        names = [a.name for a in self.spec.arms]
        if self.allo:
            from ciksim.report.allotrial import plot_allo_incidence, plot_allo_survival
            from ciksim.report.plots import pyplot

            for fig, name in ((plot_allo_survival(self.patients, names, "grfs"), "km"),
                              (plot_allo_incidence(self.patients, names), "incidence")):
                stage.figure(fig, name)
                pyplot().close(fig)
        else:
            stage.figure(plot_trial(self.patients, names)[0].figure, "km")
        if self.decision is not None:
            self.decision.stage(stage)


def trial_job(spec: str | Path | TrialSpec, *, n_per_arm: int | None = None,
              workers: int | None = None, scheduler: str | None = None,
              out: str | Path | None = None, resume: bool = False,
              chunk_size: int | None = None, progress: Progress | None = None,
              composition: dict[str, float] | None = None, seed: int | None = None,
              posterior: Any = None, prior: bool = False, draws: int | None = None,
              cohort: int | None = None, arms: str | None = None,
              product: ProductLots | None = None) -> TrialResult:
    """Run every arm of a trial specification (TOML file or TrialSpec), then the design
    over parameter draws (decision outputs; ``ciksim.jobs.decision.decision_job``).

    ``out``: folder the runner writes chunks into as they finish (so ``resume`` can continue
    an interrupted trial; the draws go to ``out/draws``); ``workers``: local processes (None
    = all cores); ``scheduler``: a Dask scheduler address instead; ``progress(done, total)``
    is called with patients done. ``seed`` overrides the spec's; ``posterior``/``prior``/
    ``draws`` (0: no decision outputs)/``cohort``/``arms`` as for ``decision_job``.
    """
    from ciksim.trial.analysis import summarize
    from ciksim.trial.runner import run_trial

    s = load_spec(spec, n_per_arm)
    if seed is not None:
        s = s.with_seed(seed)
    if resume and out is None:
        raise DataError("resume: needs the --out folder of the interrupted trial")
    run = run_trial(s, out=out, workers=workers, scheduler=scheduler, resume=resume,
                    chunk_size=chunk_size, progress=progress, composition=composition,
                    product=product)
    names = [a.name for a in s.arms]
    if getattr(s, "setting", None) == "allo":
        from ciksim.trial.alloanalysis import summarize_allo

        analysis = summarize_allo(run.patients, names, 12 * s.follow_up_years,
                                  s.analysis.endpoint, s.analysis.horizon_months)
    else:
        analysis = summarize(run.patients, names, 12 * s.follow_up_years)
    decision = None
    n_draws = s.posterior["draws"] if draws is None else draws
    if n_draws and len(s.arms) >= 2:
        from ciksim.jobs.decision import decision_job

        decision = decision_job(s, posterior=posterior, prior=prior, draws=n_draws,
                                cohort=cohort, arms=arms,
                                out=Path(out) / "draws" if out is not None else None,
                                resume=resume, workers=workers, scheduler=scheduler,
                                composition=product if product is not None else composition)
    return TrialResult(s, run, analysis, Path(out) if out is not None else None, decision)


@dataclass(frozen=True)
class PowerResult(JobResult):
    """Power of the log-rank test (treatment vs control) per sample size."""

    spec: TrialSpec
    table: pd.DataFrame
    repeats: int

    def summary(self) -> dict[str, Any]:
        return jsonable({"control": self.spec.arms[0].name,
                         "treatment": self.spec.arms[1].name,
                         "rows": self.table.to_dict("records")})

    def report_html(self) -> str:
        from ciksim.report.pages import power_report

        return power_report(self.spec, self.table, self.repeats)

    def stage(self, stage: Staging) -> None:
        from ciksim.report.plots import plot_power

        stage.table(self.table, "power")
        stage.figure(plot_power(self.table), "power")


def power_job(spec: str | Path | TrialSpec, *, sizes: list[int], repeats: int = 200,
              workers: int | None = None, scheduler: str | None = None,
              progress: Progress | None = None) -> PowerResult:
    """Simulate one pool of patients per arm and resample trials of each size ``repeats``
    times; power = share with log-rank p < 0.05 (first arm = control)."""
    from ciksim.trial.analysis import power_from_pool
    from ciksim.trial.runner import run_trial

    if not sizes or min(sizes) < 2:
        raise DataError("sizes: sample sizes must be >= 2 patients per arm")
    if repeats < 1:
        raise DataError("repeats: must be >= 1")
    s = load_spec(spec)
    if len(s.arms) < 2:
        raise DataError("trial power needs at least two arms (the first is the control)")
    pool = s.with_patients(max(sizes) * repeats)
    run = run_trial(pool, workers=workers, scheduler=scheduler, progress=progress)
    table = power_from_pool(run.patients, s.arms[0].name, s.arms[1].name, sorted(sizes),
                            repeats, endpoint=s.analysis.endpoint)
    return PowerResult(s, table, repeats)


@dataclass(frozen=True)
class ChainResult(JobResult):
    """Product (cultured or read), its killing check, and the trial run with it."""

    product: Product
    culture: CultureRun | None
    assays: dict[str, AssayRun]
    trial: TrialResult

    @property
    def killing_at_40(self) -> dict[str, float]:
        """% specific lysis at the first (highest) E:T ratio per target."""
        return {t: float(a.summary()["lysis_pct"].iloc[0]) for t, a in self.assays.items()}

    def summary(self) -> dict[str, Any]:
        return jsonable({"product": self.product.median_composition(),
                         "killing_at_40": self.killing_at_40, "trial": self.trial.summary()})

    def report_html(self) -> str:
        from ciksim.report.trial import chain_report

        return chain_report(self.trial.spec, self.trial.run, self.trial.analysis,
                            self.culture, self.assays, self.trial.decision)

    def stage(self, stage: Staging) -> None:
        from ciksim.report.plots import plot_culture, plot_lysis_curve

        if self.culture is not None:
            stage.figure(plot_culture([self.culture])[0], "culture")
        ax = None
        for t in ASSAY_TARGETS:
            ax = plot_lysis_curve(self.assays[t], ax=ax)
        stage.figure(ax, "killing")
        stage.json(self.summary(), "summary")

    def write(self, out: str | Path, fmt: str = "csv", figures: tuple[str, ...] = ("png",)
              ) -> list[str]:
        """The chain's files in ``out`` and the trial's own folder in ``out/trial``."""
        self.trial.write(Path(out) / "trial", fmt, figures)
        return super().write(out, fmt, figures)


#: What ``ciksim run`` does not do for an allo trial, and why (said and reported).
ALLO_SKIPPED = ("1. product: not cultured. The allo model doses donor cells (DLI, donor CIK) "
                "in CD3+ cells/kg and uses no composition of a cultured product, so a "
                "culture would not change the trial",
                "2. killing check: not run (a 4-h assay of a product the trial does not use)")


@dataclass(frozen=True)
class AlloChainResult(JobResult):
    """``ciksim run`` of an allo trial: the trial (with its decision outputs) and the steps
    of the autologous chain that do not apply, with the reason."""

    trial: TrialResult
    skipped: tuple[str, ...] = ALLO_SKIPPED

    def summary(self) -> dict[str, Any]:
        return jsonable({"setting": "allo", "skipped": list(self.skipped),
                         "trial": self.trial.summary()})

    def report_html(self) -> str:
        from ciksim.report.allotrial import allo_trial_report

        t = self.trial
        return allo_trial_report(t.spec, t.run, t.analysis, t.decision,
                                 preface=[f"{x}." for x in self.skipped])

    def stage(self, stage: Staging) -> None:
        stage.json(self.summary(), "summary")

    def write(self, out: str | Path, fmt: str = "csv", figures: tuple[str, ...] = ("png",)
              ) -> list[str]:
        """The report and summary in ``out`` and the trial's own folder in ``out/trial``."""
        self.trial.write(Path(out) / "trial", fmt, figures)
        return super().write(out, fmt, figures)


def chain_job(spec: str | Path | TrialSpec, *, out: str | Path, workers: int | None = None,
              scheduler: str | None = None, progress: Progress | None = None,
              on_step: Callable[[str], None] | None = None, n_per_arm: int | None = None,
              seed: int | None = None, resume: bool = False, posterior: Any = None,
              prior: bool = False, draws: int | None = None, cohort: int | None = None
              ) -> ChainResult | AlloChainResult:
    """Culture the spec's product (or read its folder), check it kills AML blasts but not
    normal PBMC, then run the trial in ``out/trial`` with its decision outputs (``resume``
    continues an interrupted one). An allo trial skips the culture and the killing check,
    saying why (``ALLO_SKIPPED``), and runs the trial. ``on_step(text)`` hears each step's headline;
    ``n_per_arm``, ``seed``, ``posterior``, ``prior``, ``draws`` and ``cohort`` as for
    ``trial_job``."""
    from ciksim.analysis.culture import run_culture
    from ciksim.analysis.killing import run_assay
    from ciksim.analysis.product import lots_from_culture
    from ciksim.trial.runner import product_lots

    s = load_spec(spec, n_per_arm)
    if seed is not None:
        s = s.with_seed(seed)
    say = on_step or (lambda text: None)
    if getattr(s, "setting", None) == "allo":
        for text in ALLO_SKIPPED:
            say(text)
        say(f"3. trial {s.name} (after allogeneic transplantation)")
        Path(out).mkdir(parents=True, exist_ok=True)
        return AlloChainResult(trial_job(s, out=Path(out) / "trial", workers=workers,
                                         scheduler=scheduler, resume=resume,
                                         progress=progress, posterior=posterior,
                                         prior=prior, draws=draws, cohort=cohort))
    culture = None
    if s.product_folder or s.product_release:
        lots = product_lots(s)
        say(f"1. product: {lots.lots} lots from {lots.source}")
    else:
        culture = run_culture(s.product_protocol, donors=s.product_donors, seed=s.seed,
                              days=21, donor=s.product_donor, start_cells=s.product_start_cells)
        lots = lots_from_culture(culture)
        h = culture.summary().iloc[-1]
        say(f"1. culture {s.product_protocol}, {s.product_donors} donors: day-21 fold "
            f"{h.total_fold:.0f} ({h.total_fold_p05:.0f}-{h.total_fold_p95:.0f}), "
            f"{h.cd3cd56_pct:.0f}% CD3+CD56+")
    product = lots.as_product()
    assays = {t: run_assay(product, t, et=ASSAY_ET, donors=product.donors, seed=s.seed)
              for t in ASSAY_TARGETS}
    at40 = {t: float(a.summary()["lysis_pct"].iloc[0]) for t, a in assays.items()}
    say(f"2. killing (4-h assay, E:T 40:1): {at40['aml-blast']:.0f}% of AML blasts, "
        f"{at40['normal-pbmc']:.1f}% of normal PBMC")
    say(f"3. trial {s.name}")
    Path(out).mkdir(parents=True, exist_ok=True)
    trial = trial_job(s, out=Path(out) / "trial", workers=workers, scheduler=scheduler,
                      resume=resume, progress=progress, product=lots, posterior=posterior,
                      prior=prior, draws=draws, cohort=cohort)
    return ChainResult(product, culture, assays, trial)


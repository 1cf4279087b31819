"""Killing jobs: a simulated cytotoxicity assay, and the analysis of real lysis data."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ciksim.errors import DataError
from ciksim.io import Staging
from ciksim.jobs.base import JobResult, jsonable

if TYPE_CHECKING:
    import pandas as pd

    from ciksim.analysis.killing import AssayRun
    from ciksim.assays.lysis import LysisAnalysis


def parse_ratios(text: str, name: str = "E:T ratios") -> list[float]:
    """Comma-separated E:T ratios (``"40,20,10"``) as numbers > 0; ``name`` labels errors."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DataError(f"{name}: {text!r} must be comma-separated numbers, e.g. 40,20,10"
                        ) from None
    if not values or any(not v > 0 for v in values):
        raise DataError(f"{name}: E:T ratios must be > 0, e.g. 40,20,10,5,2.5")
    return values


@dataclass(frozen=True)
class KillingResult(JobResult):
    """% specific lysis per E:T over simulated effector donors."""

    assay: AssayRun
    donors: int
    seed: int

    @property
    def table(self) -> pd.DataFrame:
        """One row per E:T: median, 5th and 95th percentile % specific lysis."""
        return self.assay.summary()

    def summary(self) -> dict[str, Any]:
        a = self.assay
        return jsonable({"effector": a.effector, "target": a.target, "hours": a.hours,
                         "block": a.block, "donors": self.donors, "seed": self.seed,
                         "rows": self.table.to_dict("records")})

    def report_html(self) -> str:
        from ciksim.report.pages import killing_report

        return killing_report(self.assay, self.donors, self.seed)

    def stage(self, stage: Staging) -> None:
        from ciksim.report.plots import plot_lysis_curve

        stage.table(self.table, "killing_curve")
        stage.figure(plot_lysis_curve(self.assay), "killing_curve")


def killing_job(effector: str | Path = "cik", target: str | Path = "k562", *,
                et: Sequence[float] = (40, 20, 10, 5, 2.5), hours: float = 4.0,
                block: str | None = None, donors: int = 200, seed: int = 0,
                progress: Callable[[int, int], None] | None = None) -> KillingResult:
    """Simulate a ``hours``-hour release assay of ``effector`` (cik, lak, nk, t or a culture
    folder) against ``target`` (built-in name or TOML file) at each E:T ratio.
    ``progress(done, total)``: simulated hours (the product's culture, then the assay)."""
    from ciksim.analysis.killing import run_assay

    assay = run_assay(effector, target, et=et, hours=hours, block=block, donors=donors,
                      seed=seed, progress=progress)
    return KillingResult(assay, assay.donors, seed)


@dataclass(frozen=True)
class LysisResult(JobResult):
    """% specific lysis, lytic units and killing-rate fits of a lysis plate."""

    analysis: LysisAnalysis
    targets_per_well: float
    hours: float

    def summary(self) -> dict[str, Any]:
        return jsonable(self.analysis.as_json())

    def report_html(self) -> str:
        from ciksim.report.pages import lysis_report

        return lysis_report(self.analysis, self.targets_per_well, self.hours)

    def stage(self, stage: Staging) -> None:
        from ciksim.assays.lysis import plot_lysis

        stage.table(self.analysis.groups, "lysis_groups")
        stage.table(self.analysis.lytic, "lytic_units")
        stage.table(self.analysis.fits, "killing_fits")
        stage.json(self.analysis.as_json(), "lysis")
        stage.figure(plot_lysis(self.analysis), "lysis")


def lysis_job(path: str | Path, *, targets_per_well: float = 1e4, hours: float = 4.0,
              origin: str | None = None) -> LysisResult:
    """Analyse a tidy lysis CSV (effector,target,et_ratio,kind,replicate,value).

    ``origin`` names the file in error messages (default: ``path``). Data warnings are in
    ``result.analysis.warnings`` rather than raised.
    """
    from ciksim.assays.lysis import AssayWarning, LysisData, analyse

    data = LysisData.read_csv(path, origin=origin)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AssayWarning)
        analysis = analyse(data, targets_per_well=targets_per_well, hours=hours)
    return LysisResult(analysis, targets_per_well, hours)

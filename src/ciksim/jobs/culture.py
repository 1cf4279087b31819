"""Culture jobs: simulate protocols over donors, compare them, plan a harvest."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ciksim.analysis.culture import (
    SUMMARY_UNITS,
    CultureRun,
    HarvestPlan,
    culture_days,
    plan_harvest,
    run_culture,
    time_progress,
)
from ciksim.errors import DataError
from ciksim.io import Staging
from ciksim.jobs.base import JobResult, jsonable
from ciksim.protocol import Protocol


def run_summary(run: CultureRun) -> dict[str, Any]:
    """One culture run as JSON: protocol, donors, seed, units, days and daily donor bands."""
    s = run.summary()
    return {
        "protocol": run.protocol.name,
        "donors": run.donors,
        "seed": run.seed,
        "units": SUMMARY_UNITS,
        "days": [float(d) for d in s["day"]],
        "rows": [{k: float(v) for k, v in r.items()} for _, r in s.iterrows()],
    }


@dataclass(frozen=True)
class CultureResult(JobResult):
    """One or several culture protocols simulated over the same donors."""

    runs: tuple[CultureRun, ...]

    def summary(self) -> dict[str, Any]:
        if len(self.runs) == 1:
            return jsonable(run_summary(self.runs[0]))
        return jsonable({"protocols": [run_summary(r) for r in self.runs]})

    def report_html(self) -> str:
        from ciksim.report.pages import culture_report

        return culture_report(self.runs)

    def stage(self, stage: Staging) -> None:
        import pandas as pd

        from ciksim.report.plots import plot_culture

        stage.table(pd.concat([r.summary().assign(protocol=r.protocol.name) for r in self.runs]),
                    "culture_summary")
        stage.table(pd.concat([r.donor_table() for r in self.runs]), "culture_donors")
        stage.json({"runs": [run_summary(r) for r in self.runs],
                    "ciksim_version": self.runs[0].result.meta["ciksim_version"]},
                   "culture_run")
        stage.figure(plot_culture(self.runs)[0], "culture")


def culture_job(protocols: Sequence[str], *, days: float | None = None, donors: int = 200,
                seed: int = 0, start_cells: float | None = None,
                donor: str = "healthy",
                progress: Callable[[int, int], None] | None = None) -> CultureResult:
    """Simulate each protocol (built-in name or TOML file) for ``donors`` donors.

    ``days``: days to simulate (default: each protocol's harvest day); ``start_cells``: PBMC
    seeded on day 0 (cells; default: the protocol's, else 1e8); ``donor``: the starting
    material (``healthy``, ``patient-post-chemo`` or a TOML file). The same seed gives every
    protocol the same donors. Every protocol is read before any is simulated.
    ``progress(done, total)`` counts culture days simulated over all protocols, as each
    protocol's batched solve advances (its donors are one vectorised solve with shared step
    control, so it is watched, not split: the numbers are the same with or without it).
    """
    if not protocols:
        raise DataError("protocols: give at least one culture protocol")
    protos = [p if isinstance(p, Protocol) else Protocol.load(p) for p in protocols]
    horizons = [culture_days(p, days) for p in protos]
    return CultureResult(tuple(
        run_culture(p, days=days, donors=donors, seed=seed, start_cells=start_cells,
                    donor=donor, progress=time_progress(progress, horizons, k))
        for k, p in enumerate(protos)))


@dataclass(frozen=True)
class HarvestPlanResult(JobResult):
    """The earliest harvest day for a treatment course and the PBMC to seed."""

    run: CultureRun
    plan: HarvestPlan
    dose: float
    per: str
    weight: float
    infusions: int

    def summary(self) -> dict[str, Any]:
        return jsonable({"protocol": self.run.protocol.name, **self.plan.as_dict()})

    def report_html(self) -> str:
        from ciksim.report.pages import harvest_plan_report

        course = (f"{self.dose:.3g} cells per {self.per} × {self.infusions} infusion(s)"
                  + (f", {self.weight:g} kg" if self.per == "kg" else ""))
        return harvest_plan_report(self.run, self.plan, course)

    def stage(self, stage: Staging) -> None:
        from ciksim.report.plots import plot_culture

        stage.json(self.summary(), "harvest_plan")
        stage.figure(plot_culture([self.run])[0], "culture")


def harvest_plan_job(protocol: str = "cik-standard", *, dose: float, per: str = "kg",
                     weight: float = 70.0, infusions: int = 1, cells: str = "cd3cd56",
                     days: float | None = None, donors: int = 200, seed: int = 0,
                     start_cells: float | None = None, donor: str = "healthy",
                     progress: Callable[[int, int], None] | None = None
                     ) -> HarvestPlanResult:
    """When a course of ``infusions`` × ``dose`` cells (per kg of ``weight`` or per infusion)
    is ready; ``cells``: count ``cd3cd56`` or ``cd3`` cells; ``donor``: starting material;
    ``progress(done, total)``: culture days simulated (as in :func:`culture_job`)."""
    proto = Protocol.load(protocol)
    run = run_culture(proto, days=days, donors=donors, seed=seed, start_cells=start_cells,
                      donor=donor, progress=time_progress(progress, [culture_days(proto, days)], 0))
    plan = plan_harvest(run, dose=dose, per=per, weight=weight, infusions=infusions,
                        cells=cells)
    return HarvestPlanResult(run, plan, dose, per, weight, infusions)

"""Allo patient job: virtual patients after allogeneic stem-cell transplantation.

Each patient's recipient leukemia (LIC, blasts, MRD), donor cells (alloreactive precursors
and activated T and CIK cells, the CIK product's effectors), host-tissue damage and GvHD
grade, and chimerism are simulated by the allo model (``ciksim.models.allo``); the
endpoints are the allo cohort table (``ciksim.analysis.allo``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ciksim.errors import DataError
from ciksim.io import Staging
from ciksim.jobs.base import JobResult, jsonable

if TYPE_CHECKING:
    from ciksim.analysis.allo import AlloCohort
    from ciksim.models.allo import AlloScenario

#: Events of the cohort table reported as shares in the summary.
_EVENTS = (("relapse_day", "relapse"), ("remission_day", "remission after relapse"),
           ("gvhd_any_day", "acute GvHD grade I-IV"), ("agvhd_day", "acute GvHD grade II-IV"),
           ("cgvhd_day", "chronic GvHD"), ("nrm_day", "non-relapse death"),
           ("death_day", "death (any cause)"))
_DOSE = re.compile(r"^\s*([^@\s]+)\s*@\s*([0-9.eE+\-]+(?:\s*,\s*[0-9.eE+\-]+)*)\s*$")


def is_allo_scenario(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` is a built-in allo scenario or a TOML file of one (it names
    a donor type)."""
    from ciksim.data import builtin_names

    if str(name_or_path) in builtin_names("allo"):
        return True
    path = Path(name_or_path)
    if path.suffix != ".toml" or not path.is_file():
        return False
    from ciksim.errors import CikError
    from ciksim.schemas.base import read_toml

    try:  # an unreadable file is not allo: the scenario reader reports why
        data = read_toml(path, what="scenario")
    except (OSError, CikError):
        return False
    return "donors" in data or "donor" in data


def dose_events(dose: str, specs: Sequence[str]) -> list[dict[str, Any]]:
    """Protocol events, one per day in time order, from ``AMOUNT@DAY[,DAY...]`` options
    (CD3+ cells/kg on days after the stem-cell infusion), e.g. ``1e7@60`` or
    ``5e7@60,90,120``."""
    events = []
    for spec in specs:
        m = _DOSE.match(spec)
        try:
            amount = float(m.group(1)) if m else math.nan
            days = [float(d) for d in m.group(2).split(",")] if m else []
        except ValueError:
            amount, days = math.nan, []
        if not days or not math.isfinite(amount) or amount <= 0 or any(
                not math.isfinite(d) or d < 0 for d in days):
            raise DataError(f"--{dose}: {spec!r} is not AMOUNT@DAY[,DAY...]; give CD3+ cells/kg "
                            f"and days after the stem-cell infusion, e.g. --{dose} 1e7@60 or "
                            f"--{dose} 5e7@60,90")
        events += [{"action": "dose", "dose": dose, "amount": amount, "day": d} for d in days]
    return sorted(events, key=lambda e: e["day"])


@dataclass(frozen=True)
class AlloPatientResult(JobResult):
    """Endpoint table of ``cohort.table`` (one row per patient) and, for one patient, the
    course of its leukemia, donor cells, tissue damage and chimerism."""

    scenario: AlloScenario
    cohort: AlloCohort

    def summary(self) -> dict[str, Any]:
        t = self.cohort.table
        return jsonable({
            "scenario": self.scenario.name, "donor": self.scenario.donor,
            "conditioning": self.scenario.conditioning, "patients": len(t),
            "seed": self.cohort.seed, "horizon_days": self.cohort.horizon_days,
            **{f"{col[:-4]}_fraction": self.cohort.share(col) for col, _ in _EVENTS},
            "cured_fraction": float(t["cured"].mean()),
            "median_peak_grade": float(t["peak_grade"].median()),
            "median_donor_chimerism": float(t["donor_chimerism"].median()),
        })

    def event_rows(self) -> list[tuple[str, float]]:
        """(label, share of patients) for each event by the horizon."""
        return [(label, self.cohort.share(col)) for col, label in _EVENTS]

    def report_html(self) -> str:
        from ciksim.report.allo import allo_patient_report

        return allo_patient_report(self)

    def stage(self, stage: Staging) -> None:
        from ciksim.report.allo import allo_patient_figure

        stage.table(self.cohort.table, "allo_patients")
        if self.cohort.courses is not None:
            stage.table(self.cohort.courses, "allo_course")
        stage.json({**self.summary(), "events": [
            {"action": e.action, "dose": e.dose, "amount": e.amount, "day": e.day}
            for e in self.scenario.protocol.events]}, "allo_summary")
        stage.figure(allo_patient_figure(self), "allo_patient")


def allo_patient_job(scenario: str | Path = "allo-aml-cr", *, donor: str | None = None,
                     conditioning: str | None = None, chimerism: float | None = None,
                     dli: Sequence[str] = (), cik: Sequence[str] = (), replicates: int = 1,
                     years: float = 2.0, seed: int = 0) -> AlloPatientResult:
    """Simulate ``replicates`` patients of an allo scenario for ``years`` after the
    stem-cell infusion. ``donor``, ``conditioning`` and ``chimerism`` (donor share of
    the marrow on day 0) choose the scenario's options; ``dli`` and ``cik`` add infusions
    given as ``AMOUNT@DAY[,DAY...]`` (CD3+ cells/kg) to the scenario's events. A single
    patient keeps its course (per step) for the table and figure."""
    from ciksim.analysis.allo import simulate_allo_cohort
    from ciksim.models.allo import AlloScenario
    from ciksim.schemas.options import check_count, check_horizon

    check_count("max_patients", replicates, field="replicates")
    check_horizon("max_years", years, field="years")
    scen = AlloScenario.load(scenario, donor=donor, conditioning=conditioning,
                             chimerism=chimerism)
    extra = sorted(dose_events("dli", dli) + dose_events("cik", cik), key=lambda e: e["day"])
    if extra:
        scen = scen.with_events(extra, origin="--dli/--cik")
    cohort = simulate_allo_cohort(scen, replicates, seed, horizon_days=years * 365.25,
                                  courses=replicates == 1)
    return AlloPatientResult(scen, cohort)

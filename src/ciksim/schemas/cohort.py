"""The cohort CSV: a user's own patients for calibration (``ciksim calibrate patient
--add-cohort FILE.csv --study TOML``), one row per patient.

Columns ``patient, arm, time_months, event`` and, optionally, MRD columns whose names start
with ``mrd`` (e.g. ``mrd_month_3``: a measured MRD level, a fraction >= 0, empty when not
measured; accepted and checked, not yet used by the survival likelihood). Any other column is
refused, so a misspelt column is never silently ignored.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

from pydantic import ConfigDict, model_validator

from ciksim.errors import DataError
from ciksim.schemas.base import Schema, limit
from ciksim.schemas.tables import number, read_table, text

EVENT_LABELS = ("relapse", "death", "censored")
#: optional extra columns of a cohort CSV start with this (MRD measurements)
MRD_PREFIX = "mrd"


class CohortRow(Schema):
    """One patient of a user's cohort: arm, follow-up (months since day 0 of the scenario,
    i.e. remission) and what ended it; optional MRD columns (``mrd...``, fractions >= 0)."""

    model_config = ConfigDict(extra="allow")
    extra_prefix: ClassVar[str] = MRD_PREFIX

    patient: text(required=True, max_length=100, what="give each patient a unique id")
    arm: text(required=True, max_length=100, what="name the patient's arm")
    time_months: number(ge=0, le=12 * limit("max_years"),
                        what="months since day 0 of the scenario (remission)")
    event: text(required=True, max_length=20, what=f"use one of {', '.join(EVENT_LABELS)}")

    @model_validator(mode="after")
    def _checked(self) -> CohortRow:
        if self.event.lower() not in EVENT_LABELS:
            raise ValueError(f"column event: unknown label {self.event!r}; use one of "
                             f"{', '.join(EVENT_LABELS)}")
        for name, value in (self.model_extra or {}).items():
            if not name.startswith(MRD_PREFIX):
                raise ValueError(f"column {name}: unknown column; use patient, arm, "
                                 f"time_months, event and MRD columns named {MRD_PREFIX}...")
            if value == "":
                continue
            try:
                x = float(value)
            except ValueError:
                raise ValueError(f"column {name}: {value!r} is not a number (an MRD level, a "
                                 "fraction >= 0, or empty)") from None
            if not math.isfinite(x) or x < 0:
                raise ValueError(f"column {name}: {value!r} must be a finite MRD level >= 0 "
                                 "(or empty)")
        return self


def read_cohort(path: str | Path, origin: str | None = None
                ) -> dict[str, list[tuple[float, str]]]:
    """A cohort CSV -> per arm, (time in months, event) rows; each patient once."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"cohort file {str(origin or p)!r} does not exist")
    arms: dict[str, list[tuple[float, str]]] = {}
    seen: dict[str, str] = {}
    for where, _, r in read_table(p, CohortRow, what="cohort", origin=origin):
        if r.patient in seen:
            raise DataError(f"{where}, column patient: repeated id {r.patient!r} (first at "
                            f"{seen[r.patient].rsplit(', ', 1)[-1]}); give each patient one "
                            "row with a unique id")
        seen[r.patient] = where
        arms.setdefault(r.arm, []).append((r.time_months, r.event.lower()))
    return arms

"""Validation job: every published target computed from the default models."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ciksim.io import Staging
from ciksim.jobs.base import JobResult, jsonable

if TYPE_CHECKING:
    from ciksim.targets.base import TargetCheck


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=float))


@dataclass(frozen=True)
class ValidationResult(JobResult):
    """The target checks (group, check) in targets.md order."""

    checks: tuple[tuple[str, TargetCheck], ...]
    report_name: ClassVar[str] = "validation.html"

    @property
    def failed(self) -> list[str]:
        return [c.id for _, c in self.checks if not c.passed]

    def summary(self) -> dict[str, Any]:
        return jsonable({"targets": [{"id": c.id, "value": _plain(c.value), "range": c.range,
                                      "pass": c.passed} for _, c in self.checks]})

    def report_html(self) -> str:
        from ciksim.report.validation import validation_report

        return validation_report([c for _, c in self.checks])

    def stage(self, stage: Staging) -> None:
        stage.json({"targets": [_plain(c.as_dict()) for _, c in self.checks]}, "validation")


def validation_job(on_group: Callable[[str], None] | None = None) -> ValidationResult:
    """Compute every target (C, K, P, T groups); ``on_group(name)`` hears each group start."""
    from ciksim.targets.registry import target_functions

    checks: list[tuple[str, TargetCheck]] = []
    for group, fn in target_functions():
        if on_group is not None:
            on_group(group)
        checks += [(group, c) for c in fn()]
    return ValidationResult(tuple(checks))

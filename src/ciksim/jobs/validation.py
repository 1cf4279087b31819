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


def validation_job(progress: Callable[[int, int, str], None] | None = None
                   ) -> ValidationResult:
    """Compute every target (C, K, P, T, A groups). ``progress(done, total, name)`` is told
    each target as it starts (``name``: its group and function) and once more at the end."""
    from ciksim.targets.registry import step_name, target_functions

    steps = [(group, step) for group, fn in target_functions() for step in fn()]
    checks: list[tuple[str, TargetCheck]] = []
    for k, (group, step) in enumerate(steps):
        if progress is not None:
            progress(k, len(steps), f"{group}: {step_name(step)}")
        checks.append((group, step()))
    if progress is not None:
        progress(len(steps), len(steps), "done")
    return ValidationResult(tuple(checks))

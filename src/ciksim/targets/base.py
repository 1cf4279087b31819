"""The result of checking one calibration target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TargetCheck:
    """A target's id, the model's statistic(s), the accepted range and whether it passes."""

    id: str
    description: str
    value: Any
    range: str
    passed: bool
    source: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "value": self.value, "range": self.range, "pass": self.passed,
                "description": self.description, "source": self.source}


def within(x: float, low: float, high: float) -> bool:
    return bool(low <= x <= high)

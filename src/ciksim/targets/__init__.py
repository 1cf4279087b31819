"""Calibration targets (ids of shared/reference/targets.md), each computed from the model.

Tests and reports call the same functions, so a target is implemented exactly once.
"""

from ciksim.targets.base import TargetCheck

__all__ = ["TargetCheck"]

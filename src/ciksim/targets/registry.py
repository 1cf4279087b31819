"""Every calibration target of the default models, in targets.md order."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ciksim.targets.base import TargetCheck


def target_functions() -> list[tuple[str, Callable[[], list[Callable[[], TargetCheck]]]]]:
    """(group, function returning that group's targets, each a function computing its
    check)."""
    from ciksim.targets.allo_calibrated import all_allo_calibrated_targets
    from ciksim.targets.culture import all_culture_targets
    from ciksim.targets.evidence import all_evidence_targets
    from ciksim.targets.killing import all_killing_targets
    from ciksim.targets.patient import all_patient_targets
    from ciksim.targets.product import all_product_targets
    from ciksim.targets.trial import all_trial_targets

    return [("culture", all_culture_targets), ("product", all_product_targets),
            ("killing", all_killing_targets),
            ("patient", all_patient_targets), ("trial", all_trial_targets),
            ("evidence", all_evidence_targets),
            ("allo (calibrated)", all_allo_calibrated_targets)]


def all_targets() -> list[TargetCheck]:
    return [step() for _, fn in target_functions() for step in fn()]


def step_name(step: Callable[[], TargetCheck]) -> str:
    """A target function's name for progress, with the arguments it is bound to:
    ``c3_fold_day21(cik-standard)``."""
    if isinstance(step, partial):
        return f"{step_name(step.func)}({', '.join(map(str, step.args))})"
    return getattr(step, "__name__", repr(step))

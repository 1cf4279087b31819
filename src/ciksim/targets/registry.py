"""Every calibration target of the default models, in targets.md order."""

from __future__ import annotations

from collections.abc import Callable

from ciksim.targets.base import TargetCheck


def target_functions() -> list[tuple[str, Callable[[], list[TargetCheck]]]]:
    """(group, function returning that group's checks)."""
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
    out: list[TargetCheck] = []
    for _, fn in target_functions():
        out += fn()
    return out

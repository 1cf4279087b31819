"""Each page's inputs gathered into a job of the application layer: (job name, inputs).

Numbers are checked here only for being given; everything else is the job's own validation
(the same as the CLI's). Uploaded files are passed by their kept path in the session folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ciksim.errors import DataError
from ciksim.web.trialform import number

#: An upload slot's kept file: (path in the session folder, the user's file name).
Upload = tuple[Path, str]


def _culture(i: Any) -> dict[str, Any]:
    return {"days": number(i.cu_days(), "days", optional=True),
            "donors": number(i.cu_donors(), "donors", whole=True),
            "seed": number(i.cu_seed(), "seed", whole=True),
            "start_cells": number(i.cu_start_cells(), "start_cells")}


def gather(key: str, i: Any, upload: Callable[[str], Upload | None],
           trial_spec: Callable[[], Path]) -> tuple[str, dict[str, Any]]:
    """The job of page slot ``key`` and its inputs; ``upload(slot)`` gives a kept upload
    (None: none), ``trial_spec()`` the trial form's spec written to the session folder."""

    def need(slot: str, what: str) -> Upload:
        got = upload(slot)
        if got is None:
            raise DataError(f"upload {what} first")
        return got

    if key == "cu":
        if not i.cu_protocols():
            raise DataError("protocols: choose at least one")
        return "culture", {"protocols": list(i.cu_protocols()), **_culture(i)}
    if key == "pl":
        return "harvest-plan", {
            "protocol": (list(i.cu_protocols()) or ["cik-standard"])[0],
            "dose": number(i.pl_dose(), "dose"), "per": i.pl_per(),
            "weight": number(i.pl_weight(), "weight"),
            "infusions": number(i.pl_infusions(), "infusions", whole=True),
            "cells": i.pl_cells(), **_culture(i)}
    if key == "ki":
        from ciksim.jobs.killing import parse_ratios

        return "killing", {
            "effector": i.ki_effector(), "target": i.ki_target(),
            "et": parse_ratios(i.ki_et()), "hours": number(i.ki_hours(), "hours"),
            "block": i.ki_block() or None,
            "donors": number(i.ki_donors(), "donors", whole=True),
            "seed": number(i.ki_seed(), "seed", whole=True)}
    if key == "ly":
        path, name = need("ly", "a plate CSV")
        return "lysis", {
            "path": str(path), "origin": name,
            "targets_per_well": number(i.ly_targets_per_well(), "targets per well"),
            "hours": number(i.ly_hours(), "hours")}
    if key == "fi":
        path, name = need("fi", "a counts CSV")
        return "fit-culture", {
            "path": str(path), "origin": name, "protocol": i.fi_protocol(),
            "dose": number(i.fi_dose(), "dose", optional=True), "cells": i.fi_cells(),
            "steps": number(i.fi_steps(), "steps", whole=True),
            "walkers": number(i.fi_walkers(), "walkers", whole=True),
            "seed": number(i.fi_seed(), "seed", whole=True)}
    if key == "pa":
        return "patient", {
            "scenario": i.pa_scenario(), "subtype": i.pa_subtype() or None,
            "cik": bool(i.pa_cik()), "cik_dose": number(i.pa_cik_dose(), "cik dose"),
            "infusions": number(i.pa_infusions(), "infusions", whole=True),
            "interval": number(i.pa_interval(), "interval"),
            "first_infusion_day": number(i.pa_first_infusion_day(), "first infusion day"),
            "replicates": number(i.pa_replicates(), "patients", whole=True),
            "years": number(i.pa_years(), "years"), "relapse": i.pa_relapse(),
            "seed": number(i.pa_seed(), "seed", whole=True)}
    if key == "tr":
        return "trial", {"spec": str(trial_spec()), "workers": 1}
    if key == "ca":
        allo = i.ca_model() == "allo"
        inputs: dict[str, Any] = {
            "particles": number(i.ca_particles(), "particles", whole=True),
            "generations": number(i.ca_generations(), "generations", whole=True),
            "ppc_draws": number(i.ca_ppc_draws(), "predictive-check study sets", whole=True),
            "seed": number(i.ca_seed(), "seed", whole=True), "workers": 1}
        if i.ca_evidence() == "upload":
            inputs["evidence"] = str(need("ev", "an evidence TOML (or choose the shipped "
                                          "evidence)")[0])
        cohort, study = upload("co"), upload("st")
        if allo and (cohort is not None or study is not None):
            raise DataError("a cohort CSV and its study TOML add to the patient calibration; "
                            "choose the patient model, or put allo studies in an evidence "
                            "TOML")
        if (cohort is None) != (study is None):
            raise DataError("add-cohort and study go together: upload the cohort CSV (the "
                            "patients) and the study TOML (its design)")
        if cohort is not None and study is not None:
            from ciksim.evidence import cohort_study

            cohort_study(cohort[0], study[0])
            inputs.update(add_cohort=str(cohort[0]), study=str(study[0]))
        return ("allo-calibration" if allo else "calibration"), inputs
    if key == "po":
        return "posterior", {"model": i.ca_model()}
    if key == "al":
        doses = {}
        for kind in ("dli", "cik"):
            days = (i[f"al_{kind}_days"]() or "").strip()
            if days:
                dose = number(i[f"al_{kind}_dose"](), f"{kind} dose")
                doses[kind] = [f"{dose:g}@{days}"]
        return "allo-patient", {
            "scenario": i.al_scenario(), "donor": i.al_donor(),
            "conditioning": i.al_conditioning(),
            "chimerism": number(i.al_chimerism(), "chimerism", optional=True), **doses,
            "replicates": number(i.al_replicates(), "patients", whole=True),
            "years": number(i.al_years(), "years"),
            "seed": number(i.al_seed(), "seed", whole=True)}
    raise DataError(f"page slot {key!r} has no job")

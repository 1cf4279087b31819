"""The allo evidence records (:mod:`ciksim.evidence.allo`): study, population, endpoint,
arm, dose level and trigger schemas, validated by pydantic like the patient evidence
(:mod:`ciksim.evidence.studies`) and checked against the allo model before any
simulation."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from ciksim.errors import CikError, DataError
from ciksim.evidence.studies import (
    STRICT,
    Design,
    Evidence,
    Positive,
    Setting,
    Study,
    check_design_arms,
    read_evidence_toml,
    validate_strictly,
)
from ciksim.models.allo import donor_course

#: Endpoints the allo model computes, counted from each patient's first infusion.
ALLO_ENDPOINTS = {
    "gvhd": "patients with GvHD (acute of any grade, or chronic) beginning or reaching grade "
            "II-IV within `at_months` of the first infusion, among the eligible",
    "agvhd": "patients with acute GvHD of any grade beginning or reaching grade II-IV within "
             "`at_months` of the first infusion, among the eligible",
    "cr": "patients back below the relapse threshold within `at_months` of the first "
          "infusion, among those in overt relapse when it is given",
    "os": "patients alive `at_months` after the first infusion",
    "relapse-rate": "relapses per 100 patient-years at risk from `from_months` to "
                    "`at_months`, among patients alive and relapse-free at `from_months`",
}
#: Endpoints whose summary is a proportion (the others: a rate per 100 patient-years).
PROPORTIONS = ("gvhd", "agvhd", "cr", "os")
#: What withholds an arm's later infusions (``stop``), from the first one on or after it.
STOPS = {"significant-gvhd": "acute GvHD grade II-IV or chronic GvHD (clinical practice; "
                             "the trial layer's rule)",
         "gvhd": "GvHD of any grade",
         "response": "after a relapse, the blast fraction back below the relapse threshold"}
REFERENCE_SCENARIO = "allo-aml-cr"
SHIPPED_EVIDENCE = ("evidence", "allo.toml")
MAX_SIMULATED = 1 << 13  # simulated recipients per arm and draw (n × screen)
# Bit fields of a recipient's stream index: draw key | study (7 bits) | arm (2) | recipient (13).
ARM_SHIFT = 13
STUDY_SHIFT = ARM_SHIFT + 2
KEY_SHIFT = STUDY_SHIFT + 7
MAX_STUDIES = 1 << (KEY_SHIFT - STUDY_SHIFT)


class AlloPopulation(BaseModel):
    """An allo scenario with its donor and conditioning options and parameter medians;
    a landmark, if the study had one: only recipients alive on ``alive_on_day`` and not
    relapsed by ``relapse_free_on_day`` (days after the stem-cell infusion) are eligible."""

    model_config = STRICT
    scenario: str = REFERENCE_SCENARIO
    donor: str | None = None
    conditioning: str | None = None
    parameters: dict[str, Annotated[float, Field(allow_inf_nan=False)]] = Field(
        default_factory=dict)
    alive_on_day: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    relapse_free_on_day: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class AlloEndpoint(BaseModel):
    """What was counted, within ``at_months`` of each patient's first infusion (a rate:
    from ``from_months`` to ``at_months``)."""

    model_config = STRICT
    kind: str
    at_months: Positive
    from_months: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0

    @model_validator(mode="after")
    def _known(self) -> AlloEndpoint:
        if self.kind not in ALLO_ENDPOINTS:
            raise ValueError(f"kind {self.kind!r} is not an endpoint the allo model can "
                             f"compute; use one of {', '.join(ALLO_ENDPOINTS)}")
        if self.kind in PROPORTIONS and self.from_months:
            raise ValueError(f"from_months belongs to relapse-rate endpoints; {self.kind} is "
                             "counted from the first infusion")
        if not self.from_months < self.at_months:
            raise ValueError(f"from_months = {self.from_months:g} must be below at_months = "
                             f"{self.at_months:g}")
        return self


class AlloLevel(BaseModel):
    """A dose level of an arm: ``n`` of the arm's patients get ``dose_per_kg`` per
    infusion (the arm's schedule); the arm reports its events over all levels."""

    model_config = STRICT
    dose_per_kg: Positive
    n: int = Field(ge=1)


class AlloTrigger(BaseModel):
    """When an arm's first infusion is given: the first monitoring day on which ``watch``
    (a derived quantity of the allo model, e.g. ``mrd`` or ``blast_fraction``) is at or
    above ``above`` (or at or below ``below``); ``monitor`` as in a protocol's
    ``[[triggers]]`` (``{first, every, last}`` or ``{days = [...]}``, days after the
    stem-cell infusion). The arm's doses follow at the trigger day plus ``k ×
    interval_days``."""

    model_config = STRICT
    name: str = Field(min_length=1, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")
    watch: str = Field(min_length=1)
    above: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    below: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    monitor: dict[str, Any]

    @model_validator(mode="after")
    def _one(self) -> AlloTrigger:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"give exactly one of above or below (the threshold of "
                             f"{self.watch!r})")
        if self.name in ("relapse", "remission", "death", "nrm", "gvhd_any", "agvhd",
                         "cgvhd"):
            raise ValueError(f"name {self.name!r} would clash with the cohort column "
                             f"{self.name}_day; use e.g. 'at-relapse'")
        return self

    @property
    def last_day(self) -> float:
        """The last monitoring day (the latest a first infusion can be)."""
        days = self.monitor.get("days")
        if isinstance(days, list) and days:
            return float(max(days))
        last = self.monitor.get("last")
        return float(last) if isinstance(last, (int, float)) else 0.0

    def as_protocol(self, doses: Sequence[tuple[float, str, float]]) -> dict[str, Any]:
        """The ``[[triggers]]`` table giving ``doses`` (offset in days, the model's dose
        name, amount) from the day it fires."""
        side = "above" if self.above is not None else "below"
        return {"name": self.name, "watch": self.watch, side: getattr(self, side),
                "monitor": dict(self.monitor),
                "doses": [{"offset": offset, "dose": dose, "amount": amount}
                          for offset, dose, amount in doses]}


class AlloArm(BaseModel):
    """One arm: donor cells (``dli`` or ``cik``, CD3+ cells/kg; ``none`` for a control arm,
    counted from ``first_day`` or, monitoring only, from the day ``trigger`` fires)
    on a schedule starting on ``first_day`` or when ``trigger`` fires, ``n`` patients,
    ``events`` observed (a relapse-rate endpoint: ``rate_per_100py``). ``levels`` splits
    the arm's patients over dose levels; ``stop`` withholds the later infusions of a
    patient (:data:`STOPS`); ``in_remission``: only recipients not in overt relapse at the
    first infusion are eligible (pre-emptive donor cells, given in the absence of
    relapse); ``immunosuppression = "withdrawn"``: the recipient's immunosuppression is
    stopped on the day of the first infusion (practice at a relapse: the prophylaxis is
    withdrawn before donor cells are given), ``"kept"``: it runs its scenario's course."""

    model_config = STRICT
    name: str = Field(min_length=1)
    n: int = Field(ge=1)
    events: int | None = Field(default=None, ge=0)
    rate_per_100py: Positive | None = None
    cells: Literal["dli", "cik", "none"]
    dose_per_kg: Positive | None = None
    infusions: int | None = Field(default=None, ge=1)
    doses_per_kg: tuple[Positive, ...] | None = Field(default=None, min_length=1)
    levels: tuple[AlloLevel, ...] | None = Field(default=None, min_length=2, max_length=3)
    interval_days: Positive | None = None
    first_day: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    trigger: AlloTrigger | None = None
    stop: tuple[Literal["significant-gvhd", "gvhd", "response"], ...] = ("significant-gvhd",)
    screen: int = Field(default=1, ge=1)
    in_remission: bool = False
    immunosuppression: Literal["kept", "withdrawn"] = "kept"

    @property
    def doses(self) -> tuple[float, ...]:
        """CD3+ cells/kg of each infusion, in order (of the first level; none for a
        control arm)."""
        if self.cells == "none":
            return ()
        if self.doses_per_kg is not None:
            return self.doses_per_kg
        first = self.levels[0].dose_per_kg if self.levels else self.dose_per_kg
        return (float(first),) * int(self.infusions)

    def level_arms(self) -> tuple[AlloArm, ...]:
        """One arm per dose level (the arm itself without levels)."""
        if not self.levels:
            return (self,)
        return tuple(self.model_copy(update={"levels": None, "dose_per_kg": lv.dose_per_kg,
                                             "n": lv.n}) for lv in self.levels)

    @model_validator(mode="after")
    def _consistent(self) -> AlloArm:
        given = [f for f in ("dose_per_kg", "doses_per_kg", "levels")
                 if getattr(self, f) is not None]
        if self.cells == "none":
            if given or self.infusions is not None:
                raise ValueError("cells = 'none' (a control arm) takes no doses or infusions; "
                                 "give first_day = 0 (counted from the transplant) or a "
                                 "trigger (counted from the day monitoring finds it)")
        elif len(given) != 1:
            raise ValueError("give dose_per_kg with infusions (equal doses), doses_per_kg "
                             "= [...] (one CD3+ dose per infusion, e.g. escalating) or levels "
                             "= [{dose_per_kg, n}, ...] with infusions (dose levels)")
        if self.cells != "none" and self.doses_per_kg is None and self.infusions is None:
            raise ValueError("dose_per_kg and levels need infusions (the number of equal "
                             "doses)")
        if self.doses_per_kg is not None and self.infusions is not None:
            raise ValueError("infusions goes with dose_per_kg; doses_per_kg lists every "
                             "infusion already")
        if self.levels and sum(lv.n for lv in self.levels) != self.n:
            raise ValueError(f"the levels' n add up to {sum(lv.n for lv in self.levels)}, "
                             f"not the arm's n = {self.n}")
        if len(self.doses) > 1 and self.interval_days is None:
            raise ValueError("more than one infusion needs interval_days (days between them)")
        if (self.first_day is None) == (self.trigger is None):
            raise ValueError("give exactly one of first_day (days after the stem-cell "
                             "infusion) or trigger (monitoring that starts the infusions)")
        if (self.events is None) == (self.rate_per_100py is None):
            raise ValueError("give events (patients with the endpoint) or, for a "
                             "relapse-rate endpoint, rate_per_100py")
        if self.events is not None and self.events > self.n:
            raise ValueError(f"events = {self.events} is above n = {self.n}; give the "
                             "number of patients with the endpoint (0..n)")
        if self.in_remission and self.trigger is None:
            raise ValueError("in_remission = true belongs to a triggered (pre-emptive) arm; "
                             "give a trigger or drop in_remission")
        if self.n * self.screen > MAX_SIMULATED:
            raise ValueError(f"n x screen = {self.n * self.screen} simulated recipients; at "
                             f"most {MAX_SIMULATED}")
        return self


class AlloStudy(Study):
    """A study after allo-HSCT (setting ``donor-after-allo-hsct``): the study record of
    :class:`~ciksim.evidence.studies.Study` with an allo population, allo endpoints and
    up to three arms of donor cells (e.g. dose groups). ``prediction`` marks a record kept
    out of the fit whose result the A-target checks compute as a prediction."""

    population: AlloPopulation = Field(default_factory=AlloPopulation)
    endpoint: AlloEndpoint
    arms: tuple[AlloArm, ...] = Field(min_length=1, max_length=3)
    prediction: bool = False
    bias: bool = True

    @property
    def bias_term(self) -> bool:
        """Non-randomised designs get a bias term, unless ``bias = false``: a cohort of the
        reference scenario's own population (e.g. the control-arm relapse hazard, A6),
        which the scenario is meant to describe."""
        return self.bias and self.design is not Design.randomised

    @model_validator(mode="after")
    def _shape(self) -> AlloStudy:
        if self.setting is not Setting.donor_after_allo_hsct:
            raise ValueError("an allo study has setting = 'donor-after-allo-hsct'")
        if not self.use and not self.reason:
            raise ValueError("a study kept out of the fit (use = false) needs a reason")
        if self.prediction and self.use:
            raise ValueError("prediction = true marks a record kept out of the fit (use = "
                             "false) whose result the model must predict")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must differ, got {names}")
        if sum(len(a.level_arms()) for a in self.arms) > 1 << (STUDY_SHIFT - ARM_SHIFT):
            raise ValueError("at most 4 simulated arms (arms x dose levels) per study")
        rate = self.endpoint.kind not in PROPORTIONS
        if any((a.rate_per_100py is not None) != rate for a in self.arms):
            raise ValueError(f"endpoint {self.endpoint.kind}: every arm gives "
                             f"{'rate_per_100py' if rate else 'events'}")
        if rate and (self.bias_term or len(self.arms) > 1):
            raise ValueError("a relapse-rate endpoint takes one arm and no bias term (bias = "
                             "false): rates are not shifted by study terms")
        if not self.bias and not self.notes:
            raise ValueError("bias = false (no design bias term) needs notes saying why")
        check_design_arms(self.design, len(self.arms))
        return self


class AlloEvidence(Evidence):
    """A versioned set of allo studies."""

    studies: tuple[AlloStudy, ...] = Field(min_length=1, max_length=MAX_STUDIES)


def parse_allo_evidence(data: Mapping[str, Any], *, origin: str = "allo evidence"
                        ) -> AlloEvidence:
    """Validate parsed TOML as allo evidence (strictly, see
    :func:`ciksim.evidence.studies.validate_strictly`), and the used studies against the
    allo model."""
    evidence = validate_strictly(AlloEvidence, data, origin)
    for study in evidence.used:
        study_scenario(study, origin)
    return evidence


def load_allo_evidence(path: str | Path | None = None) -> AlloEvidence:
    """The shipped allo evidence (``path`` None) or an allo evidence TOML file."""
    data, origin = read_evidence_toml(path, SHIPPED_EVIDENCE[1], "shipped allo evidence")
    return parse_allo_evidence(data, origin=origin)


def _schedule(arm: AlloArm, doses: Sequence[float] | None = None
              ) -> dict[str, list[dict[str, Any]]]:
    """The arm's infusions (or the first ones, ``doses``) as scenario ``events`` (fixed
    days) or ``triggers``."""
    step = float(arm.interval_days or 0.0)
    doses = arm.doses if doses is None else tuple(doses)
    given = donor_course([(k * step, arm.cells, float(d)) for k, d in enumerate(doses)],
                         arm.immunosuppression == "withdrawn")
    if arm.trigger is not None:
        return {"events": [], "triggers": [arm.trigger.as_protocol(given)]}
    return {"events": [{"day": float(arm.first_day) + offset, "action": "dose",
                        "dose": dose, "amount": amount} for offset, dose, amount in given]}


def study_scenario(study: AlloStudy, origin: str, arm: AlloArm | None = None,
              doses: Sequence[float] | None = None) -> Any:
    """The study's allo scenario (with ``arm``'s infusions, or its first ``doses``), errors
    naming the field."""
    from ciksim.models.allo import AlloScenario, allo_model

    where = f"{origin}: study {study.id!r}"
    pop = study.population
    names = allo_model().parameter_by_name
    for key, value in pop.parameters.items():
        if key not in names:
            raise DataError(f"{where}: field population.parameters.{key}: not an allo-model "
                            "parameter; see docs/models/allo.md")
        p = names[key]
        if not p.low <= value <= p.high:
            raise DataError(f"{where}: field population.parameters.{key}: {value:g} is "
                            f"outside its declared range [{p.low:g}, {p.high:g}]")
    arms = [arm] if arm is not None else [lv for a in study.arms for lv in a.level_arms()]
    scen = None
    for i, a in enumerate(arms):
        try:
            scen = AlloScenario.load(pop.scenario, donor=pop.donor,
                                     conditioning=pop.conditioning, **_schedule(a, doses))
        except CikError as exc:
            text = str(exc)
            field = f"arms[{i}]" if "events" in text or "trigger" in text else "population"
            raise DataError(f"{where}: field {field}: {exc}") from None
    if pop.parameters:
        scen = dataclasses.replace(scen, parameters={**scen.parameters, **pop.parameters})
    return scen

"""Trials in the allogeneic setting: a trial spec whose population is an allo scenario.

A spec whose ``[population] scenario`` names an allo scenario (``allo-aml-cr``; see
``docs/models/allo.md``) is an :class:`AlloTrialSpec`: the patients are simulated by
:func:`ciksim.analysis.allo.simulate_allo_cohort` from the stem-cell infusion (day 0), and
each arm gives donor cells (DLI or donor CIK, dosed in CD3+ cells/kg) on fixed days or when
a monitored quantity (``mrd``, ``donor_chimerism``) crosses a threshold. An arm is written
either with the ``donor_cells`` shorthand::

    [[arms]]
    name = "pre-emptive donor CIK"
    donor_cells = { cells = "cik", dose_per_kg = 1e7, infusions = 3, interval_days = 28,
                    escalation = 5,
                    when = { watch = "mrd", above = 1e-4,
                             monitor = { first = 30, every = 30, last = 720 } } }

(``first_day = 90`` instead of ``when`` gives a fixed schedule; ``escalation`` multiplies
each successive dose, 1 = the same dose each time; ``immunosuppression = "kept"`` keeps
the recipient's prophylaxis, which is otherwise withdrawn on the day of the first
infusion) or with protocol ``[[arms.events]]`` and ``[[arms.triggers]]`` tables, whose
format is the protocol's (``ciksim.protocol``). The shorthand expands into exactly those
events and triggers (the withdrawal is the model's ``is_withdrawal`` dose).

Bad input (an unknown donor type or conditioning, chimerism outside (0, 1], a trigger
without a monitoring schedule, a donor-cell dose before engraftment) is a ``DataError``
naming the field and the fix, raised when the spec is read: before any work or file.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ciksim.errors import CikError, DataError
from ciksim.models.allo import donor_course
from ciksim.schemas.base import Name, Schema, Text, limit, limited
from ciksim.schemas.protocol import EventSchema, MonitorSchema, TriggerSchema
from ciksim.trial.estimands import Analysis

#: Donor-cell doses an arm can give (doses of the allo model, CD3+ cells per kg).
DONOR_CELLS = {"dli": "donor lymphocyte infusion", "cik": "donor CIK cells"}
#: Acute GvHD grades that end GRFS, and the per-patient column of their onset.
GRFS_AGVHD = {"III-IV": "agvhd34_day", "II-IV": "agvhd_day"}
#: Primary endpoints an allo trial can be analysed on.
ALLO_ENDPOINTS = ("grfs", "rfs", "os")
#: Defaults of an allo trial's ``[posterior]`` table: a modest number of draws (each draw
#: simulates ``cohort`` patients per arm with the slower allo model).
ALLO_POSTERIOR_DEFAULTS: dict[str, Any] = {"source": "shipped", "draws": 20, "cohort": 200}
#: Delivery of donor cells: always as planned (documented in reports).
DELIVERY_NOTE = ("donor cells are given as planned: no manufacturing failure or "
                 "non-infusion is modelled for donor-cell arms")


def allo_scenarios() -> list[str]:
    """Names of the built-in allo scenarios (``ciksim/data/allo``)."""
    from ciksim.data import builtin_names

    return builtin_names("allo")


def is_allo(data: Mapping[str, Any]) -> bool:
    """Whether parsed trial TOML has an allo population (its scenario is an allo one)."""
    pop = data.get("population") if isinstance(data, Mapping) else None
    return isinstance(pop, Mapping) and isinstance(pop.get("scenario"), str) \
        and pop["scenario"] in allo_scenarios()


# ---- schema ---------------------------------------------------------------------------------
Day = limited("max_protocol_day", ge=0)
Positive = Annotated[float, Field(gt=0)]


class WhenSchema(Schema):
    """When triggered donor cells start: the watched quantity is at or ``above`` (or at or
    ``below``) the threshold on a monitoring day (the protocol trigger's fields; the
    doses are the arm's ``donor_cells``)."""

    name: Name | None = None
    watch: Name
    above: float | None = None
    below: float | None = None
    monitor: MonitorSchema | None = Field(None, description="monitoring schedule; required")

    @model_validator(mode="after")
    def _one_side(self) -> WhenSchema:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of above or below")
        if self.monitor is None:
            raise ValueError("monitor: a trigger needs a monitoring schedule; add monitor = "
                             "{ first = 30, every = 30, last = 720 } (days) or monitor = "
                             "{ days = [...] }")
        return self


class DonorCellsSchema(Schema):
    """Donor cells of an arm: ``cells`` (dli or cik), the first dose (CD3+ cells/kg),
    number of infusions, days between them, dose escalation factor, and when they start
    (``first_day`` or ``when``)."""

    cells: Literal["dli", "cik"]
    dose_per_kg: Annotated[float, Field(gt=0, le=1e10, description="CD3+ cells per kg of the "
                                        "first infusion")]
    infusions: Annotated[int, Field(ge=1, le=100)] = 1
    interval_days: Annotated[float, Field(gt=0, le=3650)] = 28.0
    escalation: Annotated[float, Field(ge=1, le=100, description="factor between "
                                       "successive doses (1: the same dose each time)")] = 1.0
    first_day: Day | None = None
    when: WhenSchema | None = None
    immunosuppression: Annotated[Literal["withdrawn", "kept"], Field(
        description="the recipient's immunosuppression on the day of the first infusion: "
                    "withdrawn (practice before donor cells, as in the allo calibration "
                    "evidence) or kept")] = "withdrawn"

    @model_validator(mode="after")
    def _start(self) -> DonorCellsSchema:
        if (self.first_day is None) == (self.when is None):
            raise ValueError("give exactly one of first_day (a fixed schedule) or when (a "
                             "triggered one)")
        return self

    def doses(self) -> list[tuple[float, str, float]]:
        """(offset from the first infusion in days, the model's dose, amount) per dose: the
        withdrawal of immunosuppression (if ``withdrawn``), then each infusion (CD3+
        cells/kg)."""
        return donor_course([(k * self.interval_days, self.cells,
                              self.dose_per_kg * self.escalation ** k)
                             for k in range(self.infusions)],
                            self.immunosuppression == "withdrawn")


class AlloArmSchema(Schema):
    """An allo trial arm: ``donor_cells`` (shorthand), protocol ``events`` (fixed days) and
    protocol ``triggers``; none of them: the transplant alone."""

    name: Name | None = None
    description: Text = ""
    donor_cells: DonorCellsSchema | None = None
    events: Annotated[list[EventSchema], Field(max_length=int(limit("max_events")))] | None \
        = None
    triggers: Annotated[list[TriggerSchema], Field(max_length=50)] | None = None


class AlloPosteriorSchema(Schema):
    """The trial over parameter draws (see the trial spec's ``[posterior]``)."""

    source: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    draws: limited("max_draws", int, ge=0) | None = None
    cohort: limited("max_patients", int, ge=20) | None = None
    n_per_arm: limited("max_patients", int, ge=1) | None = None


class AlloAnalysisSchema(Schema):
    """The planned primary analysis of an allo trial."""

    endpoint: Literal["grfs", "rfs", "os"] = "grfs"
    test: Literal["logrank", "cox", "rmst", "milestone"] = "logrank"
    horizon_months: Annotated[float, Field(gt=0, le=12 * limit("max_years"))] = 24.0
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.05
    grfs_agvhd: Literal["III-IV", "II-IV"] = "III-IV"


@cache
def allo_trial_schema() -> type[Schema]:
    """Schema of an allo trial spec (population an allo scenario)."""
    from pydantic import create_model

    from ciksim.models.allo import allo_model
    from ciksim.schemas.parameters import parameter_table
    from ciksim.schemas.scenario import TRIAL_VALIDATORS, trial_fields

    model = allo_model()
    values, sigma = parameter_table(model, "values"), parameter_table(model, "variability")
    population = create_model(
        "AlloPopulationSchema", __base__=Schema,
        __doc__="Post-transplant patients: an allo scenario with its donor, conditioning and "
                "chimerism options, and changed allo-model parameters or spreads.",
        scenario=(Name, ...), donor=(Name | None, None), conditioning=(Name | None, None),
        chimerism=(Annotated[float, Field(gt=0, le=1, description="donor chimerism on "
                                          "day 0, the stem-cell infusion (0-1]")] | None, None),
        parameters=(values | None, None), variability=(sigma | None, None))
    return create_model(
        "AlloTrialSchema", __base__=Schema,
        __doc__="A virtual trial after allogeneic stem-cell transplantation.",
        __validators__=TRIAL_VALIDATORS,
        **trial_fields(patients_per_arm=200, follow_up_years=2.0),
        chunk_size=(limited("max_chunk_size", int, ge=1), 1000),
        population=(population, ...),
        posterior=(AlloPosteriorSchema, AlloPosteriorSchema()),
        analysis=(AlloAnalysisSchema, AlloAnalysisSchema()),
        arms=(Annotated[list[AlloArmSchema], Field(min_length=1,
                                                   max_length=int(limit("max_arms")))], ...),
    )


# ---- the spec -------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlloArm:
    """An arm: its name, protocol events (fixed days) and protocol triggers (as TOML
    tables, the shorthand expanded), and the donor cells it gives (for reports)."""

    name: str
    events: tuple[Mapping[str, Any], ...] = ()
    triggers: tuple[Mapping[str, Any], ...] = ()
    cells: str | None = None
    description: str = ""

    @property
    def trigger_names(self) -> tuple[str, ...]:
        return tuple(str(t["name"]) for t in self.triggers)


@dataclass(frozen=True)
class AlloTrialSpec:
    """A validated allo trial. ``raw`` keeps the parsed TOML (manifest, workers)."""

    name: str
    description: str
    seed: int
    patients_per_arm: int
    follow_up_years: float
    population: Mapping[str, Any]
    arms: tuple[AlloArm, ...]
    chunk_size: int
    raw: Mapping[str, Any] = field(repr=False)
    analysis: Analysis = field(default_factory=Analysis)
    grfs_agvhd: str = "III-IV"
    posterior: Mapping[str, Any] = field(
        default_factory=lambda: dict(ALLO_POSTERIOR_DEFAULTS))
    base_dir: str | None = field(default=None, compare=False)
    setting: str = "allo"

    @property
    def horizon_days(self) -> float:
        return 365.25 * self.follow_up_years

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "trial",
                  base_dir: str | None = None) -> AlloTrialSpec:
        """Build from parsed TOML, validated by :func:`allo_trial_schema`; every scenario
        of every arm is built (so a bad donor, dose day or trigger fails here)."""
        from ciksim.schemas import validate

        spec: Any = validate(allo_trial_schema(), data, origin=origin)
        pop = spec.population
        population = {k: v for k, v in (("scenario", pop.scenario), ("donor", pop.donor),
                                        ("conditioning", pop.conditioning),
                                        ("chimerism", pop.chimerism)) if v is not None}
        if pop.parameters is not None or pop.variability is not None:
            from ciksim.schemas import table_values

            population["parameters"] = table_values(pop.parameters) if pop.parameters else {}
            population["variability"] = (table_values(pop.variability)
                                         if pop.variability else {})
        if pop.chimerism is not None:
            for name in ("H0_frac", "D0_frac"):
                if name in population.get("parameters", {}):
                    raise DataError(f"{origin}: population.parameters.{name}: chimerism sets "
                                    "the recipient marrow share; give chimerism or "
                                    f"{name}, not both")
        raw_arms = data["arms"]
        arms = tuple(_arm(a, raw_arms[i], i, origin) for i, a in enumerate(spec.arms))
        ana = spec.analysis
        analysis = Analysis(ana.endpoint, ana.test, ana.horizon_months, ana.alpha)
        analysis.check(12.0 * spec.follow_up_years, f"{origin}: analysis")
        post = {**ALLO_POSTERIOR_DEFAULTS, "n_per_arm": spec.patients_per_arm,
                **spec.posterior.model_dump(exclude_none=True)}
        out = cls(name=spec.name, description=spec.description, seed=spec.seed,
                  patients_per_arm=spec.patients_per_arm,
                  follow_up_years=spec.follow_up_years, population=population, arms=arms,
                  chunk_size=spec.chunk_size, raw=json.loads(json.dumps(dict(data))),
                  analysis=analysis, grfs_agvhd=ana.grfs_agvhd, posterior=post,
                  base_dir=base_dir)
        for i in range(len(arms)):
            out.arm_scenario(i, origin=origin)
        return out

    def arm_scenario(self, arm: int, *, origin: str | None = None) -> Any:
        """The :class:`~ciksim.models.allo.AlloScenario` of arm ``arm``: the population
        with the arm's events and triggers added to the scenario's own."""
        from ciksim.data import load_toml
        from ciksim.models.allo import AlloScenario

        where = origin or f"trial {self.name!r}"
        a = self.arms[arm]
        pop = self.population
        data, _ = load_toml(pop["scenario"], "allo", "allo scenario", DataError)
        data = dict(data)
        for key in ("donor", "conditioning", "chimerism"):
            if key in pop:
                data[key] = pop[key]
        data["events"] = sorted([*data.get("events", []), *a.events], key=_first_day)
        if a.triggers:
            data["triggers"] = [*data.get("triggers", []), *a.triggers]
        engraft = data.get("engraftment_day", 21.0)
        if isinstance(engraft, (int, float)) and not isinstance(engraft, bool):
            _check_trigger_days(a, float(engraft), f"{where}: arms[{arm}]")
        try:
            scen = AlloScenario.from_dict(data, origin=f"{where}: arms[{arm}] ({a.name})")
        except CikError as exc:
            raise DataError(_population_field(str(exc))) from None
        pars, var = pop.get("parameters"), pop.get("variability")
        if pars or var:
            scen = dataclasses.replace(scen, parameters={**scen.parameters, **(pars or {})},
                                       variability={**scen.variability, **(var or {})})
        return scen

    def with_patients(self, n: int) -> AlloTrialSpec:
        """The same trial with ``n`` patients per arm."""
        return AlloTrialSpec.from_dict({**self.raw, "patients_per_arm": int(n)},
                                       origin=f"trial {self.name!r}", base_dir=self.base_dir)

    def with_seed(self, seed: int) -> AlloTrialSpec:
        """The same trial with another seed."""
        return AlloTrialSpec.from_dict({**self.raw, "seed": seed},
                                       origin=f"trial {self.name!r}", base_dir=self.base_dir)

    def digest(self) -> str:
        """Fingerprint of everything that determines the patients' numbers."""
        from ciksim.trial.spec import spec_digest

        return spec_digest(self.raw)

    def arm_seed(self, arm: int) -> int:
        """Each arm has its own patients: a seed derived from the trial seed and arm."""
        from ciksim.trial.spec import arm_seed

        return arm_seed(self.seed, arm)


def _first_day(event: Mapping[str, Any]) -> float:
    return float(EventSchema.model_validate(event).expanded_days()[0])


def _population_field(message: str) -> str:
    """Point the scenario's own field names at the spec's ``population`` table."""
    for key in ("donor", "conditioning", "chimerism"):
        message = message.replace(f": {key} ", f": population.{key} ", 1)
    return message


def _arm(a: Any, raw: Mapping[str, Any], i: int, origin: str) -> AlloArm:
    """An arm with its ``donor_cells`` shorthand expanded into protocol events/triggers."""
    name = a.name or f"arm {i + 1}"
    events = [dict(e) for e in raw.get("events", [])]
    triggers = [dict(t) for t in raw.get("triggers", [])]
    cells = a.donor_cells
    kinds = {str(e.get("dose")) for e in events if e.get("dose") in DONOR_CELLS}
    kinds |= {str(d.get("dose")) for t in triggers for d in t.get("doses", [])
              if isinstance(d, Mapping) and d.get("dose") in DONOR_CELLS}
    if cells is not None:
        kinds.add(cells.cells)
        if cells.first_day is not None:
            events += [{"day": cells.first_day + off, "action": "dose", "dose": dose,
                        "amount": amount} for off, dose, amount in cells.doses()]
        else:
            w = cells.when
            assert w is not None and w.monitor is not None  # checked by the schema
            t: dict[str, Any] = {"name": w.name or f"{cells.cells}-{w.watch}",
                                 "watch": w.watch,
                                 "monitor": w.monitor.model_dump(exclude_none=True),
                                 "doses": [{"offset": off, "dose": dose,
                                            "amount": amount}
                                           for off, dose, amount in cells.doses()]}
            t["above" if w.above is not None else "below"] = (
                w.above if w.above is not None else w.below)
            if t["name"] in {x["name"] for x in triggers}:
                raise DataError(f"{origin}: arms[{i}].donor_cells.when.name: trigger "
                                f"{t['name']!r} is used twice in the arm; rename one")
            triggers.append(t)
    return AlloArm(name, tuple(events), tuple(triggers),
                   "+".join(sorted(kinds)) if kinds else None, a.description)


def _check_trigger_days(arm: AlloArm, engraft: float, where: str) -> None:
    """A triggered donor-cell dose cannot come before engraftment: the first monitoring
    day plus the dose's offset must be on or after ``engraft``."""
    for k, t in enumerate(arm.triggers):
        mon = t.get("monitor") or {"days": t.get("days")}
        days = mon.get("days") or [mon.get("first")]
        first = min(float(d) for d in days if d is not None) if any(
            d is not None for d in days) else math.nan
        for d in t.get("doses", []):
            if not isinstance(d, Mapping) or d.get("dose") not in DONOR_CELLS:
                continue
            day = first + float(d.get("offset", 0))
            if math.isfinite(day) and day < engraft:
                raise DataError(
                    f"{where}.triggers[{k}] ({t['name']}): a {d['dose']} dose could come on "
                    f"day {day:g}, before engraftment (engraftment_day = {engraft:g}); start "
                    f"monitoring on day {engraft:g} or later")


def load_allo_spec(path: str | Path, data: Mapping[str, Any]) -> AlloTrialSpec:
    """An allo trial spec read from ``path`` (already parsed as ``data``)."""
    return AlloTrialSpec.from_dict(data, origin=str(path), base_dir=str(Path(path).parent))

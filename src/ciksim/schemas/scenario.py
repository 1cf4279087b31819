"""Schemas of a patient scenario TOML file and of a trial spec TOML file.

Their ``[parameters]`` and ``[variability]`` tables are derived from the patient model's
declarations (:func:`ciksim.schemas.parameters.parameter_table`), so they are built on first
use (``scenario_schema()``, ``trial_schema()``), after the model.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Annotated, Any

from pydantic import Field, PlainValidator, WithJsonSchema, create_model, model_validator

from ciksim.schemas.base import Name, Schema, Text, limit, limited
from ciksim.schemas.parameters import parameter_table
from ciksim.schemas.protocol import (
    EventSchema,
    Triggers,
    check_event_order,
    check_trigger_names,
)

RELAPSE_DEFINITIONS = {"haematologic": 0.05, "molecular": 1e-4}


def _relapse(value: Any) -> str | float:
    if isinstance(value, str):
        if value not in RELAPSE_DEFINITIONS:
            raise ValueError(f"use {' or '.join(RELAPSE_DEFINITIONS)} or a blast fraction "
                             "in (0, 1]")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"use {' or '.join(RELAPSE_DEFINITIONS)} (quoted) or a blast "
                         "fraction in (0, 1]")
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError("a blast fraction must be in (0, 1]")
    return float(value)


Relapse = Annotated[str | float, PlainValidator(_relapse), WithJsonSchema({
    "anyOf": [{"enum": list(RELAPSE_DEFINITIONS)},
              {"type": "number", "exclusiveMinimum": 0, "maximum": 1}],
    "description": "'haematologic' (>= 5% marrow blasts), 'molecular' (MRD >= 1e-4) or a "
                   "blast fraction"})]
Fraction = Annotated[float, Field(gt=0, le=1)]
def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError("is not a share or rate; give a fraction in [0, 1]")
    return float(value)


Share = Annotated[float, PlainValidator(_share),
                  WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})]
FirstDay = limited("max_protocol_day", ge=0)
Donors = limited("max_donors", int, ge=1)
Draws = limited("max_draws", int, ge=0)
Cohort = limited("max_patients", int, ge=20)
Events = Annotated[list[EventSchema], Field(max_length=int(limit("max_events")))]


def _patient_tables() -> tuple[type[Schema], type[Schema]]:
    from ciksim.models.patient import patient_model

    model = patient_model()
    return parameter_table(model, "values"), parameter_table(model, "variability")


def _subtype_names() -> list[str]:
    from ciksim.models.patient import subtypes

    return list(subtypes())


@cache
def scenario_schema() -> type[Schema]:
    """Schema of a scenario file (``data/scenarios/*.toml``)."""
    values, sigma = _patient_tables()

    def after(self: Any) -> Any:
        check_event_order(self.events)
        check_trigger_names(self.triggers)
        if self.subtype is not None and self.subtype.lower() not in _subtype_names():
            raise ValueError(f"subtype: unknown subtype {self.subtype!r}; use one of "
                             f"{', '.join(_subtype_names())}")
        return self

    return create_model(
        "ScenarioSchema", __base__=Schema,
        __doc__="A patient population: chemotherapy events and triggers, parameter medians "
                "(patient-model parameters, ranges from their declarations), log-normal "
                "spreads, endpoint.",
        __validators__={"_after": model_validator(mode="after")(after)},
        name=(Name, "scenario"), description=(Text, ""), source=(Text, ""),
        relapse_threshold=(Fraction, 0.05), subtype=(Name | None, None),
        parameters=(values, None), variability=(sigma, None), events=(Events, []),
        triggers=(Triggers, []),
    )


class CikSchema(Schema):
    """CIK infusions of an arm."""

    dose_per_kg: Annotated[float, Field(gt=0, le=1e10, description="CD3+ cells per kg per "
                                        "infusion")] = 5e7
    infusions: Annotated[int, Field(ge=1, le=100)] = 3
    interval_days: Annotated[float, Field(gt=0, le=3650)] = 21.0
    first_day: FirstDay = 30.0
    il2_support: bool = False


class ArmSchema(Schema):
    """A trial arm: chemotherapy alone, or with ``cik`` infusions."""

    name: Name | None = None
    cik: CikSchema | None = None


_PRODUCT_SOURCES = ("culture_protocol", "run_folder", "release_data")
PathText = Annotated[str, Field(min_length=1, max_length=4096)]


class ProductSchema(Schema):
    """Where the trial's CIK product lots come from: one of a culture protocol simulated for
    ``donors`` donors of a ``donor`` kind seeded with ``start_cells`` (default ``cik-gmp``),
    the folder of a ``ciksim culture --out`` run, or a release-data CSV."""

    culture_protocol: Name | None = None
    run_folder: PathText | None = None
    release_data: PathText | None = None
    donors: Donors = 200
    donor: PathText | None = None
    start_cells: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ProductSchema:
        given = [k for k in _PRODUCT_SOURCES if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of {', '.join(_PRODUCT_SOURCES)}, not "
                             f"{' and '.join(given)}")
        extra = [k for k in ("donor", "start_cells") if getattr(self, k) is not None]
        if "donors" in self.model_fields_set:
            extra.insert(0, "donors")
        if given and given[0] != "culture_protocol" and extra:
            raise ValueError(f"{', '.join(extra)} apply to a culture_protocol only; drop "
                             f"them or use culture_protocol instead of {given[0]}")
        return self


class DeliverySchema(Schema):
    """Per-patient product delivery in CIK arms (intention to treat): rates in [0, 1]."""

    enabled: bool = True
    manufactured: Share | None = None
    target_dose_reached: Share | None = None
    not_infused: Share | None = None
    not_infused_reasons: Annotated[dict[Annotated[str, Field(min_length=1, max_length=100)],
                                        Annotated[float, Field(ge=0)]],
                                   Field(min_length=1, max_length=50)] | None = None
    below_target_dose_fraction: Fraction | None = None


class PosteriorSchema(Schema):
    """The trial over parameter draws: ``source`` ("shipped", "prior" or a saved posterior's
    path), ``draws`` (0: none) and the paired virtual ``cohort`` per draw."""

    source: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    draws: Draws | None = None
    cohort: Cohort | None = None
    n_per_arm: limited("max_patients", int, ge=1) | None = None


def _analysis_schema() -> type[Schema]:
    from typing import Literal

    from ciksim.trial.estimands import ANALYSES, ENDPOINTS

    return create_model(
        "AnalysisSchema", __base__=Schema,
        __doc__="The planned primary analysis: endpoint, test, horizon and two-sided alpha.",
        endpoint=(Literal[tuple(ENDPOINTS)], "rfs"),  # type: ignore[valid-type]
        test=(Literal[tuple(ANALYSES)], "logrank"),  # type: ignore[valid-type]
        horizon_months=(Annotated[float, Field(gt=0, le=12 * limit("max_years"))], 36.0),
        alpha=(Annotated[float, Field(gt=0, lt=1)], 0.05),
    )


_SUBTYPE_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,50}$")


def _arms_and_size(self: Any) -> Any:
    """A trial spec's own checks: each arm name once; all arms' patients within the
    max_patients limit."""
    names = set()
    for i, arm in enumerate(self.arms):
        name = arm.name or f"arm {i + 1}"
        if name in names:
            raise ValueError(f"arms[{i}]: arm name {name!r} is used twice")
        names.add(name)
    total = self.patients_per_arm * len(self.arms)
    if total > limit("max_patients"):
        raise ValueError(f"{total:g} patients in all arms exceed the limit max_patients = "
                         f"{limit('max_patients'):g}; give fewer patients_per_arm")
    return self


#: The validators of every trial schema (``create_model``'s ``__validators__``).
TRIAL_VALIDATORS = {"_after": model_validator(mode="after")(_arms_and_size)}


def trial_fields(patients_per_arm: int, follow_up_years: float) -> dict[str, Any]:
    """The fields every trial schema starts with (``create_model`` field definitions): name,
    description, seed, patients per arm and follow-up (years), with the setting's defaults."""
    return {"name": (Name, ...), "description": (Text, ""),
            "seed": (Annotated[int, Field(ge=0, lt=2**63)], 0),
            "patients_per_arm": (limited("max_patients", int, ge=1), patients_per_arm),
            "follow_up_years": (limited("max_years", gt=0), follow_up_years)}


@cache
def trial_schema() -> type[Schema]:
    """Schema of a trial spec file (``examples/*.toml``)."""
    values, sigma = _patient_tables()

    def population_after(self: Any) -> Any:
        mix = self.subtypes or {}
        known = _subtype_names()
        for k in mix:
            if k.lower() not in known:
                raise ValueError(f"subtypes.{k} is not a known subtype ({', '.join(known)})")
        if mix and not math.isclose(sum(mix.values()), 1.0, abs_tol=1e-6):
            raise ValueError(f"subtypes shares add up to {sum(mix.values()):g}; they must add "
                             "up to 1")
        return self

    population = create_model(
        "PopulationSchema", __base__=Schema,
        __doc__="The virtual patients: a scenario, optionally a subtype mix and changed "
                "parameters or spreads.",
        __validators__={"_after": model_validator(mode="after")(population_after)},
        scenario=(Name, "aml-cr1"),
        subtypes=(Annotated[dict[Annotated[str, Field(pattern=_SUBTYPE_KEY.pattern)], Share],
                            Field(max_length=50)] | None, None),
        variability=(sigma, None), parameters=(values, None),
        post_relapse_median_months=(Annotated[float, Field(gt=0, le=12 * limit("max_years"))],
                                    10.0),
    )

    analysis = _analysis_schema()
    return create_model(
        "TrialSchema", __base__=Schema,
        __doc__="A virtual trial: population, arms, size, follow-up, endpoint and seed.",
        __validators__=TRIAL_VALIDATORS,
        **trial_fields(patients_per_arm=1000, follow_up_years=4.0),
        relapse=(Relapse, "haematologic"),
        chunk_size=(limited("max_chunk_size", int, ge=1), 1000),
        population=(population, ...),
        product=(ProductSchema, ProductSchema()),
        delivery=(DeliverySchema, DeliverySchema()),
        posterior=(PosteriorSchema, PosteriorSchema()),
        analysis=(analysis, analysis()),
        arms=(Annotated[list[ArmSchema], Field(min_length=1,
                                               max_length=int(limit("max_arms")))], ...),
    )


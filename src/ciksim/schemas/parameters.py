"""Tables of model parameters (a scenario's ``[parameters]`` and ``[variability]``, a
protocol's ``[parameters]``), derived from the model's declarations: every declared
parameter is a field with its unit, plausible range and description, so a parameter added
to a model is covered (and documented in the JSON Schema) without touching this module."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, PlainValidator, WithJsonSchema, create_model, model_validator

from ciksim.errors import CikError
from ciksim.schemas.base import Quantity, Schema, limited

if TYPE_CHECKING:
    from ciksim.model import Model, Parameter


def checked_parameter(p: Parameter, value: Any) -> float:
    """``value`` (a number in ``p.unit`` or a quantity string) converted to ``p.unit`` and
    inside the declared plausible range; ValueError (message with the fix) otherwise."""
    from ciksim.units import convert

    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a number in {p.unit} or a quantity string")
    try:
        number = convert(value, p.unit, field=p.name)
    except CikError as exc:
        raise ValueError(str(exc).removeprefix(f"{p.name}: ")) from None
    if not math.isfinite(number) or not p.low <= number <= p.high:
        raise ValueError(f"outside the plausible range [{p.low:g}, {p.high:g}] {p.unit} "
                         f"({p.description}); give a value in that range")
    return number


def range_type(p: Parameter) -> Any:
    def check(value: Any) -> float:
        return checked_parameter(p, value)

    return Annotated[float | str, PlainValidator(check), WithJsonSchema({
        "anyOf": [{"type": "number", "minimum": p.low, "maximum": p.high},
                  {"type": "string"}],
        "description": f"{p.description} ({p.unit}; plausible range [{p.low:g}, {p.high:g}]; "
                       f"source: {p.source})"})]


def _sigma_type(p: Parameter) -> Any:
    return Annotated[limited("max_variability", ge=0), Field(
        description=f"log-normal SD of {p.name} between individuals (declared "
                    f"{p.variability:g})")]


_TABLES: dict[tuple[int, str], tuple[Model, type[Schema]]] = {}


def parameter_table(model: Model, kind: str = "values") -> type[Schema]:
    """A schema whose optional fields are ``model``'s parameters: values (with units and
    ranges) for ``kind="values"``, log-normal SDs for ``kind="variability"``."""
    key = (id(model), kind)
    if key not in _TABLES:
        _TABLES[key] = (model, _build_table(model, kind))
    return _TABLES[key][1]


def _build_table(model: Model, kind: str) -> type[Schema]:
    fields: dict[str, Any] = {}
    for p in model.parameters:
        typ = range_type(p) if kind == "values" else _sigma_type(p)
        fields[f"p_{p.name}"] = (typ | None, Field(None, alias=p.name))
    name = f"{model.name.capitalize()}{'Parameters' if kind == 'values' else 'Variability'}"
    known = set(model.parameter_by_name)

    def known_names(data: Any) -> Any:
        if isinstance(data, dict):
            for k in data:
                if k not in known:
                    raise ValueError(f"{k} is not a {model.name}-model parameter; check its "
                                     "spelling (docs/models lists them)")
        return data

    return create_model(name, __base__=Schema, __doc__=f"{model.name} model {kind}",
                        __validators__={"_known": model_validator(mode="before")(known_names)},
                        **fields)


def table_values(table: Schema) -> dict[str, Any]:
    """The parameters given in a validated table, by parameter name."""
    return {k[2:]: v for k, v in table.model_dump(exclude_none=True).items()}


__all__ = ["Quantity", "checked_parameter", "parameter_table", "table_values"]

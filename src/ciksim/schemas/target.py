"""Schema of a target-cell TOML file (``ciksim killing --target FILE.toml``): the killing
model's target-property parameters, ranges from their declarations."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import create_model

from ciksim.schemas.base import Name, Schema, Text
from ciksim.schemas.parameters import _range_type


@cache
def target_schema() -> type[Schema]:
    """Every target property the killing model declares is required."""
    from ciksim.models.killing import TARGET_FIELDS, killing_model

    model = killing_model()
    fields: dict[str, Any] = {f: (_range_type(model.parameter_by_name[f]), ...)
                              for f in TARGET_FIELDS}
    return create_model("TargetSchema", __base__=Schema,
                        __doc__="Target cells of a simulated cytotoxicity assay.",
                        name=(Name | None, None), description=(Text, ""), source=(Text, ""),
                        **fields)

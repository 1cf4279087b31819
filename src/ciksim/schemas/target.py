"""Schema of a target-cell TOML file (``ciksim killing --target FILE.toml``): the killing
model's target-property parameters, ranges from their declarations."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import Field, create_model

from ciksim.schemas.base import Name, Schema, Text
from ciksim.schemas.parameters import range_type


@cache
def target_schema() -> type[Schema]:
    """``recognition`` (the modes effectors see the target by) and the killing model's
    target properties, each within its declared range; which properties a target must give
    follows from its modes (checked by :func:`ciksim.models.killing.target_parameters`)."""
    from ciksim.models.killing import RECOGNITION_MODES, TARGET_FIELDS, killing_model

    model = killing_model()
    fields: dict[str, Any] = {f: (range_type(model.parameter_by_name[f]) | None, None)
                              for f in TARGET_FIELDS}
    mode = Literal[tuple(RECOGNITION_MODES)]  # type: ignore[valid-type]
    return create_model("TargetSchema", __base__=Schema,
                        __doc__="Target cells of a simulated cytotoxicity assay.",
                        name=(Name | None, None), description=(Text, ""), source=(Text, ""),
                        recognition=(Annotated[list[mode], Field(min_length=1, max_length=len(
                            RECOGNITION_MODES))], ...),
                        **fields)

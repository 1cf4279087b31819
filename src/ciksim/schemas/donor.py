"""Schema of a starting-material TOML file (``ciksim culture --donor FILE.toml``): whose
cells are cultured, as culture-model parameter medians within their declared ranges."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from pydantic import Field, create_model

from ciksim.schemas.base import Name, Schema, Text
from ciksim.schemas.parameters import parameter_table

#: A citation (or "assumed: <reason>"): at least one non-blank character.
Source = Annotated[str, Field(min_length=1, max_length=10_000, pattern=r"\S")]


@cache
def donor_schema() -> type[Schema]:
    """``name``, ``description``, ``source`` (required: where the values come from) and
    ``[parameters]``: culture-model parameter medians, each within its declared range."""
    from ciksim.models.culture import culture_model

    return create_model("DonorSchema", __base__=Schema,
                        __doc__="Starting material: culture-model parameter medians of "
                                "whose cells are cultured.",
                        name=(Name | None, None), description=(Text, ""), source=(Source, ...),
                        parameters=(parameter_table(culture_model()) | None, None))

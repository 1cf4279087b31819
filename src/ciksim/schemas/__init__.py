"""Every input format of ciksim, declared once as a schema (pydantic v2).

A :class:`Format` names a schema, says what the format is for, shows an example and knows
how to read a file of it. ``FORMATS`` lists them all; :func:`json_schema` exports one as
JSON Schema (for editors and the web page); ``docs/formats.md`` is written from them
(``python -m ciksim.schemas docs``).

Adding a format (e.g. a release-data CSV) is three steps:

1. declare its schema: a :class:`Schema` subclass (TOML: fields with types and ``Field``
   bounds, limits from :data:`LIMITS`; CSV: one field per column built with
   :func:`~ciksim.schemas.tables.number` / :func:`~ciksim.schemas.tables.text`, cross-field
   rules in a ``model_validator``; parameter tables with :func:`parameter_table`);
2. read it through :func:`validate` / :func:`read_toml` (TOML) or
   :func:`~ciksim.schemas.tables.read_table` (CSV), so every failure is one CikError with the
   path, the value and the fix;
3. register it with :func:`register` (name, schema, summary, example, reader) in its own
   module; the docs, the JSON Schema export and the fuzz suite (``tests/test_fuzz.py``)
   pick it up from ``FORMATS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ciksim.errors import DataError
from ciksim.schemas.base import (
    LIMITS,
    Limit,
    Quantity,
    Schema,
    describe,
    limit,
    parse_toml,
    read_text,
    read_toml,
    validate,
)
from ciksim.schemas.parameters import checked_parameter, parameter_table, table_values
from ciksim.schemas.protocol import EventSchema, ProtocolSchema, TriggerSchema


@dataclass(frozen=True)
class Format:
    """One input format: its schema (a class, or a function building it from the model
    declarations), what it is, an example file's text and the function reading a file."""

    name: str
    kind: str  # "toml" or "csv"
    summary: str
    schema: Callable[[], type[Schema]]
    example: str
    reader: Callable[[Path], Any]

    def json_schema(self) -> dict[str, Any]:
        out = self.schema().model_json_schema(by_alias=True)
        out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out["title"] = f"ciksim {self.name}"
        out.setdefault("description", self.summary)
        return out


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add a format to ``FORMATS`` (names are unique)."""
    if fmt.name in FORMATS and FORMATS[fmt.name] != fmt:
        raise DataError(f"format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the input format ``name`` (see ``FORMATS``)."""
    _load_all()
    if name not in FORMATS:
        raise DataError(f"format: unknown format {name!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[name].json_schema()


def json_schema_text(name: str) -> str:
    return json.dumps(json_schema(name), indent=2, sort_keys=False) + "\n"


def formats() -> dict[str, Format]:
    """Every registered input format, by name."""
    _load_all()
    return dict(FORMATS)


def _load_all() -> None:
    from ciksim.schemas import registry  # noqa: F401  (registers the built-in formats)


__all__ = [
    "FORMATS",
    "LIMITS",
    "EventSchema",
    "Format",
    "Limit",
    "ProtocolSchema",
    "Quantity",
    "Schema",
    "TriggerSchema",
    "checked_parameter",
    "describe",
    "formats",
    "json_schema",
    "json_schema_text",
    "limit",
    "parameter_table",
    "parse_toml",
    "read_text",
    "read_toml",
    "register",
    "table_values",
    "validate",
]

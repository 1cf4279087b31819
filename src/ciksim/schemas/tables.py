"""Tidy CSV tables: a row schema per format, read with line and column in every message.

A table format is a :class:`Schema` subclass whose fields are the columns (every cell is
text; :func:`number` parses it). :func:`read_table` reads the file as UTF-8 (byte-order
mark tolerated), refuses unknown or missing columns, rows with more fields than the header
and files over the ``max_rows`` limit, then validates each row: an error reads
``FILE, line N, column C: 'value' is not a number; ...``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import PlainValidator, ValidationError, WithJsonSchema

from ciksim.errors import CikError, DataError
from ciksim.schemas.base import Schema, limit, read_text, show_value

R = TypeVar("R", bound=Schema)


def number(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
           what: str = "", optional: bool = False) -> Any:
    """A CSV cell holding a finite number (bounds inclusive ``ge``/``le``, exclusive ``gt``);
    ``optional``: an empty cell is None. ``what`` is appended to messages as the fix."""
    fix = f"; {what}" if what else ""

    def check(text: Any) -> float | None:
        if not isinstance(text, str):
            raise ValueError(f"{show_value(text)} is not text")
        if optional and not text:
            return None
        try:
            x = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number{fix}") from None
        if not math.isfinite(x):
            raise ValueError(f"{text!r} is not finite{fix}")
        if (ge is not None and x < ge) or (gt is not None and x <= gt):
            bound = f">= {ge:g}" if ge is not None else f"> {gt:g}"
            raise ValueError(f"{text!r} must be {bound}" + (" (it is negative)" if x < 0 else "")
                             + fix)
        if le is not None and x > le:
            raise ValueError(f"{text!r} must be <= {le:g}{fix}")
        return x

    schema: dict[str, Any] = {"type": "number"}
    for key, bound in (("minimum", ge), ("exclusiveMinimum", gt), ("maximum", le)):
        if bound is not None:
            schema[key] = bound
    if optional:
        schema = {"anyOf": [schema, {"const": ""}]}
    return Annotated[float | None if optional else float, PlainValidator(check),
                     WithJsonSchema(schema)]


def text(*, required: bool = False, max_length: int = 200, what: str = "") -> Any:
    """A CSV cell holding text (stripped); ``required``: not empty."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"{show_value(value)} is not text")
        if required and not value:
            raise ValueError(what or "give a value")
        if len(value) > max_length:
            raise ValueError(f"longer than {max_length} characters")
        return value

    return Annotated[str, PlainValidator(check),
                     WithJsonSchema({"type": "string", "maxLength": max_length,
                                     **({"minLength": 1} if required else {})})]


def row_error(exc: ValidationError, where: str) -> str:
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err.get("loc", ())]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:
        return f"{where}, {msg}"
    return f"{where}, column {loc[0]}: {msg}"


def columns(schema: type[Schema]) -> tuple[list[str], list[str]]:
    """(required, optional) column names of a row schema."""
    req = [n for n, f in schema.model_fields.items() if f.is_required()]
    opt = [n for n, f in schema.model_fields.items() if not f.is_required()]
    return req, opt


def read_table(path: str | Path, schema: type[R], *, what: str = "data",
               error: type[CikError] = DataError, origin: str | None = None
               ) -> Iterator[tuple[str, int, R]]:
    """Validated rows of a tidy CSV: (``"FILE, line N"``, N, row); ``origin`` names the
    file in messages (default: ``path``), e.g. an uploaded file's own name."""
    text_ = read_text(path, what=what, error=error, origin=origin)
    p = origin or str(path)
    required, optional = columns(schema)
    layout = ",".join(required + [f"[{c}]" for c in optional])
    if getattr(schema, "extra_prefix", None):
        layout += f",[{schema.extra_prefix}...]"
    reader = csv.reader(io.StringIO(text_, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as exc:
        raise error(f"{p}, line 1: cannot read the header ({exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise error(f"{p}: missing column(s) {', '.join(missing)}; the header must be {layout}")
    prefix = getattr(schema, "extra_prefix", None)  # optional extra columns (e.g. mrd...)
    unknown = [c for c in header if c not in required and c not in optional
               and not (prefix and c.startswith(prefix))]
    if unknown:
        raise error(f"{p}: unknown column(s) {', '.join(map(repr, unknown))}; the header must "
                    f"be {layout}")
    if len(set(header)) != len(header):
        raise error(f"{p}: a column is named twice in the header; the header must be {layout}")
    n = 0
    try:
        for cells in reader:
            line = reader.line_num
            where = f"{p}, line {line}"
            if not cells or all(not c.strip() for c in cells):
                continue
            n += 1
            if n > limit("max_rows"):
                raise error(f"{p}: more than {limit('max_rows'):g} data rows (limit "
                            "max_rows); split the file")
            if len(cells) != len(header):
                raise error(f"{where}: {len(cells)} fields but the header has {len(header)}; "
                            "check for extra or missing commas")
            rec = {h: c.strip() for h, c in zip(header, cells, strict=True)}
            try:
                row = schema.model_validate(rec)
            except ValidationError as exc:
                raise error(row_error(exc, where)) from None
            yield where, line, row
    except csv.Error as exc:
        raise error(f"{p}, line {reader.line_num}: not a valid CSV row ({exc})") from None
    if n == 0:
        raise error(f"{p}: no data rows")


def duplicates(keys: list[tuple[Any, ...]], wheres: list[str], what: str) -> None:
    """DataError naming the second of two rows with the same key."""
    seen: dict[tuple[Any, ...], str] = {}
    for key, where in zip(keys, wheres, strict=True):
        if key in seen:
            raise DataError(f"{where}: the same {what} as {seen[key].rsplit(', ', 1)[-1]}; "
                            "remove the duplicated row (it would count twice)")
        seen[key] = where

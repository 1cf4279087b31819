"""The building blocks every input schema uses: strict models, checked quantities, named
limits, and the translation of a validation failure into one :class:`CikError`.

Strictness: no coercion (``"no"`` is not a boolean, ``1.5`` is not a whole number, ``true``
is not a number), no NaN or infinity, unknown fields refused.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)

from ciksim.errors import CikError, DataError, UnitError
from ciksim.unit_grammar import MAX_LENGTH, check_quantity_text

M = TypeVar("M", bound=BaseModel)


class Schema(BaseModel):
    """Base of every input schema: strict types, finite numbers, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True,
                              str_max_length=10_000, hide_input_in_errors=False)


@dataclass(frozen=True)
class Limit:
    """A size or horizon limit: its name (as users meet it), value, unit and reason."""

    name: str
    value: float
    unit: str
    reason: str

    def check(self, value: float, *, field: str, error: type[CikError] = DataError) -> float:
        """``value`` if finite and at most the limit; else ``error`` naming the limit."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(f"{field}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise error(f"{field}: {value!r} is not a finite number; give a number up to "
                        f"{self.value:g} {self.unit}")
        if value > self.value:
            raise error(f"{field}: {value:g} exceeds the limit {self.name} = {self.value:g} "
                        f"{self.unit} ({self.reason}); give a smaller value")
        return value


#: Every size and horizon limit, by name (docs/formats.md lists them).
LIMITS: dict[str, Limit] = {lim.name: lim for lim in (
    Limit("max_years", 100, "years", "follow-up of a virtual patient or trial"),
    Limit("max_patients", 1e9, "patients", "patients in one run or trial, all arms together"),
    Limit("max_culture_days", 365, "days", "length of a culture"),
    Limit("max_assay_hours", 168, "hours", "length of a killing assay (one week)"),
    Limit("max_protocol_day", 100 * 365.25, "days", "day of a protocol event (100 years)"),
    Limit("min_event_spacing", 0.01, "days", "smallest `every` of repeated events "
          "(about 15 minutes)"),
    Limit("max_events", 10_000, "events", "events of one protocol after repeats are expanded"),
    Limit("max_visits", 10_000, "visits", "monitoring visits of one trigger after `every` is "
          "expanded"),
    Limit("max_triggers", 20, "triggers", "triggers of one protocol"),
    Limit("max_density", 1e9, "cells/mL", "cell density in a culture (packed cells)"),
    Limit("max_donors", 100_000, "donors", "simulated donors in one culture or assay"),
    Limit("max_arms", 50, "arms", "arms of one trial"),
    Limit("max_chunk_size", 10_000_000, "patients", "patients per trial chunk"),
    Limit("max_workers", 1024, "processes", "local worker processes"),
    Limit("max_variability", 3.0, "log-SD", "between-individual log-normal SD"),
    Limit("max_rows", 1_000_000, "rows", "data rows of one CSV file"),
    Limit("max_file_bytes", 50_000_000, "bytes", "size of one input file"),
    Limit("max_nesting", 20, "levels", "nesting of tables and arrays in a TOML file"),
    Limit("max_draws", 100_000, "draws", "parameter draws of a trial over a posterior"),
    Limit("max_walkers", 1000, "walkers", "MCMC walkers of a culture fit"),
    Limit("max_steps", 100_000, "steps", "MCMC steps of a culture fit"),
)}


def limit(name: str) -> float:
    """The value of the named limit (see ``LIMITS``)."""
    return LIMITS[name].value


def limited(name: str, base: Any = float, **bounds: float) -> Any:
    """``base`` at most the named limit (and within ``bounds``, pydantic ``Field`` bounds);
    exceeding it names the limit in the message and the JSON Schema (``maximum``)."""
    lim = LIMITS[name]

    def check(value: Any) -> Any:
        if value > lim.value:
            raise ValueError(f"exceeds the limit {lim.name} = {lim.value:g} {lim.unit} "
                             f"({lim.reason}); give a smaller value")
        return value

    return Annotated[base, Field(**bounds, json_schema_extra={"maximum": lim.value,
                                                                "x-limit": lim.name}),
                     AfterValidator(check)]


def _quantity(value: Any) -> float | str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("expected a number or a quantity string like '500 IU/mL'")
    if isinstance(value, str):
        try:
            number, _ = check_quantity_text(value, field="value")
        except UnitError as exc:
            raise ValueError(str(exc).removeprefix("value: ")) from None
    else:
        number = float(value)
    if not math.isfinite(number):
        raise ValueError("not a finite number")
    if number < 0:
        raise ValueError("negative; give a value >= 0")
    return value


#: A non-negative number in the unit where it is used, or a quantity string of the bounded
#: unit grammar (``"500 IU/mL"``); converted when bound to a model.
Quantity = Annotated[
    float | str,
    PlainValidator(_quantity),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "maxLength": MAX_LENGTH,
                               "pattern": r"^\s*[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?"
                                          r"(\s*[^\s].*)?$"}],
                    "description": "a number >= 0 in the unit where it is used, or a "
                                   "quantity like '500 IU/mL'"}),
]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=10_000)]

_FIXES = {
    "bool_type": "write true or false (no quotes)",
    "int_type": "write a whole number such as 3 (no decimal point, no quotes)",
    "float_type": "write a number such as 2.5 (no quotes)",
    "string_type": "write text in quotes",
    "dict_type": "write a table: [name] or {key = value}",
    "list_type": "write an array: [a, b] or [[name]] tables",
    "model_type": "write a table: [name] or {key = value}",
    "finite_number": "give a finite number",
    "extra_forbidden": "remove it or check its spelling",
    "missing": "add it",
    "literal_error": "use one of the allowed values",
    "too_long": "give fewer entries",
    "too_short": "give more entries",
    "string_too_long": "shorten it",
    "string_too_short": "give a non-empty text",
}


def path_of(loc: tuple[Any, ...]) -> str:
    """``('arms', 1, 'cik', 'dose_per_kg')`` → ``arms[1].cik.dose_per_kg``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-plain", "function-after", "function-before"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def show_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(error: Mapping[str, Any], origin: str) -> str:
    """One line from one pydantic error: origin, path, value, what is wrong and the fix."""
    path = path_of(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    ctx = error.get("ctx") or {}
    where = f"{origin}: {path}" if path else origin
    value = error.get("input")
    last = path.rsplit(".", 1)[-1].split("[")[0]
    if kind == "missing":
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        return f"{origin}{': ' + parent if parent else ''}: missing field {last!r}; add it"
    if kind == "extra_forbidden":
        return f"{where}: unknown field; remove it or check its spelling"
    if kind == "literal_error":
        return f"{where}: unknown {last} {show_value(value)}; use {ctx.get('expected', 'another')}"
    if kind in ("too_short", "too_long"):
        n = ctx.get("actual_length", "?")
        if kind == "too_short":
            return f"{where}: {n} entries; give at least {ctx.get('min_length', 1)}"
        return f"{where}: {n} entries; give at most {ctx.get('max_length', '?')}"
    if isinstance(value, dict) and kind == "value_error":
        return f"{where}: {msg}"
    fix = _FIXES.get(kind)
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
              "less_than_equal": "<="}
    if kind in bounds:
        bound = next(iter(ctx.values()), "?")
        return (f"{where} = {show_value(value)}: must be {bounds[kind]} {bound}; give a value "
                "in range")
    text = f"{where} = {show_value(value)}: {msg[0].lower() + msg[1:] if msg else msg}"
    return f"{text}; {fix}" if fix else text


def validate(schema: type[M], data: Any, *, origin: str, error: type[CikError] = DataError
             ) -> M:
    """``schema`` validated from ``data``; the first problem becomes one ``error``."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise error(describe(exc.errors(include_url=False)[0], origin)) from None
    except RecursionError:
        raise error(f"{origin}: nested too deeply; at most {limit('max_nesting'):g} "
                    "levels") from None


def read_text(path: str | Path, *, what: str, error: type[CikError] = DataError,
              origin: str | None = None) -> str:
    """A user's text file as UTF-8 (a byte-order mark is tolerated); size limited.
    ``origin`` names the file in messages (default: ``path``)."""
    p = Path(path)
    name = origin or str(p)
    if not p.is_file():
        raise error(f"{what} {name!r} does not exist" + (" (it is a folder)" if p.is_dir()
                                                         else ""))
    size = p.stat().st_size
    if size > limit("max_file_bytes"):
        raise error(f"{name}: {size} bytes exceeds the limit max_file_bytes = "
                    f"{limit('max_file_bytes'):g}; split the file")
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise error(f"{name}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x} at "
                    f"offset {exc.start}); save the file as UTF-8") from None


def _depth_ok(text: str) -> bool:
    """False when brackets/braces nest deeper than the max_nesting limit (cheap scan)."""
    depth = deepest = 0
    quote = None
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit("max_nesting") + 2:
                return False
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return True


def parse_toml(text: str, *, origin: str, error: type[CikError] = DataError) -> dict[str, Any]:
    """Parsed TOML; syntax errors keep tomllib's line and column; deep nesting refused."""
    if not _depth_ok(text):
        raise error(f"{origin}: arrays or inline tables nested more than "
                    f"{limit('max_nesting'):g} levels deep; flatten the file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{origin}: not valid TOML ({exc})") from None
    except RecursionError:
        raise error(f"{origin}: nested too deeply; flatten the file") from None


def read_toml(path: str | Path, *, what: str, error: type[CikError] = DataError
              ) -> dict[str, Any]:
    """A TOML file read as UTF-8 (BOM tolerated) and parsed, errors naming the file."""
    return parse_toml(read_text(path, what=what, error=error), origin=str(path), error=error)

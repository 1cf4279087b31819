"""``docs/formats.md`` and ``docs/schemas/*.schema.json``, written from the registered
formats (``python -m ciksim.schemas docs``); a test checks they are up to date."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ciksim.schemas import LIMITS, formats

HEADER = """# Input formats

Every file ciksim reads is declared once as a schema (pydantic v2, `ciksim.schemas`) and
checked before any work starts: types are strict (`"no"` is not a boolean, `1.5` is not a
whole number, `true` is not a number), numbers are finite, model parameters stay inside the
plausible ranges their declarations give, unknown fields are refused, and sizes and horizons
have named limits. A bad file gives one error line naming the file, the path of the field
(`arms[1].cik.dose_per_kg`), the value and the fix, and exit status 2; nothing is written.

Files are read as UTF-8 (a byte-order mark is accepted). Quantities are a number and a unit
(`"500 IU/mL"`, `"2e6 cells/mL"`, `"1 1/hour"`), matched against a bounded grammar before
the unit library sees them: `number [unit]`, units joined by `*`, `/` or a space, an
integer exponent of at most two digits (`m^2`, `m**2`), at most three nested parentheses and
80 characters.

The JSON Schema of each format is in [`docs/schemas/`](schemas/) (editors such as VS Code
with a TOML extension, and the web page, use them); from Python:
`ciksim.schemas.json_schema("trial")`. To add a format, see the docstring of
`ciksim.schemas` (declare a schema, read through `validate`/`read_table`, `register` it).
This page is generated: `python -m ciksim.schemas docs`.

Uploads to the web page (`ciksim serve`) are these same formats, checked by the same
readers when the file arrives (the error shows next to the upload; nothing runs): a lysis
plate (lysis), culture counts (counts), a trial spec (trial or allo-trial; one naming other
files is refused, since the page cannot see them), evidence (evidence, or allo-evidence
for the allo calibration), a cohort (cohort) and its
study file (study). Each upload is at most 5 MiB and kept in the session's own folder.

## Limits

| limit | value | unit | what it bounds |
|---|---|---|---|
"""


def _type(prop: dict[str, Any], defs: dict[str, Any] | None = None) -> str:
    if "anyOf" in prop:
        return " or ".join(_type(p, defs) for p in prop["anyOf"] if p.get("type") != "null")
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        target = (defs or {}).get(name, {})
        return _type(target) if "enum" in target else f"table `{name}`"
    if "enum" in prop:
        return " / ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']!r}`"
    t = prop.get("type", "any")
    if t == "array":
        return f"array of {_type(prop.get('items', {}), defs)}"
    if t == "object":
        extra = prop.get("additionalProperties")
        return f"table of {_type(extra, defs)}" if isinstance(extra, dict) else "table"
    return str(t)


def _bounds(prop: dict[str, Any]) -> str:
    parts = []
    for p in [prop, *prop.get("anyOf", [])]:
        for key, sym in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                         ("exclusiveMaximum", "<"), ("minItems", "entries >="),
                         ("maxItems", "entries <="), ("maxLength", "length <=")):
            if key in p:
                parts.append(f"{sym} {p[key]:g}" if isinstance(p[key], float)
                             else f"{sym} {p[key]}")
        if "x-limit" in p:
            parts.append(f"limit `{p['x-limit']}`")
    return ", ".join(dict.fromkeys(parts))


def _table(schema: dict[str, Any], title: str, skip_many: bool = False,
           defs: dict[str, Any] | None = None) -> list[str]:
    if "enum" in schema:  # a named choice, shown where it is used
        return []
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    lines = [f"**{title}**" + (f": {schema['description']}" if schema.get("description")
                               else ""), ""]
    if skip_many and len(props) > 25:
        lines += [f"{len(props)} optional fields: every parameter the model declares, by "
                  "name, each a number in the parameter's unit or a quantity, inside its "
                  "plausible range (see `docs/models/`).", ""]
        return lines
    lines += ["| field | type | required | bounds | default |", "|---|---|---|---|---|"]
    for name, prop in props.items():
        if prop.get("default") is None:
            default = ""
        elif isinstance(prop["default"], dict):
            default = "(table)"
        else:
            default = f"`{json.dumps(prop['default'])}`"
        lines.append(f"| `{name}` | {_type(prop, defs)} | {'yes' if name in required else ''} | "
                     f"{_bounds(prop)} | {default} |")
    return [*lines, ""]


def render() -> str:
    """The whole of ``docs/formats.md``."""
    out = [HEADER.rstrip("\n")]
    for lim in LIMITS.values():
        out.append(f"| `{lim.name}` | {lim.value:g} | {lim.unit} | {lim.reason} |")
    out.append("")
    for name, fmt in formats().items():
        schema = fmt.json_schema()
        out += [f"## {name} ({fmt.kind.upper()})", "", fmt.summary, "",
                f"JSON Schema: [`schemas/{name}.schema.json`](schemas/{name}.schema.json)", ""]
        if fmt.kind == "csv":
            out += ["One row per line, a header naming the columns (any order); every column "
                    "below must be present, unknown columns and rows with extra fields are "
                    "refused" + (" (except the optional columns named in the summary)"
                                 if schema.get("additionalProperties") else "") + ".", ""]
        defs = schema.get("$defs", {})
        out += _table(schema, "top level" if fmt.kind == "toml" else "columns", defs=defs)
        for sub, sub_schema in defs.items():
            out += _table(sub_schema, f"`{sub}`", skip_many=True, defs=defs)
        fence = "toml" if fmt.kind == "toml" else "csv"
        out += ["Example:", "", f"```{fence}", fmt.example.rstrip("\n"), "```", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def write(folder: str | Path) -> list[Path]:
    """Write ``formats.md`` and ``schemas/<name>.schema.json`` into ``folder``."""
    root = Path(folder)
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    written = [root / "formats.md"]
    written[0].write_text(render(), encoding="utf-8")
    for name, fmt in formats().items():
        path = root / "schemas" / f"{name}.schema.json"
        path.write_text(json.dumps(fmt.json_schema(), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written

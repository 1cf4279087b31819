"""Fuzz suite: every input format, generated from its schema and mutated (wrong types,
NaN/inf, huge, empty, binary, deep nesting), checked through the real CLI (``ciksim schema
NAME --check FILE``, which reads a file exactly as the commands do). A file is either
valid (exit 0) or refused with exit status 2 and one error line: never a traceback, never
a hang (hypothesis' per-example deadline, profiles in conftest.py), never a file written."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from ciksim.cli import app
from ciksim.schemas import formats

FORMATS = formats()
TOML = sorted(n for n, f in FORMATS.items() if f.kind == "toml")
CSV = sorted(n for n, f in FORMATS.items() if f.kind == "csv")
QUANTITIES = ["500 IU/mL", "2e6 cells/mL", "1 1/hour", "0.5", "70 kg", "3 ** 9 ** 9 IU/mL",
              "1e300 cells/mL", "-5 IU/mL", "abc", "nan IU/mL", "5 parsecs"]
BAD = [None, True, False, 0, -1, 1.5, 2**70, 1e300, -1e300, math.nan, math.inf, -math.inf,
       "", "no", "\x00\xff\ufffe", "3 ** 9 ** 9 IU/mL", [], [1], {}, {"x": 1}, [[[[1]]]]]


# ---- strategies derived from the JSON Schema of each format ---------------------------------

def from_schema(node: dict[str, Any], defs: dict[str, Any], depth: int = 0
                ) -> st.SearchStrategy[Any]:
    """Values that (mostly) satisfy a JSON Schema node: bounds, enums, required fields."""
    if "$ref" in node:
        return from_schema(defs[node["$ref"].rsplit("/", 1)[-1]], defs, depth)
    if "anyOf" in node:
        options = [p for p in node["anyOf"] if p.get("type") != "null"]
        return st.one_of([from_schema(p, defs, depth) for p in options])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    kind = node.get("type")
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        lo = node.get("minimum", node.get("exclusiveMinimum", -10) + 1
                      if "exclusiveMinimum" in node else -10)
        return st.integers(int(lo), int(min(node.get("maximum", 1000), lo + 1000)))
    if kind == "number":
        lo = node.get("minimum", node.get("exclusiveMinimum", -1e3))
        hi = node.get("maximum", node.get("exclusiveMaximum", 1e6))
        return st.floats(lo, hi, allow_nan=False, allow_infinity=False,
                         exclude_min="exclusiveMinimum" in node,
                         exclude_max="exclusiveMaximum" in node)
    if kind == "string":
        return st.one_of(st.sampled_from(QUANTITIES), st.text(max_size=12))
    if kind == "array":
        items = from_schema(node.get("items", {}), defs, depth + 1)
        return st.lists(items, min_size=node.get("minItems", 0),
                        max_size=min(node.get("maxItems", 3), 3))
    if kind == "object" or "properties" in node:
        if depth > 4:
            return st.just({})
        props = node.get("properties", {})
        required = set(node.get("required", []))
        if props:
            return st.fixed_dictionaries(
                {k: from_schema(v, defs, depth + 1) for k, v in props.items() if k in required},
                optional={k: from_schema(v, defs, depth + 1) for k, v in props.items()
                          if k not in required})
        extra = node.get("additionalProperties")
        values = from_schema(extra, defs, depth + 1) if isinstance(extra, dict) else st.none()
        return st.dictionaries(st.sampled_from(["IL2", "IFNg", "weight", "x"]), values,
                               max_size=2)
    return st.sampled_from(BAD)


def schema_strategy(name: str) -> st.SearchStrategy[Any]:
    schema = FORMATS[name].json_schema()
    return from_schema(schema, schema.get("$defs", {}))


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with one value somewhere replaced by a bad one (or a key added/removed)."""
    if not isinstance(base, dict | list) or not base or draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(BAD))
    keys = list(base) if isinstance(base, dict) else list(range(len(base)))
    key = draw(st.sampled_from(keys))
    out = dict(base) if isinstance(base, dict) else list(base)
    action = draw(st.integers(0, 5))
    if action == 0 and isinstance(out, dict):
        del out[key]
    elif action == 1 and isinstance(out, dict):
        out[draw(st.sampled_from(["extra", "näme", "1"]))] = draw(st.sampled_from(BAD))
    else:
        out[key] = draw(mutated(base[key]))
    return out


# ---- writing documents ---------------------------------------------------------------------

def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") \
            if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(x)}" for k, x in v.items()
                               if x is not None) + "}"
    return '""'


def toml_text(doc: Any) -> str:
    if not isinstance(doc, dict):
        return f"value = {toml_value(doc)}\n"
    return "".join(f"{json.dumps(str(k))} = {toml_value(v)}\n" for k, v in doc.items()
                   if v is not None)


def csv_text(rows: list[dict[str, Any]], header: list[str]) -> str:
    lines = [",".join(header)]
    for row in rows:
        lines.append(",".join("" if row.get(c) is None else str(row.get(c)) for c in header))
    return "\n".join(lines) + "\n"


# ---- the property --------------------------------------------------------------------------

RUNNER = CliRunner()


def assert_clean(name: str, path: Path) -> None:
    """``ciksim schema NAME --check FILE`` exits 0 (valid) or 2 with one ``error:`` line on
    stderr (no traceback), and writes nothing."""
    before = sorted(path.parent.rglob("*"))
    result = RUNNER.invoke(app, ["schema", name, "--check", str(path)])
    if result.exit_code != 0:
        assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), result.exception
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.output
    assert sorted(path.parent.rglob("*")) == before, "checking an input must write nothing"


def _file(tmp_path_factory: pytest.TempPathFactory, name: str, data: str | bytes) -> Path:
    folder = tmp_path_factory.mktemp(f"fuzz-{name}")
    path = folder / f"input.{FORMATS[name].kind}"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8", errors="surrogatepass")
    return path


@pytest.fixture(scope="module", autouse=True)
def _warm_readers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Read every format's example once first: imports and model compilation are paid
    here, not by the first example under hypothesis' per-example deadline."""
    for name, fmt in FORMATS.items():
        FORMATS[name].reader(_file(tmp_path_factory, name, fmt.example))


RAW = [b"", b"\xef\xbb\xbf", bytes(range(256)) * 3, b"\xff\xfe\x00garbage\n",
       b"x = " + b"[" * 50_000 + b"]" * 50_000, b"a = {" * 5000, b"\x00" * 100]


@pytest.mark.parametrize("name", TOML)
@given(data=st.data())
def test_toml_formats_from_schema_and_mutations(tmp_path_factory, name, data):
    example = tomllib.loads(FORMATS[name].example)
    doc = data.draw(st.one_of(schema_strategy(name), mutated(example)))
    assert_clean(name, _file(tmp_path_factory, name, toml_text(doc)))


@pytest.mark.parametrize("name", CSV)
@given(data=st.data())
def test_csv_formats_from_schema_and_mutations(tmp_path_factory, name, data):
    schema = FORMATS[name].schema()
    header = list(schema.model_fields)
    lines = FORMATS[name].example.splitlines()
    rows = [dict(zip(lines[0].split(","), line.split(","), strict=False)) for line in lines[1:]]
    cell = st.one_of(st.sampled_from(["abc", "nan", "inf", "-1", "1e400", "", "0", "1e300",
                                      "experimental", "k562", "total_cells", "\x00\xff",
                                      "5,6", '"']), st.text(max_size=8))
    row_strategy = st.fixed_dictionaries({c: cell for c in header})
    kind = data.draw(st.integers(0, 3))
    if kind == 0:  # schema-derived rows
        text = csv_text(data.draw(st.lists(row_strategy, min_size=0, max_size=4)), header)
    elif kind == 1:  # the example with one cell changed
        i = data.draw(st.integers(0, len(rows) - 1))
        col = data.draw(st.sampled_from(header))
        rows[i] = {**rows[i], col: data.draw(cell)}
        text = csv_text(rows, header)
    elif kind == 2:  # duplicated, extra or missing fields, extra columns
        extra = data.draw(st.sampled_from(["dup", "field", "short", "column", "header"]))
        body = lines[1:]
        if extra == "dup":
            body = [*body, body[-1]]
        elif extra == "field":
            body = [*body[:-1], body[-1] + ",9"]
        elif extra == "short":
            body = [*body[:-1], body[-1].rsplit(",", 1)[0]]
        head = lines[0] + (",colour" if extra == "column" else "")
        if extra == "header":
            head = head.upper()
        text = "\n".join([head, *body]) + "\n"
    else:
        text = ""
    payload: str | bytes = text if kind < 3 else data.draw(st.sampled_from(RAW))
    assert_clean(name, _file(tmp_path_factory, name, payload))


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("raw", RAW, ids=["empty", "bom", "binary", "utf16ish", "deep",
                                          "deep-inline", "nul"])
def test_raw_bytes(tmp_path_factory, name, raw):
    assert_clean(name, _file(tmp_path_factory, name, raw))

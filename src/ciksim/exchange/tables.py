"""Result tables that carry their units: Parquet with Arrow field metadata, and the data
dictionary (``describe`` job).

Every column ciksim writes has a unit and a description: from the table's own
``df.attrs["units"]`` / ``df.attrs["descriptions"]`` where a job sets them, else from the
shipped data dictionary (``data/dictionary/columns.toml``), else from the declaration of a
model parameter or variable of that name. Parquet files keep them as Arrow field metadata
(keys ``unit`` and ``description``), readable with pyarrow alone (and by R's arrow, polars,
DuckDB), and the schema metadata says which ciksim wrote it and that a month is 30.4375 days.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from ciksim._version import __version__
from ciksim.errors import DataError

DAYS_PER_MONTH = 365.25 / 12  # 30.4375
MONTH_NOTE = "month = 30.4375 days (365.25 / 12)"
_SUFFIXES = {"_p05": "5th percentile over donors of ", "_p95": "95th percentile over donors of "}


@cache
def dictionary() -> MappingProxyType[str, dict[str, str]]:
    """The shipped data dictionary: column name -> {unit, description}."""
    text = (resources.files("ciksim.data") / "dictionary" / "columns.toml").read_text("utf-8")
    return MappingProxyType(tomllib.loads(text))


@cache
def _declared() -> dict[str, tuple[str, str]]:
    """Units and descriptions of the models' parameters and variables, by name."""
    from ciksim.docs import MODELS

    out: dict[str, tuple[str, str]] = {}
    for build in MODELS.values():
        model = build()
        for table in (model.parameters, model.species, model.assignments):
            for item in table:
                out.setdefault(item.name, (item.unit, item.description))
    return out


def column_info(name: str, attrs: dict[str, Any] | None = None) -> tuple[str, str]:
    """(unit, description) of a column; ``attrs`` are a DataFrame's ``attrs``."""
    attrs = attrs or {}
    base, prefix = name, ""
    for suffix, text in _SUFFIXES.items():
        if name.endswith(suffix):
            base, prefix = name[: -len(suffix)], text
    unit = (attrs.get("units") or {}).get(name) or (attrs.get("units") or {}).get(base)
    desc = (attrs.get("descriptions") or {}).get(name)
    entry = dictionary().get(base)
    declared = _declared().get(base)
    if entry is not None:
        unit = unit or entry["unit"]
        desc = desc or prefix + entry["description"]
    elif declared is not None:
        unit = unit or declared[0]
        desc = desc or prefix + declared[1]
    return unit or "unknown", desc or "not in the data dictionary"


def arrow_table(df: pd.DataFrame):
    """A pyarrow Table of ``df`` with each field's ``unit`` and ``description`` metadata."""
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = []
    for f in table.schema:
        unit, desc = column_info(f.name, df.attrs)
        fields.append(f.with_metadata({"unit": unit, "description": desc}))
    meta = {**(table.schema.metadata or {}), b"ciksim_version": __version__.encode(),
            b"time_units": MONTH_NOTE.encode()}
    return table.cast(pa.schema(fields, metadata=meta))


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as Parquet with units and descriptions, atomically."""
    import pyarrow.parquet as pq

    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    pq.write_table(arrow_table(df), tmp)
    os.replace(tmp, p)
    return p


def parquet_units(path: str | Path) -> dict[str, str]:
    """Each column's unit as stored in a Parquet file (pyarrow only)."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return {f.name: (f.metadata or {}).get(b"unit", b"").decode() for f in schema}


@dataclass(frozen=True)
class DataDictionary:
    """Columns of the tables in a results folder: file, column, type, unit, description."""

    folder: Path
    table: pd.DataFrame

    def to_markdown(self) -> str:
        lines = [f"# Data dictionary of {self.folder}", "", MONTH_NOTE + ".", ""]
        for file, rows in self.table.groupby("file", sort=False):
            lines += [f"## {file}", "", "| column | type | unit | description |",
                      "|---|---|---|---|"]
            lines += [f"| {r.column} | {r.type} | {r.unit} | {r.description} |"
                      for r in rows.itertuples()]
            lines.append("")
        return "\n".join(lines)

    def write(self, out: str | Path | None = None) -> Path:
        """Write ``data_dictionary.csv`` and ``.md`` (into the described folder by default)."""
        from ciksim.io import staged_output

        dest = Path(out) if out is not None else self.folder
        with staged_output(dest) as stage:
            stage.table(self.table, "data_dictionary", "csv")
            stage.text(self.to_markdown() + "\n", "data_dictionary.md")
        return dest / "data_dictionary.md"


def describe(folder: str | Path) -> DataDictionary:
    """The data dictionary of a results folder: every ``.parquet`` and ``.csv`` table in it
    (not in subfolders), its columns with type, unit and description. Parquet files give
    their own metadata; CSV columns are looked up in the dictionary."""
    import pyarrow.parquet as pq

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"describe: {root} is not a folder; give a results folder "
                        "(the --out of a ciksim command)")
    rows = []
    for path in sorted(root.iterdir()):
        if path.name.startswith(("data_dictionary", ".")):
            continue
        if path.suffix == ".parquet":
            for f in pq.read_schema(path):
                meta = f.metadata or {}
                unit, desc = column_info(f.name)
                rows.append((path.name, f.name, str(f.type),
                             meta.get(b"unit", unit.encode()).decode(),
                             meta.get(b"description", desc.encode()).decode()))
        elif path.suffix == ".csv":
            df = pd.read_csv(path, nrows=100)
            for col in df.columns:
                unit, desc = column_info(str(col))
                rows.append((path.name, str(col), str(df[col].dtype), unit, desc))
    if not rows:
        raise DataError(f"describe: {root} holds no .parquet or .csv tables")
    return DataDictionary(root, pd.DataFrame(rows, columns=["file", "column", "type", "unit",
                                                            "description"]))


def dictionary_markdown() -> str:
    """The shipped data dictionary as a Markdown table (``docs/data.md``)."""
    lines = ["| column | unit | description |", "|---|---|---|"]
    lines += [f"| {name} | {e['unit']} | {e['description']} |"
              for name, e in sorted(dictionary().items())]
    return "\n".join(lines)


__all__ = ["DAYS_PER_MONTH", "DataDictionary", "arrow_table", "column_info", "describe",
           "dictionary", "dictionary_markdown", "parquet_units", "write_parquet"]

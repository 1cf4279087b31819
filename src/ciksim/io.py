"""Writing outputs atomically: all files of a command appear together or not at all."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ciksim.errors import DataError


class Staging:
    """A temporary folder beside the destination; files move into place on success."""

    def __init__(self, tmp: Path) -> None:
        self.path = tmp

    def table(self, df: pd.DataFrame, name: str, fmt: str = "csv") -> Path:
        """Write ``df`` as ``name.csv`` or ``name.parquet``; returns the staged path."""
        if fmt not in ("csv", "parquet"):
            raise DataError(f"format: use csv or parquet, not {fmt!r}")
        path = self.path / f"{name}.{fmt}"
        if fmt == "csv":
            df.to_csv(path, index=False)
        else:
            import pyarrow.parquet as pq

            from ciksim.exchange.tables import arrow_table

            pq.write_table(arrow_table(df), path)  # units and descriptions per column
        return path

    def json(self, data: Any, name: str) -> Path:
        path = self.path / f"{name}.json"
        path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        return path

    def figure(self, fig: Any, name: str) -> Path:
        """Save a Figure (or the figure of an Axes) as ``name.png`` and close it."""
        from ciksim.report.plots import pyplot

        fig = getattr(fig, "figure", fig)
        path = self.path / f"{name}.png"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        pyplot().close(fig)
        return path


@contextmanager
def staged_output(out: str | Path) -> Iterator[Staging]:
    """Stage files for folder ``out``; on success move them in (each with ``os.replace``).

    If the block raises, the staged files are deleted and ``out`` is left as it was.
    """
    dest = Path(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield Staging(tmp)
        dest.mkdir(parents=True, exist_ok=True)
        for item in sorted(tmp.iterdir()):
            os.replace(item, dest / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def table_and_figure(out: str | Path, table: pd.DataFrame, name: str,
                     draw: Callable[[pd.DataFrame], Any]) -> None:
    """Write ``name.csv`` and ``name.png`` (``draw(table)`` returns an Axes or a Figure)
    into ``out``, together or not at all."""
    with staged_output(out) as stage:
        stage.table(table, name, "csv")
        stage.figure(draw(table), name)


def _jsonable(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def read_tidy_csv(path: str | Path, required: Sequence[str], layout: str
                  ) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows of a tidy CSV as (``"FILE, line N"``, {column: stripped text}).

    Raises DataError if the file is missing, lacks a ``required`` column (``layout`` shows
    the expected header) or has no data rows.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{p}: missing column(s) {', '.join(missing)}; the header must be "
                            f"{layout}")
        empty = True
        for line, raw in enumerate(reader, start=2):
            empty = False
            yield f"{p}, line {line}", {k.strip(): (v or "").strip() for k, v in raw.items()
                                        if k is not None}
        if empty:
            raise DataError(f"{p}: no data rows")

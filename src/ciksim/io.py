"""Writing outputs atomically: all files of a command appear together or not at all."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from ciksim.errors import DataError

TABLE_FORMATS = ("csv", "parquet")
FIGURE_FORMATS = ("png", "svg")


def check_formats(fmt: str, figures: Sequence[str] = ("png",)) -> None:
    """Raise DataError unless ``fmt`` is a table format and ``figures`` are figure formats."""
    if fmt not in TABLE_FORMATS:
        raise DataError(f"format: use csv or parquet, not {fmt!r}")
    bad = [f for f in figures if f not in FIGURE_FORMATS]
    if bad or not figures:
        raise DataError(f"figure formats: use png and/or svg, not {list(figures)!r}")


class Staging:
    """A temporary folder beside the destination; files move into place on success.

    ``fmt`` is the default table format; every figure is saved in each of ``figures``.
    ``files`` lists the names written so far.
    """

    def __init__(self, tmp: Path, fmt: str = "csv", figures: Sequence[str] = ("png",)) -> None:
        check_formats(fmt, figures)
        self.path = tmp
        self.fmt = fmt
        self.figures = tuple(figures)
        self.files: list[str] = []

    def _add(self, name: str) -> Path:
        self.files.append(name)
        return self.path / name

    def table(self, df: pd.DataFrame, name: str, fmt: str | None = None) -> Path:
        """Write ``df`` as ``name.csv`` or ``name.parquet``; returns the staged path."""
        fmt = fmt or self.fmt
        check_formats(fmt)
        path = self._add(f"{name}.{fmt}")
        if fmt == "csv":
            df.to_csv(path, index=False)
        else:
            import pyarrow.parquet as pq

            from ciksim.exchange.tables import arrow_table

            pq.write_table(arrow_table(df), path)  # units and descriptions per column
        return path

    def json(self, data: Any, name: str) -> Path:
        path = self._add(f"{name}.json")
        path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n", encoding="utf-8")
        return path

    def text(self, text: str, name: str) -> Path:
        """Write ``text`` (UTF-8) as the file ``name`` (name includes its extension)."""
        path = self._add(name)
        path.write_text(text, encoding="utf-8")
        return path

    def figure(self, fig: Any, name: str) -> Path:
        """Save a Figure (or the figure of an Axes) as ``name.png`` (and ``.svg`` when asked)
        and close it; returns the first path."""
        from ciksim.report.plots import literal_text, pyplot

        fig = literal_text(getattr(fig, "figure", fig))
        paths = []
        for ext in self.figures:
            paths.append(self._add(f"{name}.{ext}"))
            fig.savefig(paths[-1], dpi=150, bbox_inches="tight")
        pyplot().close(fig)
        return paths[0]


def check_out_folder(out: str | Path) -> Path:
    """``out`` as a Path if it can be an output folder (missing, or a folder, under a
    folder); DataError naming ``--out`` otherwise. Checked before any work starts."""
    dest = Path(out)
    if dest.exists() and not dest.is_dir():
        raise DataError(f"--out {str(dest)!r} names an existing file; give a folder (it is "
                        "created if missing)")
    for parent in dest.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"--out {str(dest)!r}: {str(parent)!r} is a file, not a "
                                "folder; give another --out")
            break
    return dest


@contextmanager
def staged_output(out: str | Path, fmt: str = "csv", figures: Sequence[str] = ("png",)
                  ) -> Iterator[Staging]:
    """Stage files for folder ``out``; on success move them in (each with ``os.replace``).

    If the block raises, the staged files are deleted and ``out`` is left as it was.
    """
    check_formats(fmt, figures)
    dest = check_out_folder(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield Staging(tmp, fmt, figures)
        dest.mkdir(parents=True, exist_ok=True)
        for item in sorted(tmp.iterdir()):
            os.replace(item, dest / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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

"""What every job returns: a result that can summarise itself, report and write its folder."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ciksim.io import Staging, staged_output


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars made Python numbers and NaN/inf made None (valid JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        return jsonable(obj.item())
    return obj


class JobResult(ABC):
    """The result of one job. Subclasses fill :meth:`stage` with their tables and figures."""

    #: File name of the HTML report in the job's folder.
    report_name: ClassVar[str] = "report.html"

    @abstractmethod
    def summary(self) -> dict[str, Any]:
        """A JSON-able summary of the result (the CLI's ``--json`` output)."""

    @abstractmethod
    def report_html(self) -> str:
        """The self-contained HTML report (figures embedded)."""

    @abstractmethod
    def stage(self, stage: Staging) -> None:
        """Write the job's tables, figures and JSON into ``stage`` (not the report)."""

    def write(self, out: str | Path, fmt: str = "csv", figures: Sequence[str] = ("png",)
              ) -> list[str]:
        """Write the folder ``out`` (with the report) atomically; returns the file names.

        ``fmt``: table format, ``csv`` or ``parquet``; ``figures``: ``png`` and/or ``svg``.
        """
        with staged_output(out, fmt, figures) as stage:
            self.stage(stage)
            stage.text(self.report_html(), self.report_name)
        return stage.files

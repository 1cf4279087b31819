"""``ciksim validate``: every published target computed from the default models."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ciksim.cli.common import JsonFlag, console, emit, progress_bar, rich_table, verb

if TYPE_CHECKING:
    from ciksim.jobs.validation import ValidationResult


@verb()
def validate(
    out: Annotated[Path | None, typer.Option(help="Folder for validation.html and .json.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Compute every published target (C1-C9, K1-K8, P1-P8, T1-T2, T4-T5) from the default
    models."""
    from ciksim.jobs.validation import validation_job

    with progress_bar("validate", sys.stderr.isatty() and not as_json,
                      unit="targets") as update:
        res = validation_job(progress=update)
    emit(res, out, as_json, lambda: _print_checks(res))


def _print_checks(res: ValidationResult) -> None:
    from ciksim.report.validation import short_value

    rows = [[c.id, c.description[:60], short_value(c.value), c.range,
             "[green]pass[/]" if c.passed else "[red]FAIL[/]"] for _, c in res.checks]
    console.print(rich_table("Targets", ["id", "target", "model", "range", ""], rows))
    failed = res.failed
    console.print(f"{len(res.checks) - len(failed)} of {len(res.checks)} targets met"
                  + (f"; failed: {', '.join(failed)}" if failed else ""))

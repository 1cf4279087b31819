"""``ciksim validate``: every published target computed from the default models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ciksim.cli.common import HELP, JsonFlag, app, console, echo_json, guarded, rich_table, wrote


@app.command(context_settings=HELP)
@guarded
def validate(
    out: Annotated[Path | None, typer.Option(help="Folder for validation.html and .json.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Compute every published target (C1-C9, K1-K8, P1-P8, T1-T2, T4-T5) from the default
    models."""
    from ciksim.jobs.validation import validation_job
    from ciksim.report.validation import short_value

    res = validation_job(None if as_json else
                         lambda group: console.print(f"computing {group} targets ..."))
    if out is not None:
        files = res.write(out)
    if as_json:
        echo_json(res.summary())
        return
    rows = [[c.id, c.description[:60], short_value(c.value), c.range,
             "[green]pass[/]" if c.passed else "[red]FAIL[/]"] for _, c in res.checks]
    console.print(rich_table("Targets", ["id", "target", "model", "range", ""], rows))
    failed = res.failed
    console.print(f"{len(res.checks) - len(failed)} of {len(res.checks)} targets met"
                  + (f"; failed: {', '.join(failed)}" if failed else ""))
    if out is not None:
        wrote(out, files)

"""``ciksim schema``: the input formats, their JSON Schemas, and checking a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ciksim.cli.common import verb


@verb()
def schema(
    name: Annotated[str | None, typer.Argument(help="A format (omit to list them).")] = None,
    check: Annotated[Path | None, typer.Option(help="Validate this file against the format "
                                               "and exit (0: valid, 2: the first error).")]
    = None,
) -> None:
    """Print the JSON Schema of an input format (protocol, scenario, trial, target, lysis,
    counts), list the formats, or check a file: ``ciksim schema trial --check spec.toml``."""
    from ciksim.schemas import formats, json_schema_text

    fmts = formats()
    if name is None:
        for fmt in fmts.values():
            typer.echo(f"{fmt.name:10} {fmt.kind:5} {fmt.summary}")
        return
    text = json_schema_text(name)
    if check is None:
        typer.echo(text, nl=False)
        return
    fmts[name].reader(check)
    typer.echo(f"{check}: a valid {name} file")

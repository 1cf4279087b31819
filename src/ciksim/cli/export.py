"""``ciksim export ...``: models for other tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ciksim.cli.common import app, console, guarded

export_app = typer.Typer(help="Export models for other tools.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("sbml")
@guarded
def export_sbml(
    model: Annotated[str, typer.Argument(help="culture, killing or patient.")],
    protocol: Annotated[str | None, typer.Option(
        help="A culture protocol (culture), a scenario (patient) or a protocol TOML file.")]
    = None,
    with_cik: Annotated[bool, typer.Option("--with-cik", help="patient: add the default CIK "
                                                              "infusions.")] = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="SBML file (default: "
                                                                      "stdout).")] = None,
) -> None:
    """Write SBML Level 3 Version 2 of a model (and its protocol's events)."""
    from ciksim.jobs.export import sbml_job

    res = sbml_job(model, protocol=protocol, with_cik=with_cik)
    if output is None:
        typer.echo(res.text(), nl=False)
        return
    res.write(output)
    console.print(f"wrote {output} (SBML L3V2, {res.model.name}"
                  + (f", protocol {res.protocol.name}" if res.protocol else "") + ")")

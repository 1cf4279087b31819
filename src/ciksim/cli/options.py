"""Options several verbs share: one declaration each (type, flag, help); the default stays
with each verb. Used as ``from ciksim.cli import options as opt``, ``seed: opt.Seed = 0``."""

from __future__ import annotations

from typing import Annotated

import typer

Seed = Annotated[int, typer.Option(help="Random seed.")]
Scheduler = Annotated[str | None, typer.Option(help="Dask scheduler, tcp://HOST:PORT.")]
TableFormat = Annotated[str, typer.Option("--format", help="Table format: csv or parquet (with "
                                                           "units per column).")]
DataFormat = Annotated[str, typer.Option("--format", help="Data format: csv or parquet.")]
TargetsPerWell = Annotated[float, typer.Option(help="Target cells per well.")]
AssayHours = Annotated[float, typer.Option(help="Assay duration (hours).")]

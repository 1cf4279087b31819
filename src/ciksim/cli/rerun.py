"""``ciksim rerun FILE.toml``: run a job from its saved inputs (e.g. saved by the web page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ciksim.cli import options as opt
from ciksim.cli.common import JsonFlag, echo_json, verb, wrote


@verb()
def rerun(
    inputs: Annotated[Path, typer.Argument(help="Inputs TOML: job = NAME and an [inputs] "
                                                "table.")],
    out: Annotated[Path | None, typer.Option(help="Folder for the job's files and report.")]
    = None,
    fmt: opt.DataFormat = "csv",
    as_json: JsonFlag = False,
) -> None:
    """Rerun a job from an inputs file; prints its JSON summary and writes --out."""
    from ciksim.io import check_formats
    from ciksim.jobs.registry import load_inputs, run_job

    check_formats(fmt)
    name, values = load_inputs(inputs)
    res = run_job(name, values, base=inputs.resolve().parent, out=out)
    files = res.write(out, fmt) if out is not None else []
    if as_json or out is None:
        echo_json(res.summary())
    if out is not None and not as_json:
        wrote(out, files)

"""``ciksim trial``, ``ciksim trial power`` and ``ciksim run`` (the whole chain)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ciksim.cli.common import (
    HELP,
    JsonFlag,
    app,
    console,
    echo_json,
    guarded,
    progress_bar,
    rich_table,
    wrote,
)

if TYPE_CHECKING:
    from ciksim.jobs.trial import TrialResult


@app.command(context_settings=HELP)
@guarded
def trial(
    args: Annotated[list[str], typer.Argument(help="SPEC.toml, or: power SPEC.toml")],
    n_per_arm: Annotated[int | None, typer.Option(help="Patients per arm (overrides the "
                                                       "spec).")] = None,
    workers: Annotated[int | None, typer.Option(help="Local worker processes (default: "
                                                     "all cores).")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler, tcp://HOST:PORT.")]
    = None,
    out: Annotated[Path | None, typer.Option(help="Folder for chunks, tables, figures and "
                                                  "the HTML report.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted trial in --out.")]
    = False,
    chunk_size: Annotated[int | None, typer.Option(help="Patients per chunk.")] = None,
    n: Annotated[str, typer.Option("--n", help="power: patients per arm to try.")]
    = "20,40,80,160",
    repeats: Annotated[int, typer.Option(help="power: simulated trials per size.")] = 200,
    as_json: JsonFlag = False,
) -> None:
    """Run a virtual trial: RFS per arm, hazard ratio, log-rank; or its power curve."""
    from ciksim.errors import DataError
    from ciksim.jobs.trial import parse_sizes, power_job, trial_job

    if args[0] == "power":
        if len(args) != 2:
            raise DataError("usage: ciksim trial power SPEC.toml --n 20,40,80 --repeats 200")
        sizes = parse_sizes(n, "--n")
        if repeats < 1:
            raise DataError("--repeats must be >= 1")
        with progress_bar("trial power", not as_json) as update:
            res = power_job(Path(args[1]), sizes=sizes, repeats=repeats, workers=workers,
                            scheduler=scheduler, progress=update)
        if out is not None:
            files = res.write(out)
        if as_json:
            echo_json(res.summary())
            return
        rows = [[str(r.n_per_arm), f"{100 * r.power:.0f}%",
                 f"{100 * r.power_ci_low:.0f}-{100 * r.power_ci_high:.0f}%"]
                for r in res.table.itertuples()]
        arms = res.spec.arms
        console.print(rich_table(f"Power: {arms[1].name} vs {arms[0].name}, log-rank "
                                 f"p < 0.05, {repeats} trials per size",
                                 ["patients per arm", "power", "95% CI"], rows))
        if out is not None:
            wrote(out, files)
        return
    if len(args) != 1:
        raise DataError(f"unexpected argument(s) {args[1:]}; give one SPEC.toml")
    if resume and out is None:
        raise DataError("--resume needs the --out folder of the interrupted trial")
    if n_per_arm is not None and n_per_arm < 1:
        raise DataError("--n-per-arm must be >= 1")
    with progress_bar("trial", sys.stderr.isatty() or not as_json) as update:
        res = trial_job(Path(args[0]), n_per_arm=n_per_arm, workers=workers,
                        scheduler=scheduler, out=out, resume=resume, chunk_size=chunk_size,
                        progress=update)
    if out is not None:
        files = res.write(out)
    if as_json:
        echo_json(res.summary())
        return
    print_trial(res)
    if out is not None:
        wrote(out, ["patients.parquet", "manifest.json", *files])


@app.command(name="run", context_settings=HELP)
@guarded
def run_all(
    spec: Annotated[Path, typer.Argument(help="Trial specification (TOML).")],
    out: Annotated[Path, typer.Option(help="Folder for everything.")] = Path("out"),
    workers: Annotated[int | None, typer.Option(help="Local worker processes.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler, tcp://HOST:PORT.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """The whole chain: culture the product, check it kills, run the trial, one report."""
    from ciksim.jobs.trial import chain_job

    with progress_bar("trial", sys.stderr.isatty() and not as_json) as update:
        res = chain_job(spec, out=out, workers=workers, scheduler=scheduler, progress=update,
                        on_step=None if as_json else console.print)
    files = res.write(out)
    if as_json:
        echo_json(res.summary())
        return
    print_trial(res.trial)
    wrote(out, [*files, "trial/"])


def print_trial(res: TrialResult) -> None:
    """The per-arm table, the comparisons and how the patients were run."""
    from ciksim.report.trial import ARM_COLUMNS, arm_rows, comparison_text

    spec, summary, m = res.spec, res.analysis, res.run.manifest
    console.print(rich_table(f"{spec.name}: {spec.patients_per_arm} patients per arm, "
                             f"{spec.follow_up_years:g} years, seed {spec.seed}",
                             ARM_COLUMNS, arm_rows(summary)))
    for c in summary["comparisons"]:
        console.print(f"  {comparison_text(c)}")
    if summary["failed_patients"]:
        console.print(f"[yellow]warning:[/] {summary['failed_patients']} patient(s) failed; "
                      "see the status column")
    if m["chunk_seconds"]:
        console.print(f"  {m['patients']} patients in {m['wall_seconds']:.1f} s "
                      f"({m['backend']})")
    else:
        console.print(f"  {m['patients']} patients reused from the finished run in --out "
                      "(same specification and ciksim version)")

"""``ciksim calibrate patient`` (the in vivo CIK effect) and ``ciksim calibrate allo`` (the
alloreactivity after allo-HSCT): fit to clinical evidence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from ciksim.cli import options as opt
from ciksim.cli.common import JsonFlag, app, console, emit, err_console, num, rich_table, verb

calibrate_app = typer.Typer(help="Calibrate models to clinical evidence.",
                            no_args_is_help=True)
app.add_typer(calibrate_app, name="calibrate")
Particles = Annotated[int, typer.Option(help="Particles per generation.")]
Generations = Annotated[int, typer.Option(help="ABC-SMC generations (at most).")]
Workers = Annotated[int, typer.Option(help="Local worker processes.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")]
Out = Annotated[Path, typer.Option(help="Folder of the run (database, posterior, report).")]
#: ``ciksim.evidence.allo.DEFAULT_PARAMETERS`` as the help shows it (that module is imported
#: only when a calibration runs; tests/test_evidence_allo.py checks the two agree).
ALLO_DEFAULTS = "f_allo_t,k_dmg,apc_floor,cik_allo_rel,cik_tox_rel,k_gvl,start_burden"


@verb(calibrate_app, "patient")
def calibrate_patient(
    evidence: Annotated[Path | None, typer.Option(help="Evidence TOML (default: the shipped "
                                                       "evidence).")] = None,
    add_cohort: Annotated[Path | None, typer.Option(help="Your cohort CSV: patient,arm,"
                                                         "time_months,event.")] = None,
    study: Annotated[Path | None, typer.Option(help="TOML describing the cohort's design.")]
    = None,
    particles: Particles = 200,
    generations: Generations = 12,
    min_epsilon: Annotated[float | None, typer.Option(
        help="Final tolerance: stop at the first generation with this distance (default: "
             "sqrt of the number of observed summaries).")] = None,
    workers: Workers = 1,
    scheduler: opt.Scheduler = None,
    seed: opt.Seed = 0,
    resume: Resume = False,
    out: Out = Path("out/calibration"),
    as_json: JsonFlag = False,
) -> None:
    """Calibrate the in vivo CIK effect (ABC-SMC) to the clinical evidence."""
    from ciksim.jobs.calibration import calibration_job

    _calibrate(calibration_job, "Posterior of the in vivo effect", out, as_json,
               evidence=evidence, add_cohort=add_cohort, study=study, particles=particles,
               generations=generations, min_epsilon=min_epsilon, workers=workers,
               scheduler=scheduler, seed=seed, resume=resume)


@verb(calibrate_app, "allo")
def calibrate_allo(
    evidence: Annotated[Path | None, typer.Option(help="Allo evidence TOML (default: the "
                                                       "shipped allo.toml).")] = None,
    parameters: Annotated[str | None, typer.Option(
        help=f"Comma-separated allo-model parameters to calibrate (default: "
             f"{ALLO_DEFAULTS}).")] = None,
    particles: Particles = 60,
    generations: Generations = 3,
    min_epsilon: Annotated[float | None, typer.Option(help="Stop when the tolerance reaches "
                                                           "this distance.")] = None,
    workers: Workers = 1,
    scheduler: opt.Scheduler = None,
    seed: opt.Seed = 0,
    resume: Resume = False,
    out: Out = Path("out/calibration-allo"),
    as_json: JsonFlag = False,
) -> None:
    """Calibrate the alloreactivity of the post-transplant model (ABC-SMC) to DLI and
    donor-CIK studies."""
    from ciksim.jobs.calibration import allo_calibration_job

    names = None if parameters is None else [p.strip() for p in parameters.split(",")
                                             if p.strip()]
    _calibrate(allo_calibration_job, "Posterior of the alloreactivity parameters", out,
               as_json, evidence=evidence, parameters=names, particles=particles,
               generations=generations, min_epsilon=min_epsilon, workers=workers,
               scheduler=scheduler, seed=seed, resume=resume)


def _calibrate(job: Callable[..., Any], title: str, out: Path, as_json: bool,
               **options: Any) -> None:
    """Run the calibration ``job`` into ``out`` (progress lines on stderr unless
    ``--json``), then print its posterior under ``title``."""

    def progress(line: str) -> None:
        err_console.print(f"[dim]{line}[/]", highlight=False)

    res = job(out=out, progress=None if as_json else progress, **options)
    emit(res, out, as_json, lambda: _print(res.summary(), title))


def _print(s: dict, title: str) -> None:
    console.print(rich_table(
        title, ["parameter", "kind", "median", "90% interval", "prior 90%", "width ratio"],
        [[p["parameter"], p["kind"], num(p["median"]), f"{num(p['q05'])}-{num(p['q95'])}",
          f"{num(p['prior_q05'])}-{num(p['prior_q95'])}", num(p["width_ratio"], ".2f")]
         for p in s["parameters"]]))
    console.print(rich_table(
        "Posterior-predictive check", ["study summary", "observed", "simulated 90%", "ok"],
        [[c["summary"], num(c["observed"]), f"{num(c['q05'])}-{num(c['q95'])}",
          "yes" if c["covered"] else "NO"] for c in s["checks"]]))

"""``ciksim trial``, ``ciksim trial power`` and ``ciksim run`` (the whole chain)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ciksim.cli import options as opt
from ciksim.cli.common import (
    JsonFlag,
    console,
    echo_json,
    emit,
    progress_bar,
    rich_table,
    verb,
    wrote,
)

if TYPE_CHECKING:
    from ciksim.jobs.trial import PowerResult, TrialResult

NPerArm = Annotated[int | None, typer.Option(help="Patients per arm (overrides the spec).")]
SpecSeed = Annotated[int | None, typer.Option(help="Seed (overrides the spec's).")]
Cohort = Annotated[int | None, typer.Option(
    help="Virtual patients per arm per draw for the true effect (default 2000).")]


@verb()
def trial(
    args: Annotated[list[str], typer.Argument(
        help="SPEC.toml; or: assurance SPEC.toml (assurance curve over the posterior); or: "
             "power SPEC.toml (conditional power at the spec's fixed parameters)")],
    n_per_arm: NPerArm = None,
    workers: Annotated[int | None, typer.Option(help="Local worker processes (default: "
                                                     "all cores).")] = None,
    scheduler: opt.Scheduler = None,
    out: Annotated[Path | None, typer.Option(help="Folder for chunks, tables, figures and "
                                                  "the HTML report.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted trial in --out.")]
    = False,
    chunk_size: Annotated[int | None, typer.Option(help="Patients per chunk.")] = None,
    n: Annotated[str, typer.Option("--n", help="assurance/power: patients per arm to try.")]
    = "20,40,80,160",
    repeats: Annotated[int, typer.Option(help="power: simulated trials per size.")] = 200,
    seed: SpecSeed = None,
    posterior: Annotated[Path | None, typer.Option(
        help="Calibrated posterior (posterior.parquet or its folder); default: the spec's "
             "[posterior] source, the shipped posterior.")] = None,
    prior: Annotated[bool, typer.Option("--prior", help="Run over the prior instead of the "
                                                        "posterior.")] = False,
    draws: Annotated[int | None, typer.Option(
        help="Parameter draws for the decision outputs (0: none; default: the spec's, 200).")]
    = None,
    cohort: Cohort = None,
    arm: Annotated[str | None, typer.Option(
        "--arm", help="Arms compared: TREATED or CONTROL,TREATED (default: the first two).")]
    = None,
    fmt: opt.TableFormat = "csv",
    as_json: JsonFlag = False,
) -> None:
    """Run a virtual trial: survival per arm, the treatment effect over the posterior and
    the assurance of the planned analysis; or its assurance curve, or conditional power."""
    from ciksim.errors import DataError
    from ciksim.jobs.trial import power_job, trial_job

    if args[0] == "assurance":
        if len(args) != 2:
            raise DataError("usage: ciksim trial assurance SPEC.toml --posterior DIR --n "
                            "20,40,80,160")
        from ciksim.jobs.decision import decision_job

        with progress_bar("assurance", not as_json) as update:
            dres = decision_job(Path(args[1]), posterior=posterior, prior=prior, draws=draws,
                                cohort=cohort, sizes=n, arms=arm, seed=seed, out=out,
                                resume=resume, workers=workers, scheduler=scheduler,
                                progress=update)
        emit(dres, out, as_json, lambda: print_decision(dres.summary()))
        return

    if args[0] == "power":
        if len(args) != 2:
            raise DataError("usage: ciksim trial power SPEC.toml --n 20,40,80 --repeats 200")
        from ciksim.trial.draws import parse_sizes

        sizes = list(parse_sizes(n, "--n"))
        if repeats < 1:
            raise DataError("--repeats must be >= 1")
        with progress_bar("trial power", not as_json) as update:
            res = power_job(Path(args[1]), sizes=sizes, repeats=repeats, workers=workers,
                            scheduler=scheduler, progress=update)
        emit(res, out, as_json, lambda: print_power(res, repeats), fmt)
        return
    if len(args) != 1:
        raise DataError(f"unexpected argument(s) {args[1:]}; give one SPEC.toml")
    if resume and out is None:
        raise DataError("--resume needs the --out folder of the interrupted trial")
    check_n_per_arm(n_per_arm)
    with progress_bar("trial", sys.stderr.isatty() or not as_json) as update:
        res = trial_job(Path(args[0]), n_per_arm=n_per_arm, workers=workers,
                        scheduler=scheduler, out=out, resume=resume, chunk_size=chunk_size,
                        progress=update, seed=seed, posterior=posterior, prior=prior,
                        draws=draws, cohort=cohort, arms=arm)
    if out is not None:
        files = res.write(out, fmt)
    if as_json:
        echo_json(res.summary())
        return
    print_trial(res)
    if res.decision is not None:
        print_decision(res.decision.summary())
    if out is not None:
        wrote(out, ["patients.parquet", "manifest.json", *files])


@verb(name="run")
def run_all(
    spec: Annotated[Path, typer.Argument(help="Trial specification (TOML).")],
    out: Annotated[Path, typer.Option(help="Folder for everything.")] = Path("out"),
    workers: Annotated[int | None, typer.Option(help="Local worker processes.")] = None,
    scheduler: opt.Scheduler = None,
    n_per_arm: NPerArm = None,
    seed: SpecSeed = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")]
    = False,
    posterior: Annotated[Path | None, typer.Option(
        help="Calibrated posterior (default: the shipped one).")] = None,
    prior: Annotated[bool, typer.Option("--prior", help="Decision outputs over the prior.")]
    = False,
    draws: Annotated[int | None, typer.Option(help="Parameter draws (0: no decision "
                                                   "outputs).")] = None,
    cohort: Cohort = None,
    as_json: JsonFlag = False,
) -> None:
    """The whole chain: culture the product, check it kills, run the trial, and the
    decision outputs (treatment effect over the posterior, assurance), one report."""
    from ciksim.jobs.trial import chain_job

    check_n_per_arm(n_per_arm)
    with progress_bar("trial", sys.stderr.isatty() and not as_json) as update:
        res = chain_job(spec, out=out, workers=workers, scheduler=scheduler, progress=update,
                        on_step=None if as_json else console.print, n_per_arm=n_per_arm,
                        seed=seed, resume=resume, posterior=posterior, prior=prior,
                        draws=draws, cohort=cohort)
    files = res.write(out)
    if as_json:
        echo_json(res.summary())
        return
    print_trial(res.trial)
    if res.trial.decision is not None:
        print_decision(res.trial.decision.summary())
    wrote(out, [*files, "trial/"])


def check_n_per_arm(n_per_arm: int | None) -> None:
    """``--n-per-arm``, when given, is at least 1; else a DataError."""
    if n_per_arm is not None and n_per_arm < 1:
        from ciksim.errors import DataError

        raise DataError("--n-per-arm must be >= 1")


def print_power(res: PowerResult, repeats: int) -> None:
    """Conditional power per trial size with its 95% interval."""
    rows = [[str(r.n_per_arm), f"{100 * r.power:.0f}%",
             f"{100 * r.power_ci_low:.0f}-{100 * r.power_ci_high:.0f}%"]
            for r in res.table.itertuples()]
    arms = res.spec.arms
    console.print(rich_table(f"Conditional power (at the spec's fixed parameters; "
                             f"assurance over the posterior: `ciksim trial assurance`): "
                             f"{arms[1].name} vs {arms[0].name}, log-rank "
                             f"p < 0.05, {repeats} trials per size",
                             ["patients per arm", "power", "95% CI"], rows))


def print_decision(d: dict[str, Any]) -> None:
    """Effect (median, 90% interval), assurance and Monte Carlo errors."""
    rows = [[e["label"], e["unit"], f"{e['median']:.3g}",
             f"{e['interval_90'][0]:.3g} to {e['interval_90'][1]:.3g}",
             f"{d['mc_error'][m]['within_draw']:.2g}"]
            for m, e in d["effect"].items() if e is not None]
    console.print(rich_table(f"Treatment effect over {d['draws']} draws of the "
                             f"{d['source']['label']}",
                             ["effect", "unit", "median", "90% interval",
                              "Monte Carlo error"], rows))
    console.print(rich_table("Assurance (probability the planned analysis succeeds)",
                             ["patients per arm", "assurance", "Monte Carlo SE"],
                             [[str(r["n_per_arm"]), f"{100 * r['assurance']:.0f}%",
                               f"{100 * r['mc_se']:.1f} points"]
                              for r in d["assurance_curve"]]))


def print_allo_arms(res: TrialResult) -> None:
    """Per arm and milestone: GRFS, OS, relapse, NRM, acute and chronic GvHD; then the
    comparisons on the primary endpoint."""
    from ciksim.report.allotrial import endpoint_table
    from ciksim.report.trial import comparison_text

    spec, summary = res.spec, res.analysis
    table = endpoint_table(summary, summary["milestones_months"])
    rows = [["–" if v is None or v != v else f"{v:g}" if isinstance(v, float) else str(v)
             for v in r] for r in table.itertuples(index=False)]
    console.print(rich_table(f"{spec.name} (after allogeneic transplantation): "
                             f"{spec.patients_per_arm} patients per arm, "
                             f"{spec.follow_up_years:g} years, seed {spec.seed}",
                             list(table.columns), rows))
    if summary["not_modelled"]:
        console.print("  not modelled by this allo model version: "
                      + ", ".join(summary["not_modelled"]))
    for c in summary["comparisons"]:
        console.print(f"  {summary['endpoint']}: {comparison_text(c)}")


def print_trial(res: TrialResult) -> None:
    """The per-arm table, the comparisons and how the patients were run."""
    from ciksim.report.trial import ARM_COLUMNS, arm_rows, comparison_text

    spec, summary, m = res.spec, res.analysis, res.run.manifest
    if summary.get("setting") == "allo":
        print_allo_arms(res)
    else:
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

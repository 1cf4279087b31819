"""The ``ciksim`` command line: a thin layer over the Python API.

Errors from bad input are printed without a traceback and exit with status 2; outputs are
staged and moved into ``--out`` only when everything succeeded.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ciksim._version import __version__
from ciksim.errors import CikError

app = typer.Typer(
    name="ciksim",
    help="Simulate and analyse CIK cell immunotherapy for leukemia.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 130)
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def guarded(fn: F) -> F:
    """Turn a CikError into 'error: ...' on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CikError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ciksim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    """ciksim: from the culture flask to the clinical trial."""


@app.command()
def system() -> None:
    """Versions of Python, the platform and key dependencies (paste into bug reports)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    typer.echo(f"ciksim {__version__}")
    typer.echo(f"python {platform.python_version()} ({sys.executable})")
    typer.echo(f"platform {platform.platform()}")
    for pkg in ("numpy", "scipy", "pandas", "pint", "typer", "rich", "matplotlib", "pyarrow"):
        try:
            typer.echo(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            typer.echo(f"{pkg} not installed")


def _parse_float(text: str, name: str) -> float:
    from ciksim.errors import DataError

    try:
        return float(text)
    except ValueError:
        raise DataError(f"--{name}: {text!r} is not a number") from None


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
@guarded
def culture(
    args: Annotated[
        list[str] | None,
        typer.Argument(help="'plan' for harvest planning, or more protocols after --compare."),
    ] = None,
    protocol: Annotated[str, typer.Option(help="Built-in protocol name or a TOML file.")] = (
        "cik-standard"
    ),
    days: Annotated[float | None, typer.Option(help="Days to simulate (default: harvest day).")]
    = None,
    donors: Annotated[int, typer.Option(help="Number of simulated donors.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed for donor variability.")] = 0,
    start_cells: Annotated[str, typer.Option(help="PBMC seeded on day 0 (cells).")] = "1e8",
    out: Annotated[Path | None, typer.Option(help="Folder for the data and figure.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Data format: csv or parquet.")] = "csv",
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON object.")] = False,
    compare: Annotated[
        str | None, typer.Option(help="Compare protocols: --compare cik-standard lak")
    ] = None,
    dose: Annotated[str | None, typer.Option(help="plan: cells per kg (or per infusion).")] = None,
    per: Annotated[str, typer.Option(help="plan: dose per 'kg' or per 'infusion'.")] = "kg",
    weight: Annotated[float, typer.Option(help="plan: body weight (kg).")] = 70.0,
    infusions: Annotated[int, typer.Option(help="plan: number of infusions.")] = 1,
    cells: Annotated[str, typer.Option(help="plan: count 'cd3cd56' or 'cd3' cells.")] = (
        "cd3cd56"
    ),
) -> None:
    """Simulate ex vivo CIK generation: a daily summary with donor bands, data and a figure.

    `ciksim culture plan --dose 5e7 --per kg --weight 70 --infusions 3` gives the earliest
    harvest day and the starting PBMC needed.
    """
    from ciksim.cli_culture import run_compare_or_single, run_plan
    from ciksim.errors import DataError

    extra = list(args or [])
    start = _parse_float(start_cells, "start-cells")
    if extra and extra[0] == "plan":
        if len(extra) > 1:
            raise DataError(f"plan: unexpected argument(s) {extra[1:]}")
        if dose is None:
            raise DataError("plan: give --dose (cells per kg, or per infusion with --per infusion)")
        run_plan(protocol=protocol, days=days, donors=donors, seed=seed, start_cells=start,
                 dose=_parse_float(dose, "dose"), per=per, weight=weight, infusions=infusions,
                 cells=cells, as_json=as_json, console=console)
        return
    if dose is not None:
        raise DataError("--dose only applies to 'ciksim culture plan'")
    protocols = [protocol]
    if compare is not None:
        protocols = [p for p in compare.split(",") if p] + extra
    elif extra:
        raise DataError(f"unexpected argument(s) {extra}; did you mean --compare or plan?")
    run_compare_or_single(protocols=protocols, days=days, donors=donors, seed=seed,
                          start_cells=start, out=out, fmt=fmt, as_json=as_json, console=console)


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
@guarded
def killing(
    effector: Annotated[str, typer.Option(help="cik, lak, nk, t, or a culture --out folder.")]
    = "cik",
    target: Annotated[str, typer.Option(
        help="k562, aml-blast, b-all-blast, normal-pbmc, normal-pbmc-allogeneic, cd34, or a "
             "TOML file.")] = "k562",
    et: Annotated[str, typer.Option(help="E:T ratios, comma-separated.")] = "40,20,10,5,2.5",
    hours: Annotated[float, typer.Option(help="Assay duration (hours).")] = 4.0,
    block: Annotated[str | None, typer.Option(help="Blocking antibody: nkg2d or hla.")] = None,
    donors: Annotated[int, typer.Option(help="Number of simulated effector donors.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Folder for the curve table and figure.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON object.")] = False,
) -> None:
    """Simulate a cytotoxicity assay: % specific lysis per E:T with the spread over donors."""
    from ciksim.cli_killing import run_killing

    run_killing(effector=effector, target=target, et=et, hours=hours, block=block,
                donors=donors, seed=seed, out=out, as_json=as_json, console=console)


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
@guarded
def lysis(
    path: Annotated[Path, typer.Argument(help="Tidy CSV: effector,target,et_ratio,kind,"
                                              "replicate,value.")],
    out: Annotated[Path | None, typer.Option(help="Folder for tables and the figure.")] = None,
    targets_per_well: Annotated[float, typer.Option(help="Target cells per well.")] = 1e4,
    hours: Annotated[float, typer.Option(help="Assay duration (hours) for the model fit.")]
    = 4.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON object.")] = False,
) -> None:
    """Analyse release-assay data: % specific lysis, lytic units, killing-rate fit."""
    from ciksim.cli_killing import run_lysis

    run_lysis(path=path, out=out, targets_per_well=targets_per_well, hours=hours,
              as_json=as_json, console=console)


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
@guarded
def patient(
    scenario: Annotated[str, typer.Option(help="aml-cr1, aml-elderly or a TOML file.")]
    = "aml-cr1",
    subtype: Annotated[str | None, typer.Option(
        help="npm1, pml-rara, runx1-runx1t1 or cbfb-myh11 (doubling time).")] = None,
    no_cik: Annotated[bool, typer.Option("--no-cik", help="Chemotherapy alone.")] = False,
    cik_dose: Annotated[float, typer.Option(help="CD3+ cells per kg per infusion.")] = 5e7,
    infusions: Annotated[int, typer.Option(help="Number of CIK infusions.")] = 3,
    interval: Annotated[float, typer.Option(help="Days between infusions.")] = 21.0,
    first_infusion_day: Annotated[float, typer.Option(help="Day of the first infusion.")]
    = 30.0,
    product: Annotated[Path | None, typer.Option(
        help="A `ciksim culture --out` folder (default: the cik-gmp product).")] = None,
    start_burden: Annotated[float | None, typer.Option(
        help="Leukemic cells at day 0 as a fraction of marrow cells (e.g. 1e-4, 0.2).")]
    = None,
    replicates: Annotated[int, typer.Option(help="Number of virtual patients.")] = 1,
    years: Annotated[float, typer.Option(help="Follow-up (years).")] = 3.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    relapse: Annotated[str, typer.Option(help="haematologic (>= 5% blasts) or molecular "
                                              "(MRD >= 1e-4).")] = "haematologic",
    il2_support: Annotated[bool, typer.Option("--il2-support",
                                              help="Give IL-2 with the infusions.")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for the table, summary and "
                                                  "figure.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON object.")] = False,
) -> None:
    """Virtual patients after chemotherapy, with CIK infusions: exact cure vs relapse."""
    from ciksim.cli_patient import run_patient_cli

    run_patient_cli(scenario=scenario, subtype=subtype, no_cik=no_cik, cik_dose=cik_dose,
                    infusions=infusions, interval=interval,
                    first_infusion_day=first_infusion_day, product=product,
                    start_burden=start_burden, replicates=replicates, years=years, seed=seed,
                    relapse=relapse, il2_support=il2_support, out=out, as_json=as_json,
                    console=console)


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
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
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON object.")] = False,
) -> None:
    """Run a virtual trial: RFS per arm, hazard ratio, log-rank; or its power curve."""
    from ciksim.cli_trial import run_power_cli, run_trial_cli
    from ciksim.errors import DataError

    if args[0] == "power":
        if len(args) != 2:
            raise DataError("usage: ciksim trial power SPEC.toml --n 20,40,80 --repeats 200")
        run_power_cli(spec_path=Path(args[1]), ns=n, repeats=repeats, workers=workers,
                      scheduler=scheduler, out=out, as_json=as_json, console=console)
        return
    if len(args) != 1:
        raise DataError(f"unexpected argument(s) {args[1:]}; give one SPEC.toml")
    run_trial_cli(spec_path=Path(args[0]), n_per_arm=n_per_arm, workers=workers,
                  scheduler=scheduler, out=out, resume=resume, chunk_size=chunk_size,
                  as_json=as_json, console=console)


@app.command(name="run", context_settings={"help_option_names": ["-h", "--help"]})
@guarded
def run_all(
    spec: Annotated[Path, typer.Argument(help="Trial specification (TOML).")],
    out: Annotated[Path, typer.Option(help="Folder for everything.")] = Path("out"),
    workers: Annotated[int | None, typer.Option(help="Local worker processes.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler, tcp://HOST:PORT.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON object.")] = False,
) -> None:
    """The whole chain: culture the product, check it kills, run the trial, one report."""
    from ciksim.cli_run import run_chain

    run_chain(spec_path=spec, out=out, workers=workers, scheduler=scheduler, as_json=as_json,
              console=console)


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
@guarded
def validate(
    out: Annotated[Path | None, typer.Option(help="Folder for validation.html and .json.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON object.")] = False,
) -> None:
    """Compute every published target (C1-C9, K1-K8, P1-P8, T1-T2) from the default models."""
    from ciksim.cli_validate import run_validate

    run_validate(out=out, as_json=as_json, console=console)


fit_app = typer.Typer(help="Fit models to your own data.", no_args_is_help=True)
app.add_typer(fit_app, name="fit")


@fit_app.command("culture")
@guarded
def fit_culture_cmd(
    path: Annotated[Path, typer.Argument(help="CSV: donor,day,quantity,value[,sd].")],
    protocol: Annotated[str, typer.Option(help="Culture protocol name or TOML file.")]
    = "cik-standard",
    free: Annotated[str | None, typer.Option(help="Parameters to fit (default phi_max,"
                                                  "phi_min,k_conv).")] = None,
    dose: Annotated[float | None, typer.Option(help="Forecast the day this many cells are "
                                                    "reached.")] = None,
    cells: Annotated[str, typer.Option(help="cd3cd56, cd3 or total.")] = "cd3cd56",
    steps: Annotated[int, typer.Option(help="MCMC steps per walker.")] = 500,
    walkers: Annotated[int, typer.Option(help="MCMC walkers.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Folder for tables and the figure.")] = None,
    petab: Annotated[Path | None, typer.Option(help="Also write the problem as PEtab here.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON object.")] = False,
) -> None:
    """Fit the culture model to your donors' counts; forecast the harvest day."""
    from ciksim.cli_fit import run_fit_culture

    run_fit_culture(path=path, protocol=protocol, free=free, dose=dose, cells=cells,
                    steps=steps, walkers=walkers, seed=seed, out=out, petab=petab,
                    as_json=as_json, console=console)


@fit_app.command("killing")
@guarded
def fit_killing_cmd(
    path: Annotated[Path, typer.Argument(help="Lysis CSV (as for ciksim lysis).")],
    targets_per_well: Annotated[float, typer.Option(help="Target cells per well.")] = 1e4,
    hours: Annotated[float, typer.Option(help="Assay duration (hours).")] = 4.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON object.")] = False,
) -> None:
    """Fit the killing model's rate to lysis data (95% intervals)."""
    from ciksim.cli_fit import run_fit_killing

    run_fit_killing(path=path, targets_per_well=targets_per_well, hours=hours,
                    as_json=as_json, console=console)


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
@guarded
def sensitivity(
    model: Annotated[str, typer.Argument(help="culture or patient.")],
    output: Annotated[str, typer.Option(help="cd3cd56_yield (culture) or cure_fraction "
                                             "(patient).")],
    parameters: Annotated[str | None, typer.Option(help="Comma-separated parameters "
                                                        "(default: the model's set).")] = None,
    samples: Annotated[int, typer.Option(help="Sobol base samples (power of 2).")] = 64,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Folder for the table and bar chart.")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only a JSON object.")] = False,
) -> None:
    """Global sensitivity (Sobol indices, SALib) of an output to the parameters' ranges."""
    from ciksim.errors import DataError
    from ciksim.inference.sensitivity import OUTPUTS, plot_sobol, sobol

    if output not in OUTPUTS or OUTPUTS[output].model != model:
        choices = ", ".join(f"{k} ({v.model})" for k, v in OUTPUTS.items())
        raise DataError(f"--output {output!r} is not an output of model {model!r}; use "
                        f"{choices}")
    names = [x.strip() for x in parameters.split(",") if x.strip()] if parameters else None
    table = sobol(output, parameters=names, samples=samples, seed=seed)
    if out is not None:
        from ciksim.io import table_and_figure

        title = f"{OUTPUTS[output].description}: Sobol indices"
        table_and_figure(out, table, f"sobol_{output}", lambda t: plot_sobol(t, title))
    if as_json:
        echo_json({"model": model, "output": output, "samples": samples,
                   "indices": table.to_dict("records")})
        return
    rows = [[r.parameter, f"{r.S1:.3f} ± {r.S1_conf:.3f}", f"{r.ST:.3f} ± {r.ST_conf:.3f}"]
            for r in table.itertuples()]
    console.print(rich_table(f"{OUTPUTS[output].description}: Sobol indices ({samples} base "
                             "samples, 95% confidence)", ["parameter", "first order",
                                                          "total"], rows))


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
    from ciksim.cli_export import export_sbml_cli

    export_sbml_cli(model=model, protocol=protocol, with_cik=with_cik, output=output,
                    console=console)


def main() -> None:
    """Entry point of the ``ciksim`` script."""
    app()


def echo_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (NaN becomes null)."""
    typer.echo(json.dumps(_clean(data)))


def _clean(obj: Any) -> Any:
    import math

    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item"):
        return _clean(obj.item())
    return obj


def rich_table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*r)
    return table

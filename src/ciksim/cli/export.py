"""``ciksim export sbml|combine MODEL``: models for other tools, set up as the run commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ciksim.cli.common import HELP, app, console, guarded
from ciksim.errors import DataError

export_app = typer.Typer(help="Export models for other tools (SBML, COMBINE archive).",
                         no_args_is_help=True)
app.add_typer(export_app, name="export")
Opt = typer.Option


def export_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="culture, killing, patient or allo.")],
    protocol: Annotated[str | None, Opt(help="culture: protocol name or TOML (default "
                                             "cik-standard); patient, allo: a protocol TOML "
                                             "(its events replace the scenario's).")] = None,
    start_cells: Annotated[float | None, Opt(help="culture: PBMC seeded (default 1e8).")]
    = None,
    days: Annotated[float | None, Opt(help="culture: days (default: harvest day).")] = None,
    effector: Annotated[str | None, Opt(help="killing: cik, lak, nk, t or a culture --out folder "
                                             "(default cik).")]
    = None,
    target: Annotated[str | None, Opt(help="killing: target name or TOML (default k562).")]
    = None,
    et: Annotated[float | None, Opt(help="killing: one E:T ratio (default: the model's).")]
    = None,
    hours: Annotated[float | None, Opt(help="killing: assay hours (default 4).")] = None,
    block: Annotated[str | None, Opt(help="killing: blocking antibody nkg2d or hla.")] = None,
    scenario: Annotated[str | None, Opt(help="patient: aml-cr1 (default), aml-elderly or a "
                                             "TOML file; allo: allo-aml-cr (default) or a "
                                             "TOML file.")] = None,
    donor: Annotated[str | None, Opt(help="allo: donor type (sibling, unrelated, "
                                          "haploidentical).")] = None,
    conditioning: Annotated[str | None, Opt(help="allo: conditioning (mac, ric).")] = None,
    chimerism: Annotated[float | None, Opt(help="allo: donor chimerism on day 0 "
                                                "(0-1).")] = None,
    dli: Annotated[list[str] | None, Opt(help="allo: DLI as CD3+/kg@day[,day...], e.g. "
                                              "1e7@60 (repeatable).")] = None,
    allo_cik: Annotated[list[str] | None, Opt("--cik", help="allo: donor CIK as "
                                                             "CD3+/kg@day[,day...], e.g. "
                                                             "5e7@60,90 (repeatable).")]
    = None,
    subtype: Annotated[str | None, Opt(help="patient: molecular subtype.")] = None,
    no_cik: Annotated[bool, Opt("--no-cik", help="patient: chemotherapy alone.")] = False,
    cik_dose: Annotated[float | None, Opt(help="patient: CD3+ cells/kg per infusion "
                                               "(default 5e7).")] = None,
    infusions: Annotated[int | None, Opt(help="patient: CIK infusions (default 3).")] = None,
    interval: Annotated[float | None, Opt(help="patient: days between infusions.")] = None,
    first_infusion_day: Annotated[float | None, Opt(help="patient: day of the first "
                                                         "infusion.")] = None,
    product: Annotated[Path | None, Opt(help="patient: a `ciksim culture --out` folder.")]
    = None,
    start_burden: Annotated[float | None, Opt(help="patient, allo: leukemic cells at day 0 as "
                                                   "a fraction of marrow cells.")] = None,
    years: Annotated[float | None, Opt(help="patient: follow-up years (default 3); allo: "
                                            "years after the stem-cell infusion (default "
                                            "2).")] = None,
    il2_support: Annotated[bool, Opt("--il2-support", help="patient: IL-2 with the "
                                                            "infusions.")] = False,
    gillespie: Annotated[bool, Opt("--gillespie", help="sbml: the variant for Gillespie "
                                                       "tools without assignment rules "
                                                       "(GillesPy2's SSA): derived quantities "
                                                       "written into the rate laws, whole "
                                                       "initial cells.")] = False,
    output: Annotated[Path | None, Opt("-o", "--output", help="File to write (sbml default: "
                                                              "stdout; combine: MODEL.omex).")]
    = None,
) -> None:
    """Both export verbs: the context's command name says which file to write."""
    from ciksim.jobs.export import export_job

    options = {"protocol": protocol, "start_cells": start_cells, "days": days,
               "effector": effector, "target": target, "et": et, "hours": hours,
               "block": block, "scenario": scenario, "subtype": subtype, "donor": donor,
               "conditioning": conditioning, "chimerism": chimerism,
               "cik": False if no_cik else None, "cik_dose": cik_dose, "infusions": infusions,
               "interval": interval, "first_infusion_day": first_infusion_day,
               "product": product, "start_burden": start_burden, "years": years,
               "il2_support": True if il2_support else None}
    exp = export_job(model, dli=dli or (), cik_doses=allo_cik or (), **options)
    settings = ", ".join(f"{k} {v}" for k, v in exp.settings.items() if v is not None)
    if ctx.info_name == "combine":
        if gillespie:
            raise DataError("--gillespie: the Gillespie variant is for `export sbml`; a "
                            "COMBINE archive holds the ODE model its SED-ML runs")
        path = exp.write_combine(output or Path(f"{model}.omex"))
        console.print(f"wrote {path} (COMBINE archive: SBML L3V2 + SED-ML L1V3 time course "
                      f"0-{exp.end_time:g} {exp.model.time_unit}s; {settings})")
        return
    if output is None:
        typer.echo(exp.sbml(gillespie), nl=False)
        return
    exp.write_sbml(output, gillespie)
    variant = ", for Gillespie tools" if gillespie else ""
    console.print(f"wrote {output} (SBML L3V2{variant}, {exp.name}; {settings})")


export_app.command("sbml", context_settings=HELP, help=(
    "Write SBML L3V2 of a model set up as its run command sets it up (scenario, protocol, "
    "product, dose...)."))(guarded(export_command))
export_app.command("combine", context_settings=HELP, help=(
    "Write a COMBINE archive (.omex): the SBML plus a SED-ML time course and report, which "
    "tellurium or COPASI run in one call."))(guarded(export_command))

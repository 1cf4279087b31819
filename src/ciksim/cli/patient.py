"""``ciksim patient``: virtual patients after chemotherapy, with CIK infusions, or after an
allogeneic stem-cell transplant (``--scenario allo-aml-cr``) with donor CIK or DLI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ciksim.cli import options as opt
from ciksim.cli.common import JsonFlag, console, emit, err_console, progress_bar, rich_table, verb

if TYPE_CHECKING:
    from ciksim.jobs.allo import AlloPatientResult
    from ciksim.jobs.patient import PatientResult


@verb()
def patient(
    scenario: Annotated[str, typer.Option(
        help="aml-cr1, aml-elderly, allo-aml-cr (after allogeneic transplant) or a TOML "
             "file.")] = "aml-cr1",
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
    seed: opt.Seed = 0,
    relapse: Annotated[str, typer.Option(help="haematologic (>= 5% blasts) or molecular "
                                              "(MRD >= 1e-4).")] = "haematologic",
    il2_support: Annotated[bool, typer.Option("--il2-support",
                                              help="Give IL-2 with the infusions.")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for the table, summary, figure and "
                                                  "report.")] = None,
    fmt: opt.TableFormat = "csv",
    donor: Annotated[str | None, typer.Option(
        help="Allo: sibling, unrelated or haploidentical.")] = None,
    conditioning: Annotated[str | None, typer.Option(help="Allo: mac or ric.")] = None,
    chimerism: Annotated[float | None, typer.Option(
        help="Allo: donor chimerism on day 0, the stem-cell infusion (0-1].")] = None,
    dli: Annotated[list[str] | None, typer.Option(
        help="Allo: DLI as CD3+/kg@day[,day...], e.g. 1e7@60 (repeatable).")] = None,
    allo_cik: Annotated[list[str] | None, typer.Option(
        "--cik", help="Allo: donor CIK as CD3+/kg@day[,day...], e.g. 5e7@60,90 "
                      "(repeatable).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Virtual patients after chemotherapy, with CIK infusions: exact cure vs relapse; or
    after an allogeneic transplant: leukemia, donor cells, GvHD and chimerism."""
    from ciksim.jobs.allo import is_allo_scenario
    from ciksim.jobs.patient import patient_job

    if is_allo_scenario(scenario):
        _allo(scenario, donor=donor, conditioning=conditioning, chimerism=chimerism,
              dli=dli or [], cik=allo_cik or [], replicates=replicates, years=years, seed=seed,
              out=out, fmt=fmt, as_json=as_json)
        return
    if any(v is not None for v in (donor, conditioning, chimerism, dli, allo_cik)):
        from ciksim.errors import DataError

        raise DataError("--donor, --conditioning, --chimerism, --dli and --cik are "
                                 "for allo scenarios (--scenario allo-aml-cr); for this "
                                 "scenario use --cik-dose, --infusions, --interval")

    with progress_bar("patients", sys.stderr.isatty() and not as_json) as update:
        res = patient_job(scenario, subtype=subtype, cik=not no_cik, cik_dose=cik_dose,
                          infusions=infusions, interval=interval,
                          first_infusion_day=first_infusion_day, il2_support=il2_support,
                          product=product, start_burden=start_burden, replicates=replicates,
                          years=years, seed=seed, relapse=relapse,
                          progress=update if replicates > 1 else None)
    emit(res, out, as_json, lambda: _print_patients(res, replicates, years, seed), fmt)


def _print_patients(res: PatientResult, replicates: int, years: float, seed: int) -> None:
    cik = res.cik
    arm = "chemotherapy alone" if cik is None else (
        f"chemotherapy + CIK {cik.dose_per_kg:.3g} CD3+/kg x {cik.infusions} every "
        f"{cik.interval_days:g} d from day {cik.first_day:g}")
    console.print(f"[bold]{res.run.scenario.name}[/] ({arm}), {replicates} patient(s), "
                  f"{years:g} years, seed {seed}")
    if replicates == 1:
        df = res.run.outcomes().iloc[0]
        if df["event"] == "relapse":
            console.print(f"  relapse on day {df['relapse_day']:.0f} "
                          f"({df['duration']:.1f} months)")
        elif df["event"] == "death":
            console.print(f"  died in remission on day {df['death_day']:.0f} "
                          f"({df['duration']:.1f} months)")
        elif df["cured"]:
            console.print(f"  cured: last leukemic cell died on day {df['extinction_day']:.0f}")
        else:
            console.print("  residual leukemia persists without relapse at the end of "
                          "follow-up")
        console.print(f"  normal marrow nadir: {100 * df['normal_nadir_fraction']:.1f}% of "
                      "a full marrow")
    else:
        summary = res.intervals()
        rows = []
        for key, label in (("cure", "cured (leukemia extinct)"), ("relapse", "relapsed"),
                           ("relapse_3y", "relapsed within 3 years"),
                           ("death_in_remission", "died in remission")):
            v = summary[key]
            if v is None:
                continue
            rows.append([label, f"{100 * v['value']:.1f}%",
                         f"{100 * v['ci_low']:.1f}-{100 * v['ci_high']:.1f}%"])
        console.print(rich_table("Outcomes", ["", "fraction", "95% CI"], rows))
        med = summary["median_rfs_months"]
        console.print(f"  median relapse-free survival: "
                      f"{'not reached' if med is None else f'{med:.1f} months'}")


def _allo(scenario: str, *, donor: str | None, conditioning: str | None,
          chimerism: float | None, dli: list[str], cik: list[str], replicates: int,
          years: float, seed: int, out: Path | None, fmt: str, as_json: bool) -> None:
    import warnings

    from rich.markup import escape

    from ciksim.errors import CikWarning
    from ciksim.jobs.allo import allo_patient_job

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = allo_patient_job(scenario, donor=donor, conditioning=conditioning,
                               chimerism=chimerism, dli=dli, cik=cik, replicates=replicates,
                               years=years, seed=seed)
    for w in caught:       # ciksim's own warnings as the CLI's notes, others as Python's
        if issubclass(w.category, CikWarning):
            err_console.print(f"[yellow]warning:[/] {escape(str(w.message))}", highlight=False)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    emit(res, out, as_json, lambda: _print_allo(res, replicates, years, seed), fmt)


def _print_allo(res: AlloPatientResult, replicates: int, years: float, seed: int) -> None:
    scen = res.scenario
    doses = ", ".join(f"{e.dose} {e.amount:.3g} on day {e.day:g}"
                      for e in scen.protocol.events) or "no donor-cell infusion"
    console.print(f"[bold]{scen.name}[/] ({scen.donor} donor, {scen.conditioning}; {doses}), "
                  f"{replicates} patient(s), {years:g} years, seed {seed}")
    t = res.cohort.table
    if replicates == 1:
        row = t.iloc[0]
        for col, label in (("relapse_day", "relapse"), ("remission_day", "remission"),
                           ("gvhd_any_day", "acute GvHD grade >= I"),
                           ("agvhd_day", "acute GvHD grade >= II"),
                           ("cgvhd_day", "chronic GvHD"), ("death_day", "death")):
            if row[col] == row[col]:
                console.print(f"  {label} on day {row[col]:.0f}")
        console.print(f"  peak GvHD grade {row['peak_grade']:.2f}; donor chimerism "
                      f"{100 * row['donor_chimerism']:.1f}%; "
                      f"{'leukemia extinct (cured)' if row['cured'] else 'leukemia persists'}"
                      f"{' (died without relapse)' if row['nrm_day'] == row['nrm_day'] else ''}")
    else:
        rows = [[label, f"{100 * share:.1f}%"] for label, share in res.event_rows()]
        rows.append(["cured (leukemia extinct)", f"{100 * t['cured'].mean():.1f}%"])
        console.print(rich_table(f"By day {res.cohort.horizon_days:.0f}", ["", "patients"],
                                 rows))

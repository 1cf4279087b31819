"""Implementation of ``ciksim patient``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from ciksim.cli import echo_json, rich_table
from ciksim.io import staged_output


def run_patient_cli(*, scenario: str, subtype: str | None, no_cik: bool, cik_dose: float,
                    infusions: int, interval: float, first_infusion_day: float,
                    product: Path | None, start_burden: float | None, replicates: int,
                    years: float, seed: int, relapse: str, il2_support: bool,
                    out: Path | None, as_json: bool, console: Console) -> None:
    from ciksim.analysis.patient import CikSchedule, run_patients

    cik = None if no_cik else CikSchedule(cik_dose, infusions, interval, first_infusion_day,
                                          il2_support)
    run = run_patients(scenario, subtype=subtype, cik=cik, product=product,
                       start_burden=start_burden, replicates=replicates, years=years,
                       seed=seed, relapse=relapse, record=replicates == 1)
    summary = run.summary()
    flat: dict[str, Any] = {
        "replicates": summary["replicates"],
        "cure_fraction": summary["cure"]["value"],
        "relapse_fraction": summary["relapse"]["value"],
        "relapse_fraction_3y": summary["relapse_3y"]["value"] if summary["relapse_3y"]
        else None,
        "median_rfs_months": summary["median_rfs_months"],
        "normal_nadir_fraction": summary["normal_nadir_fraction"],
    }
    if out is not None:
        from ciksim.report.plots import plot_patient, plot_rfs

        with staged_output(out) as stage:
            stage.table(run.outcomes(), "patients", "csv")
            stage.json({**flat, "intervals": summary, "scenario": run.scenario.name,
                        "cik": None if cik is None else cik.__dict__, "years": years,
                        "seed": seed, "relapse_threshold": run.threshold,
                        "meta": run.result.meta}, "patient_summary")
            if replicates == 1:
                axes = plot_patient(run)
                fig = axes[0].figure
            else:
                df = run.outcomes()
                fig = plot_rfs([df["duration"]], [df["event"]], [run.scenario.name]).figure
            stage.figure(fig, "patient")
    if as_json:
        echo_json(flat)
        return
    arm = "chemotherapy alone" if cik is None else (
        f"chemotherapy + CIK {cik.dose_per_kg:.3g} CD3+/kg x {cik.infusions} every "
        f"{cik.interval_days:g} d from day {cik.first_day:g}")
    console.print(f"[bold]{run.scenario.name}[/] ({arm}), {replicates} patient(s), "
                  f"{years:g} years, seed {seed}")
    if replicates == 1:
        df = run.outcomes().iloc[0]
        if df["event"]:
            console.print(f"  relapse on day {df['relapse_day']:.0f} "
                          f"({df['duration']:.1f} months)")
        elif df["cured"]:
            console.print(f"  cured: last leukemic cell died on day {df['extinction_day']:.0f}")
        else:
            console.print("  residual leukemia persists without relapse at the end of "
                          "follow-up")
        console.print(f"  normal marrow nadir: {100 * df['normal_nadir_fraction']:.1f}% of "
                      "a full marrow")
    else:
        rows = []
        for key, label in (("cure", "cured (leukemia extinct)"), ("relapse", "relapsed"),
                           ("relapse_3y", "relapsed within 3 years")):
            v = summary[key]
            if v is None:
                continue
            rows.append([label, f"{100 * v['value']:.1f}%",
                         f"{100 * v['ci_low']:.1f}-{100 * v['ci_high']:.1f}%"])
        console.print(rich_table("Outcomes", ["", "fraction", "95% CI"], rows))
        med = summary["median_rfs_months"]
        console.print(f"  median relapse-free survival: "
                      f"{'not reached' if med is None else f'{med:.1f} months'}")
    if out is not None:
        console.print(f"wrote {out}/patients.csv, patient_summary.json, patient.png")

"""``ciksim describe`` (the data dictionary of a results folder) and ``ciksim phenotype``
(flow cytometry in: CD3/CD56 shares from FCS files)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ciksim.cli.common import JsonFlag, console, echo_json, rich_table, verb, wrote
from ciksim.errors import DataError


@verb()
def describe(
    folder: Annotated[Path, typer.Argument(help="A results folder (the --out of a command).")],
    out: Annotated[Path | None, typer.Option(help="Also write data_dictionary.csv and .md "
                                                  "here.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The data dictionary of a results folder: each table's columns, units and meaning."""
    from ciksim.jobs.export import describe_job

    dd = describe_job(folder)
    if out is not None:
        dd.write(out)
    if as_json:
        echo_json({"folder": str(folder), "columns": dd.table.to_dict("records")})
        return
    for file, rows in dd.table.groupby("file", sort=False):
        console.print(rich_table(str(file), ["column", "type", "unit", "description"],
                                 [[r.column, r.type, r.unit, r.description]
                                  for r in rows.itertuples()]))
    console.print("month = 30.4375 days (365.25 / 12)")
    if out is not None:
        wrote(out, ["data_dictionary.csv", "data_dictionary.md"])


def _thresholds(items: list[str] | None) -> dict[str, float]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise DataError(f"--threshold: {item!r} is not KEY=NUMBER (e.g. cd3_min=1500)")
    return out


@verb()
def phenotype(
    files: Annotated[list[Path] | None, typer.Argument(help="FCS files.")] = None,
    gates: Annotated[Path | None, typer.Option(help="A Gating-ML 2.0 file or a FlowJo "
                                                    "workspace (.wsp) with gates CD3+CD56+, "
                                                    "CD3+CD56-, CD3-CD56+ (Gating-ML: "
                                                    "CD3pos_CD56pos...).")] = None,
    threshold: Annotated[list[str] | None, typer.Option(
        help="Default gate: KEY=VALUE for fsc_min, fsc_max, ssc_max, cd3_min, cd56_min "
             "(repeatable).")] = None,
    cd3_channel: Annotated[str | None, typer.Option(help="The CD3 channel ($PnN or $PnS).")]
    = None,
    cd56_channel: Annotated[str | None, typer.Option(help="The CD56 channel.")] = None,
    day: Annotated[float | None, typer.Option(help="Culture day of the samples: also write "
                                                   "counts.csv for `ciksim fit culture`.")]
    = None,
    donor: Annotated[str | None, typer.Option(help="Donor name in counts.csv (default: each "
                                                   "file's name).")] = None,
    example: Annotated[Path | None, typer.Option(help="Write the synthetic example FCS file "
                                                      "into this folder (and gate it).")]
    = None,
    out: Annotated[Path | None, typer.Option(help="Folder for phenotype.csv, .json and "
                                                  "counts.csv.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """CD3+CD56+, CD3+CD56- and CD3-CD56+ shares of FCS samples (documented gates)."""
    from ciksim.jobs.export import example_fcs_job, phenotype_job

    paths = list(files or [])
    if example is not None:
        paths.append(example_fcs_job(example))
        if not as_json:
            console.print(f"wrote the synthetic example {paths[-1]}")
    if not paths:
        raise DataError("phenotype: give FCS files, or --example DIR for the synthetic one")
    res = phenotype_job(paths, gate_file=gates, thresholds=_thresholds(threshold),
                        cd3_channel=cd3_channel, cd56_channel=cd56_channel, day=day,
                        donor=donor)
    if out is not None:
        res.write(out)
    if as_json:
        echo_json({"gate": dict(res.gate), "channels": dict(res.channels),
                   "samples": res.table.to_dict("records")})
        return
    console.print(f"gate: {res.gate}")
    console.print(rich_table("CD3/CD56 phenotype (% of the parent gate)",
                             ["sample", "events", "lymphocytes", "CD3+CD56+", "CD3+CD56-",
                              "CD3-CD56+"],
                             [[r.sample, f"{r.events}", f"{r.lymphocytes}",
                               f"{r.cd3cd56_pct:.1f}", f"{r.cd3_cd56neg_pct:.1f}",
                               f"{r.nk_pct:.1f}"] for r in res.table.itertuples()]))
    if out is not None:
        wrote(out, ["phenotype.csv", "phenotype.json"] + (["counts.csv"] if day is not None
                                                           else []))

"""Exchange jobs: models for other tools (SBML, COMBINE archive), the data dictionary of a
results folder, and flow cytometry in. The work is done in :mod:`ciksim.exchange`; these are
the entry points the faces call.

- ``export_job(model, **options)`` → :class:`~ciksim.exchange.export.ModelExport`
  (``.sbml()``, ``.write_sbml(path)``, ``.write_combine(path)``), set up as the model's run
  command sets it up;
- ``describe_job(folder)`` → :class:`~ciksim.exchange.tables.DataDictionary`
  (``.table``, ``.to_markdown()``, ``.write(out)``);
- ``phenotype_job(files, ...)`` → :class:`~ciksim.exchange.fcs.PhenotypeRun`
  (``.table``, ``.gate``, ``.counts()``, ``.write(out)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ciksim.errors import DataError
from ciksim.exchange.export import ModelExport, export_model
from ciksim.exchange.fcs import PhenotypeRun
from ciksim.exchange.fcs import example_fcs as example_fcs_job
from ciksim.exchange.fcs import phenotype as phenotype_job
from ciksim.exchange.tables import DataDictionary
from ciksim.exchange.tables import describe as describe_job


def export_job(model: str, *, dli: Sequence[str] = (), cik_doses: Sequence[str] = (),
               **options: Any) -> ModelExport:
    """:func:`~ciksim.exchange.export.export_model`, with the allo run command's infusion
    options: ``dli`` and ``cik_doses`` as ``AMOUNT@DAY[,DAY...]`` (CD3+ cells/kg on days
    after the stem-cell infusion), added to the scenario's events."""
    if dli or cik_doses:
        from ciksim.jobs.allo import dose_events

        if model != "allo":
            raise DataError(f"export {model}: --dli and --cik AMOUNT@DAY are infusions after "
                            "an allogeneic transplant; export allo, or use --cik-dose, "
                            "--infusions and --interval for the patient model")
        options["events"] = sorted(dose_events("dli", dli) + dose_events("cik", cik_doses),
                                   key=lambda e: e["day"])
    return export_model(model, **options)


__all__ = ["DataDictionary", "ModelExport", "PhenotypeRun", "describe_job", "example_fcs_job",
           "export_job", "phenotype_job"]

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

from ciksim.exchange.export import ModelExport
from ciksim.exchange.export import export_model as export_job
from ciksim.exchange.fcs import PhenotypeRun
from ciksim.exchange.fcs import example_fcs as example_fcs_job
from ciksim.exchange.fcs import phenotype as phenotype_job
from ciksim.exchange.tables import DataDictionary
from ciksim.exchange.tables import describe as describe_job

__all__ = ["DataDictionary", "ModelExport", "PhenotypeRun", "describe_job", "example_fcs_job",
           "export_job", "phenotype_job"]

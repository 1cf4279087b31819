"""Export job: a model (and its protocol's events) as SBML Level 3 Version 2."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ciksim.errors import CikError

if TYPE_CHECKING:
    from ciksim.model import Model
    from ciksim.protocol import Protocol


@dataclass(frozen=True)
class SbmlExport:
    """A model with its protocol, ready to be written as SBML."""

    model: Model
    protocol: Protocol | None

    def text(self) -> str:
        """The SBML document."""
        from ciksim.engines.sbml import to_sbml

        return to_sbml(self.model, self.protocol)

    def write(self, path: str | Path) -> Path:
        """Write the SBML file ``path``."""
        from ciksim.engines.sbml import write_sbml

        write_sbml(self.model, path, self.protocol)
        return Path(path)


def sbml_job(model: str, *, protocol: str | None = None, with_cik: bool = False) -> SbmlExport:
    """``model``: culture, killing or patient; ``protocol``: a culture protocol, a patient
    scenario or a protocol TOML file; ``with_cik``: patient only, add default CIK infusions."""
    from ciksim.docs import model_by_name
    from ciksim.protocol import Protocol

    m = model_by_name(model)
    proto = None
    if model == "patient":
        from ciksim.analysis.patient import CikSchedule, patient_protocol
        from ciksim.models.patient import Scenario, builtin_scenarios

        if protocol is None or protocol in builtin_scenarios():
            scen = Scenario.load(protocol or "aml-cr1")
            proto = patient_protocol(scen, CikSchedule() if with_cik else None)
        else:
            proto = Protocol.load(protocol)
    elif with_cik:
        raise CikError("--with-cik applies to the patient model only")
    elif protocol is not None:
        proto = Protocol.load(protocol)
    return SbmlExport(m, proto)

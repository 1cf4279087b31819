"""Implementation of ``ciksim export sbml``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ciksim.errors import CikError


def export_sbml_cli(*, model: str, protocol: str | None, with_cik: bool, output: Path | None,
                    console: Console) -> None:
    from ciksim.docs import model_by_name
    from ciksim.engines.sbml import to_sbml, write_sbml
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
    if output is None:
        typer.echo(to_sbml(m, proto), nl=False)
        return
    write_sbml(m, output, proto)
    console.print(f"wrote {output} (SBML L3V2, {m.name}"
                  + (f", protocol {proto.name}" if proto else "") + ")")

"""ciksim: simulate and analyse CIK cell immunotherapy for leukemia.

Quick start::

    from ciksim.analysis.culture import run_culture
    run = run_culture("cik-standard", donors=200, seed=0)
    run.summary()

The names below are imported on first use (PEP 562), so ``import ciksim`` (and the
``ciksim`` command's start) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ciksim._version import __version__
from ciksim.errors import CikError, DataError, ModelError, ProtocolError, UnitError

if TYPE_CHECKING:
    from ciksim.engines import Result, SolverSettings, simulate
    from ciksim.model import Assignment, Model, Parameter, Process, Species
    from ciksim.protocol import Event, Protocol, Trigger

_LAZY = {
    "Result": "ciksim.engines", "SolverSettings": "ciksim.engines", "simulate": "ciksim.engines",
    "Assignment": "ciksim.model", "Model": "ciksim.model", "Parameter": "ciksim.model",
    "Process": "ciksim.model", "Species": "ciksim.model",
    "Event": "ciksim.protocol", "Protocol": "ciksim.protocol", "Trigger": "ciksim.protocol",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ciksim' has no attribute {name!r}")


__all__ = [
    "Assignment", "CikError", "DataError", "Event", "Model", "ModelError", "Parameter",
    "Process", "Protocol", "ProtocolError", "Result", "SolverSettings", "Species", "Trigger",
    "UnitError", "__version__", "simulate",
]

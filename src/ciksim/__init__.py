"""ciksim: simulate and analyse CIK cell immunotherapy for leukemia.

Quick start::

    from ciksim.analysis.culture import run_culture
    run = run_culture("cik-standard", donors=200, seed=0)
    run.summary()
"""

from ciksim._version import __version__
from ciksim.engines import Result, SolverSettings, simulate
from ciksim.errors import CikError, DataError, ModelError, ProtocolError, UnitError
from ciksim.model import Assignment, Model, Parameter, Process, Species
from ciksim.protocol import Event, Protocol

__all__ = [
    "Assignment", "CikError", "DataError", "Event", "Model", "ModelError", "Parameter",
    "Process", "Protocol", "ProtocolError", "Result", "SolverSettings", "Species", "UnitError",
    "__version__", "simulate",
]

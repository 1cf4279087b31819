"""Simulation engines: deterministic ODE (single runs and batches)."""

from ciksim.engines.ode import SolverSettings, simulate
from ciksim.engines.result import Result

__all__ = ["Result", "SolverSettings", "simulate"]

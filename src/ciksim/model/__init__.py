"""Model declarations: parameters, species, assignments, processes and the Model."""

from ciksim.model.declarations import Assignment, Parameter, Process, Species
from ciksim.model.expression import Expression
from ciksim.model.model import CompiledModel, Model

__all__ = ["Assignment", "CompiledModel", "Expression", "Model", "Parameter", "Process", "Species"]

"""Model declarations: parameters, species, assignments, processes, doses and the Model."""

from ciksim.model.declarations import Assignment, Dose, Parameter, Process, Species
from ciksim.model.expression import Expression
from ciksim.model.model import CompiledModel, Model

__all__ = [
    "Assignment", "CompiledModel", "Dose", "Expression", "Model", "Parameter", "Process",
    "Species",
]

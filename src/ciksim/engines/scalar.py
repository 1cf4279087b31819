"""Scalar (one individual) code written from a model's declaration, for numba.

Parameter-only assignments are computed once per individual into ``_q``; each generated
function unpacks only the parameters, species and assignments its expressions need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ciksim.model import Model


class ScalarWriter:
    """Scalar code for one function: unpacks what its expressions need, in order."""

    def __init__(self, model: Model, static: dict[str, int]):
        self.model = model
        self.static = static
        self.species = {s.name: i for i, s in enumerate(model.species)}
        self.params = {p.name: i for i, p in enumerate(model.parameters)}

    def needed(self, symbols: set[str]) -> set[str]:
        """``symbols`` and every assignment they depend on, through assignments."""
        todo, seen = list(symbols), set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in self.model.assignment_by_name and name not in self.static:
                todo += self.model.expression(name).symbols
        return seen

    def prelude(self, symbols: set[str]) -> list[str]:
        need = self.needed(symbols)
        lines = [f"    {name} = _p[{i}]" for name, i in self.params.items() if name in need]
        lines += [f"    {name} = _q[{i}]" for name, i in self.static.items() if name in need]
        lines += [f"    {name} = _y[{i}]" for name, i in self.species.items() if name in need]
        lines += [f"    {a.name} = {self.model.expression(a.name).scalar()}"
                  for a in self.model.assignments if a.name in need and a.name not in self.static]
        return lines


def static_assignments(model: Model) -> list[str]:
    """Assignments that depend on parameters only (computed once per individual)."""
    dynamic = set(model.species_names) | {"t"}
    out = []
    for a in model.assignments:
        if model.expression(a.name).symbols & dynamic:
            dynamic.add(a.name)
        else:
            out.append(a.name)
    return out


def pre_source(model: Model, static: dict[str, int], decorator: str) -> list[str]:
    """Lines of ``_pre(_p, _q)``: the parameter-only assignments into ``_q``."""
    lines = [decorator, "def _pre(_p, _q):"]
    lines += ScalarWriter(model, {}).prelude(set(static)) or ["    pass"]
    lines += [f"    _q[{i}] = {name}" for name, i in static.items()]
    return lines

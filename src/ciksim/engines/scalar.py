"""Scalar (one individual) code written from a model's declaration, for numba.

Parameter-only assignments are computed once per individual into ``_q``; each generated
function unpacks only the parameters, species and assignments its expressions need.
:func:`hoist_constant_terms` goes further for the code that runs every step: each largest
sub-expression of a rate law that depends on parameters only becomes a name computed once
per individual too (the same operations on the same numbers, so the same results bit for
bit).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from ciksim.model.expression import Expression

if TYPE_CHECKING:
    from ciksim.model import Model


class ScalarWriter:
    """Scalar code for one function: unpacks what its expressions need, in order.

    ``rewritten``: expressions to use instead of the model's (by name), e.g. those of
    :func:`hoist_constant_terms`, whose hoisted terms are then names in ``static``.
    """

    def __init__(self, model: Model, static: dict[str, int],
                 rewritten: Mapping[str, Expression] | None = None):
        self.model = model
        self.static = static
        self.rewritten = dict(rewritten or {})
        self.species = {s.name: i for i, s in enumerate(model.species)}
        self.params = {p.name: i for i, p in enumerate(model.parameters)}

    def expression(self, name: str) -> Expression:
        """The expression of an assignment or process (rewritten if given)."""
        return self.rewritten.get(name) or self.model.expression(name)

    def needed(self, symbols: set[str]) -> set[str]:
        """``symbols`` and every assignment they depend on, through assignments."""
        todo, seen = list(symbols), set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in self.model.assignment_by_name and name not in self.static:
                todo += self.expression(name).symbols
        return seen

    def prelude(self, symbols: set[str], p_at: Callable[[int], str] = "_p[{}]".format,
                q_at: Callable[[int], str] = "_q[{}]".format) -> list[str]:
        """Lines that unpack what ``symbols`` need; ``p_at``/``q_at`` write the element
        holding parameter ``i`` / parameter-only term ``i`` (default ``_p[i]``/``_q[i]``)."""
        need = self.needed(symbols)
        lines = [f"    {name} = {p_at(i)}" for name, i in self.params.items() if name in need]
        lines += [f"    {name} = {q_at(i)}" for name, i in self.static.items() if name in need]
        lines += [f"    {name} = _y[{i}]" for name, i in self.species.items() if name in need]
        lines += [f"    {a.name} = {self.expression(a.name).scalar()}"
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


def pre_source(model: Model, static: dict[str, int], decorator: str,
               terms: Mapping[str, Expression] | None = None) -> list[str]:
    """Lines of ``_pre(_p, _q)``: the parameter-only assignments into ``_q``, then the
    hoisted ``terms`` (name: expression over parameters and those assignments) after
    them, at the indices that follow."""
    terms = terms or {}
    symbols = set(static).union(*(e.symbols for e in terms.values()))
    lines = [decorator, "def _pre(_p, _q):"]
    lines += ScalarWriter(model, {}).prelude(symbols) or ["    pass"]
    lines += [f"    _q[{i}] = {name}" for name, i in static.items()]
    lines += [f"    _q[{len(static) + k}] = {e.scalar()}" for k, e in enumerate(terms.values())]
    return lines


def hoist_constant_terms(model: Model, names: Iterable[str], static: Mapping[str, int],
                         reciprocals: bool = False
                         ) -> tuple[dict[str, Expression], dict[str, Expression]]:
    """The expressions of ``names`` (processes, assignments) with every largest
    parameter-only sub-expression replaced by a name ``_c<k>``, and those terms.

    Parameter-only: no species, no time and no assignment that depends on them (names in
    ``static`` and parameters are constant for an individual). Bare names and numbers are
    left as they are; equal terms share one name. ``reciprocals``: a division by a
    parameter-only divisor becomes a multiplication by its reciprocal, hoisted too (a
    division costs several multiplications; the result may differ in the last bit, so
    only for engines that need not match another bit for bit).
    """
    dynamic = ({*model.species_names, "t"}
               | {a.name for a in model.assignments if a.name not in static})
    terms: dict[str, str] = {}  # ast dump -> name

    def name_of(node: ast.expr) -> ast.Name:
        key = ast.dump(node)
        if key not in terms:
            terms[key] = f"_c{len(terms)}"
            texts[terms[key]] = ast.unparse(node)
        return ast.Name(terms[key], ast.Load())

    def visit(node: ast.expr) -> tuple[ast.expr, bool]:
        if isinstance(node, ast.Name):
            return node, node.id not in dynamic
        if isinstance(node, ast.Constant):
            return node, True
        children = ([node.left, node.right] if isinstance(node, ast.BinOp) else
                    [node.operand] if isinstance(node, ast.UnaryOp) else list(node.args))
        seen = [visit(c) for c in children]
        if all(const for _, const in seen):
            return node, True
        if (reciprocals and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
                and seen[1][1] and _hoistable(inverse := ast.BinOp(
                    ast.Constant(1.0), ast.Div(), seen[1][0]))):
            return ast.BinOp(seen[0][0], ast.Mult(), name_of(inverse)), False
        new = [name_of(c) if const and _hoistable(c) else c for c, const in seen]
        if isinstance(node, ast.BinOp):
            return ast.BinOp(new[0], node.op, new[1]), False
        if isinstance(node, ast.UnaryOp):
            return ast.UnaryOp(node.op, new[0]), False
        assert isinstance(node, ast.Call)
        return ast.Call(node.func, new, []), False

    texts: dict[str, str] = {}
    out = {}
    for name in names:
        body, const = visit(model.expression(name).body)
        if const and _hoistable(body):
            body = name_of(body)
        out[name] = Expression(ast.unparse(body))
    return out, {k: Expression(v) for k, v in texts.items()}


def _hoistable(node: ast.expr) -> bool:
    """Worth computing once: an operation on at least one name (not a bare name or a
    number, nor arithmetic on numbers alone, which the compiler folds)."""
    return not isinstance(node, (ast.Name, ast.Constant)) and any(
        isinstance(n, ast.Name) for n in ast.walk(node))

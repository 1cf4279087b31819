"""Rate-law expressions: parsed once, then compiled, unit-checked and rendered.

An expression is a small arithmetic formula in Python syntax over the model's symbols:
``+ - * / **``, numbers, and the functions ``exp log sqrt min max``. It is parsed with
:mod:`ast` and checked against a whitelist, so a model file can never run arbitrary code.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ciksim.errors import ModelError, UnitError
from ciksim.units import registry

if TYPE_CHECKING:
    import pint

FUNCTIONS: dict[str, object] = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "min": np.minimum,
    "max": np.maximum,
}
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}


@dataclass(frozen=True)
class Expression:
    """A parsed formula. ``text`` is the source; ``symbols`` the names it uses."""

    text: str
    symbols: frozenset[str] = field(init=False)
    _tree: ast.Expression = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            tree = ast.parse(self.text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ModelError(f"cannot parse expression {self.text!r}: {exc.msg}") from exc
        names: set[str] = set()
        for node in ast.walk(tree):
            _check_node(node, self.text, names)
        object.__setattr__(self, "_tree", tree)
        object.__setattr__(self, "symbols", frozenset(names))

    @property
    def body(self) -> ast.expr:
        """The parsed syntax tree (``ast``) of the formula, for other renderers."""
        return self._tree.body

    def python(self) -> str:
        """Source for numpy evaluation (``min``/``max`` become element-wise)."""
        return _render(self._tree.body, "python")

    def __str__(self) -> str:
        text = _render(self._tree.body, "text")
        if isinstance(self._tree.body, ast.BinOp):
            text = text[1:-1]  # the outermost parentheses add nothing
        return text

    def scalar(self) -> str:
        """Source for scalar (per-individual) evaluation in compiled code: ``math`` functions
        and the built-in ``min``/``max``."""
        return _render(self._tree.body, "scalar")

    def l3(self, substitute: Mapping[str, str] | None = None) -> str:
        """SBML Level 3 infix formula (libsbml ``parseL3Formula``): ``^``, ``ln``; names in
        ``substitute`` are replaced by the given text (e.g. a dose amount)."""
        return _render(self._tree.body, "l3", substitute)

    def units(self, env: Mapping[str, pint.Unit], *, where: str) -> pint.Unit:
        """The unit of the expression given the unit of each symbol; raises UnitError."""
        ureg = registry()
        return _units(self._tree.body, env, ureg, where, self.text)


def _check_node(node: ast.AST, text: str, names: set[str]) -> None:
    allowed = (
        ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Load,
        ast.USub, ast.UAdd, *_BINOPS,
    )
    if not isinstance(node, allowed):
        raise ModelError(
            f"expression {text!r} uses {type(node).__name__}, which rate laws do not allow; "
            "use numbers, symbols, + - * / ** and exp, log, sqrt, min, max"
        )
    if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)):
        raise ModelError(f"expression {text!r}: constant {node.value!r} is not a number")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
            raise ModelError(
                f"expression {text!r}: unknown function call; allowed: {', '.join(FUNCTIONS)}"
            )
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            return
        names.add(node.id)


_FUNCTION_NAMES = {
    "python": {"min": "_np_minimum", "max": "_np_maximum", "exp": "_np_exp", "log": "_np_log",
               "sqrt": "_np_sqrt"},
    "scalar": {"exp": "math.exp", "log": "math.log", "sqrt": "math.sqrt"},
    "l3": {"log": "ln"},
    "text": {},
}


def _render(node: ast.AST, style: str, sub: Mapping[str, str] | None = None) -> str:
    """Render for ``style``: ``python`` (numpy), ``scalar`` (math), ``l3`` (SBML), ``text``."""
    if isinstance(node, ast.Constant):
        return f"{node.value:g}" if style == "text" else repr(float(node.value))
    if isinstance(node, ast.Name):
        return f"({sub[node.id]})" if sub and node.id in sub else node.id
    if isinstance(node, ast.UnaryOp):
        sign = "-" if isinstance(node.op, ast.USub) else "+"
        return f"({sign}{_render(node.operand, style, sub)})"
    if isinstance(node, ast.BinOp):
        op = "^" if style == "l3" and isinstance(node.op, ast.Pow) else _BINOPS[type(node.op)]
        return f"({_render(node.left, style, sub)} {op} {_render(node.right, style, sub)})"
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    args = ", ".join(_render(a, style, sub) for a in node.args)
    return f"{_FUNCTION_NAMES[style].get(node.func.id, node.func.id)}({args})"


def _units(node, env, ureg, where: str, text: str) -> pint.Unit:
    dimless = ureg.dimensionless
    if isinstance(node, ast.Constant):
        return dimless
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.UnaryOp):
        return _units(node.operand, env, ureg, where, text)
    if isinstance(node, ast.BinOp):
        left = _units(node.left, env, ureg, where, text)
        if isinstance(node.op, ast.Pow):
            if not isinstance(node.right, ast.Constant):
                right = _units(node.right, env, ureg, where, text)
                if not _dimensionless(left, ureg) or not _dimensionless(right, ureg):
                    raise UnitError(f"{where}: a variable power needs dimensionless operands")
                return dimless
            return (ureg.Quantity(1.0, left) ** float(node.right.value)).units
        right = _units(node.right, env, ureg, where, text)
        if isinstance(node.op, (ast.Add, ast.Sub)):
            if _is_zero(node.left):
                return right
            if _is_zero(node.right):
                return left
            return _same(left, right, ureg, where, text)
        q = ureg.Quantity(1.0, left)
        r = ureg.Quantity(1.0, right)
        return (q * r).units if isinstance(node.op, ast.Mult) else (q / r).units
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    args = [_units(a, env, ureg, where, text) for a in node.args if not _is_zero(a)]
    if not args:
        return dimless
    if node.func.id in ("exp", "log"):
        if not _dimensionless(args[0], ureg):
            raise UnitError(
                f"{where}: {node.func.id}() needs a dimensionless argument, got {args[0]:~} "
                f"in {text!r}"
            )
        return dimless
    if node.func.id == "sqrt":
        return (ureg.Quantity(1.0, args[0]) ** 0.5).units
    out = args[0]
    for other in args[1:]:
        out = _same(out, other, ureg, where, text)
    return out


def _is_zero(node: ast.AST) -> bool:
    """A literal 0 fits any unit (``max(x, 0)``, ``x + 0``)."""
    return isinstance(node, ast.Constant) and node.value == 0


def _dimensionless(unit: pint.Unit, ureg) -> bool:
    return ureg.Quantity(1.0, unit).to_base_units().dimensionless and abs(
        ureg.Quantity(1.0, unit).to(ureg.dimensionless).magnitude - 1.0
    ) < 1e-9


def _same(a: pint.Unit, b: pint.Unit, ureg, where: str, text: str) -> pint.Unit:
    from ciksim.units import describe, same_unit

    if not same_unit(a, b):
        raise UnitError(
            f"{where}: terms of {text!r} mix units {describe(a)} and {describe(b)}; "
            "convert one with a parameter so both share a unit"
        )
    return a

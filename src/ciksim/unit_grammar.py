"""A bounded grammar for quantity and unit strings, checked before pint sees them.

pint evaluates unit expressions with a general expression parser, so a 17-character string
such as ``"3 ** 9 ** 9 IU/mL"`` can make it compute a number with billions of digits. Every
unit or quantity string a user gives is first matched against this small grammar::

    quantity  := number [unit]                    e.g. "500 IU/mL", "2e6 cells/mL", "0.5"
    number    := [+-] digits [. digits] [e [+-] digits(1-3)]
    unit      := factor ((* | / | space) factor)*
    factor    := name [(^ | **) integer(1-2 digits)] | "1" | "(" unit ")"
    name      := a letter, _, %, µ or ° followed by letters, digits or _

at most ``MAX_LENGTH`` characters and ``MAX_DEPTH`` nested parentheses. A string outside
the grammar raises :class:`~ciksim.errors.UnitError` naming the field and the fix.
"""

from __future__ import annotations

import re

from ciksim.errors import UnitError

MAX_LENGTH = 80
MAX_DEPTH = 3
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?")
_NAME = re.compile(r"[A-Za-z_%µμ°][A-Za-z0-9_]*")
_EXPONENT = re.compile(r"\s*(?:\^|\*\*)\s*([+-]?\d{1,2})(?![\d.])")
_OP = re.compile(r"\s*([*/])\s*|\s+")
_EXAMPLES = "write it like '500 IU/mL', '2e6 cells/mL', '1/day' or '0.5'"


def _fail(field: str, text: str, why: str) -> UnitError:
    return UnitError(f"{field}: cannot read {text!r} ({why}); {_EXAMPLES}")


class _Parser:
    def __init__(self, text: str, field: str) -> None:
        self.text, self.field, self.pos, self.depth = text, field, 0, 0

    def error(self, why: str) -> UnitError:
        return _fail(self.field, self.text, f"{why} at character {self.pos + 1}")

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def unit(self) -> None:
        self.factor()
        while not self.at_end() and self.text[self.pos] != ")":
            m = _OP.match(self.text, self.pos)
            if m is None:
                raise self.error("expected *, / or a space between units")
            self.pos = m.end()
            self.factor()

    def factor(self) -> None:
        text = self.text
        if self.at_end():
            raise self.error("a unit is missing")
        if text[self.pos] == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"more than {MAX_DEPTH} nested parentheses")
            self.pos += 1
            self.unit()
            if self.at_end() or text[self.pos] != ")":
                raise self.error("unclosed parenthesis")
            self.pos += 1
            self.depth -= 1
        elif text[self.pos] == "1" and not text[self.pos + 1:self.pos + 2].isdigit():
            self.pos += 1
        else:
            m = _NAME.match(text, self.pos)
            if m is None:
                raise self.error("expected a unit name")
            self.pos = m.end()
        m = _EXPONENT.match(text, self.pos)
        if m is not None:
            self.pos = m.end()


def check_unit_text(text: str, *, field: str) -> str:
    """``text`` stripped, if it is a unit expression of the grammar; else UnitError."""
    if not isinstance(text, str):
        raise UnitError(f"{field}: a unit must be text like 'cells/mL', got {text!r}")
    s = text.strip()
    if len(s) > MAX_LENGTH:
        raise _fail(field, text[:MAX_LENGTH] + "...", f"longer than {MAX_LENGTH} characters")
    if s in ("", "1"):
        return s
    parser = _Parser(s, field)
    parser.unit()
    if not parser.at_end():
        raise parser.error("unbalanced parenthesis")
    return s


def check_quantity_text(text: str, *, field: str) -> tuple[float, str]:
    """(number, unit text) of a quantity string of the grammar; else UnitError.

    The number may be any float (the caller checks finiteness and range).
    """
    if not isinstance(text, str):
        raise UnitError(f"{field}: a quantity must be text like '500 IU/mL', got {text!r}")
    s = text.strip()
    if len(s) > MAX_LENGTH:
        raise _fail(field, text[:MAX_LENGTH] + "...", f"longer than {MAX_LENGTH} characters")
    m = _NUMBER.match(s)
    if m is None:
        raise _fail(field, text, "it does not start with a number")
    unit = s[m.end():]
    if unit and not unit[0].isspace() and unit[0] not in "(/*" and not _NAME.match(unit):
        raise _fail(field, text, f"unexpected {unit[0]!r} after the number")
    unit = unit.strip()
    if unit:
        try:
            check_unit_text(unit, field=field)
        except UnitError as exc:  # show the whole quantity, not only its unit
            raise UnitError(str(exc).replace(repr(unit), repr(s), 1)) from None
    return float(m.group()), unit

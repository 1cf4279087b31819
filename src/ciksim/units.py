"""The project's unit registry (pint), with the units of this field.

Units are checked when a model or protocol is built; hot loops use plain floats in the
declared units, so a unit is only ever a label there. pint is imported when a check needs
it: what it established once (a unit text reads, a model's units agree, a quantity's value
in a unit) is remembered by :mod:`ciksim.unit_cache`, so a warm start does not import it.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ciksim import unit_cache
from ciksim.errors import UnitError
from ciksim.unit_grammar import check_quantity_text, check_unit_text

if TYPE_CHECKING:
    import pint

_DEFINITIONS = """
cell = [cell_count] = cells
IU = [biological_activity] = international_unit_activity
U = IU
"""


@lru_cache(maxsize=1)
def registry() -> pint.UnitRegistry:
    """The shared registry: pint defaults plus ``cell`` and ``IU`` (and ``U``)."""
    return new_registry()


def new_registry() -> pint.UnitRegistry:
    """A fresh registry like :func:`registry`'s (quantities of different registries do not
    mix: use :func:`registry` everywhere else)."""
    import pint

    try:  # pint keeps its parsed default definitions there: a fresh process skips parsing
        ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True,
                                 cache_folder=pint_cache_folder())
    except OSError:  # no writable cache, or a cache pint cannot read back: parse afresh
        ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    for line in _DEFINITIONS.strip().splitlines():
        ureg.define(line)
    return ureg


def pint_cache_folder() -> Path:
    """pint's cache of parsed definitions, one per pint installation: the cached entries
    name the definition files of the installation that wrote them by absolute path, so
    another environment (or a deleted one) must not share them."""
    import pint

    from ciksim.cache import cache_dir

    key = hashlib.sha256(f"{pint.__file__}|{pint.__version__}".encode()).hexdigest()[:16]
    return cache_dir() / "pint" / key


def parse_unit(text: str, *, field: str) -> pint.Unit:
    """Parse a unit string (``"cells/mL"``, ``"1/day"``, ``"1"`` for dimensionless).

    The text must fit the bounded unit grammar (:mod:`ciksim.unit_grammar`) first.
    """
    check_unit_text(text, field=field)
    ureg = registry()
    try:
        return ureg.Unit("dimensionless" if text.strip() in ("", "1") else text)
    except Exception as exc:  # pint raises several unrelated types
        raise UnitError(
            f"{field}: cannot read unit {text!r} ({exc}); write it like 'cells/mL', '1/day' or '1'"
        ) from exc


def check_unit(text: str, *, field: str) -> None:
    """Raise :class:`UnitError` naming ``field`` unless ``text`` reads as a unit (what
    :func:`parse_unit` accepts); a text pint has read before is not read again."""
    check_unit_text(text, field=field)
    if unit_cache.recall("unit", text):
        return
    parse_unit(text, field=field)
    unit_cache.remember("unit", text)


def quantity(value: float | str, unit: str | None = None, *, field: str) -> pint.Quantity:
    """A pint quantity from ``"500 IU/mL"`` or from a number and a unit string."""
    ureg = registry()
    if isinstance(value, str):
        number, unit_text = check_quantity_text(value, field=field)
        return ureg.Quantity(number, parse_unit(unit_text or "1", field=field))
    try:
        return ureg.Quantity(float(value), parse_unit(unit or "1", field=field))
    except UnitError:
        raise
    except Exception as exc:
        raise UnitError(
            f"{field}: cannot read quantity {value!r} ({exc}); write it like '500 IU/mL'"
        ) from exc


def convert(value: float | str, target: str, *, field: str) -> float:
    """Convert ``value`` to the unit ``target`` and return a float.

    A bare number is taken to be in ``target`` already. A string such as ``"2e6 cells/mL"``
    is converted; a unit of another dimension raises :class:`UnitError` naming ``field``.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    key = f"{value}\0{target}"
    known = unit_cache.recall("convert", key) if isinstance(value, str) else None
    if isinstance(known, float):
        return known
    import pint

    q = quantity(value, field=field)
    tgt = parse_unit(target, field=field)
    try:
        out = float(q.to(tgt).magnitude)
    except pint.DimensionalityError as exc:
        raise UnitError(
            f"{field}: {value!r} has unit {q.units:~} which does not convert to {target!r}; "
            f"give the value in {target}"
        ) from exc
    if isinstance(value, str):
        unit_cache.remember("convert", key, out)
    return out


def same_unit(a: pint.Unit, b: pint.Unit) -> bool:
    """True when ``a`` and ``b`` are the same unit (same dimension and factor 1)."""
    import pint

    ureg = registry()
    try:
        factor = ureg.Quantity(1.0, a).to(b).magnitude
    except pint.DimensionalityError:
        return False
    return abs(factor - 1.0) < 1e-9


def describe(unit: pint.Unit) -> str:
    """Short printable form of a unit ('1' for dimensionless)."""
    text = f"{unit:~C}"
    return text or "1"

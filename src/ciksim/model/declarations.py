"""Declarations a model is made of: parameters, species, assignments and processes.

Each is a frozen dataclass validated on construction; errors name the field and the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from ciksim.errors import ModelError
from ciksim.model.expression import FUNCTIONS, Expression
from ciksim.units import check_unit

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED = frozenset({"t", *FUNCTIONS})


def check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ModelError(f"{what} name {name!r} is not an identifier; use letters, digits and _")
    if name in RESERVED:
        raise ModelError(f"{what} name {name!r} is reserved (time and functions); rename it")


@dataclass(frozen=True)
class Parameter:
    """A model constant with its unit, plausible range and source.

    ``value`` is in ``unit``; ``low``/``high`` bound the plausible range (used for donor
    sampling limits and sensitivity analysis); ``source`` is a citation key such as
    ``"culture S10 Kim 2012"`` or starts with ``"assumed"`` followed by the reason.
    ``variability`` is the log-normal between-individual SD (0: identical in everyone).
    """

    name: str
    value: float
    unit: str
    low: float
    high: float
    source: str
    description: str
    variability: float = 0.0

    def __post_init__(self) -> None:
        check_name(self.name, "parameter")
        where = f"parameter {self.name!r}"
        check_unit(self.unit, field=f"{where}.unit")
        for key in ("value", "low", "high", "variability"):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ModelError(f"{where}.{key} must be a finite number, got {v!r}")
        if not self.low <= self.value <= self.high:
            raise ModelError(
                f"{where}: value {self.value:g} lies outside its range "
                f"[{self.low:g}, {self.high:g}]; fix the value or widen the range"
            )
        if self.variability < 0:
            raise ModelError(f"{where}.variability must be >= 0 (a log-normal SD)")
        if not self.source.strip():
            raise ModelError(
                f"{where}.source is empty; give a citation key or 'assumed: <reason>'"
            )
        if not self.description.strip():
            raise ModelError(f"{where}.description is empty; say what the parameter means")

    @property
    def assumed(self) -> bool:
        return self.source.lower().startswith("assumed")


@dataclass(frozen=True)
class Species:
    """A state variable: a population (``kind="amount"``, e.g. cells), a concentration, the
    culture volume, or an intensive ``state`` that medium handling leaves alone.

    ``initial`` is an expression over parameters giving the value at time 0, in ``unit``.
    ``roles`` are labels other code finds it by ("cells", "cd3", "leukemic", ...).
    ``medium`` is its concentration in fresh medium (used when a protocol feeds).
    """

    name: str
    unit: str
    description: str
    initial: str = "0"
    kind: Literal["amount", "concentration", "volume", "state"] = "amount"
    roles: tuple[str, ...] = ()
    medium: float = 0.0

    def __post_init__(self) -> None:
        check_name(self.name, "species")
        check_unit(self.unit, field=f"species {self.name!r}.unit")
        if self.kind not in ("amount", "concentration", "volume", "state"):
            raise ModelError(
                f"species {self.name!r}.kind is {self.kind!r}; use amount, concentration, "
                "volume or state"
            )
        object.__setattr__(self, "roles", tuple(self.roles))


@dataclass(frozen=True)
class Assignment:
    """A named expression evaluated from the state (a derived quantity or an output)."""

    name: str
    expr: str
    unit: str
    description: str
    roles: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.name, "assignment")
        check_unit(self.unit, field=f"assignment {self.name!r}.unit")
        object.__setattr__(self, "roles", tuple(self.roles))


@dataclass(frozen=True)
class Process:
    """A flux with a rate law and the species it changes.

    ``rate`` is in [species unit]/[time unit] for every species in ``changes``;
    ``changes`` maps a species to its stoichiometric coefficient (e.g. ``{"A": -1, "B": 1}``).
    """

    name: str
    rate: str
    changes: Mapping[str, float]
    description: str
    roles: tuple[str, ...] = ()
    _changes: Mapping[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_name(self.name, "process")
        if not self.changes:
            raise ModelError(f"process {self.name!r} changes no species; give changes={{...}}")
        for sp, coef in self.changes.items():
            if not isinstance(coef, (int, float)) or coef == 0:
                raise ModelError(
                    f"process {self.name!r}: coefficient of {sp!r} must be a non-zero number"
                )
        object.__setattr__(self, "changes", MappingProxyType(dict(self.changes)))
        object.__setattr__(self, "roles", tuple(self.roles))


def parse(text: str, where: str) -> Expression:
    try:
        return Expression(text)
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from exc


@dataclass(frozen=True)
class Dose:
    """What a protocol ``dose`` event does to the state, per unit ``amount`` given.

    ``adds`` maps species to expressions of the amount added (symbol ``amount``, in
    ``unit``, plus parameters), in the species' unit; ``scales`` maps species to surviving
    fractions (dimensionless), e.g. ``10 ** (-logkill * amount)`` for chemotherapy.
    Discrete (stochastic) species are thinned binomially by the stochastic engine.
    """

    name: str
    unit: str
    description: str
    adds: Mapping[str, str] = field(default_factory=dict)
    scales: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "dose")
        check_unit(self.unit, field=f"dose {self.name!r}.unit")
        if not self.adds and not self.scales:
            raise ModelError(f"dose {self.name!r} changes nothing; give adds or scales")
        object.__setattr__(self, "adds", MappingProxyType(dict(self.adds)))
        object.__setattr__(self, "scales", MappingProxyType(dict(self.scales)))

"""Protocols: timed events applied to a model's state (culture handling, dosing).

A Protocol is plain data, independent of any model, validated on construction and
immutable. It is bound to a model when simulated: species names are checked and quantities
converted to the model's units then. Protocols are read from TOML (see ``data/protocols``).

Actions:

``set``      set species to values (e.g. IFN-γ 1000 IU/mL on day 0)
``add``      add to species (cells or a cytokine bolus)
``feed``     add fresh medium (``volume_fraction`` of the current volume, or ``volume``):
             the volume grows, concentrations dilute towards fresh medium, and the species
             in ``top_up`` are raised to the given concentration
``split``    where cell density exceeds ``max_density``, dilute to ``target_density``;
             ``cells = "keep"`` adds medium (volume grows), ``"discard"`` throws away the
             surplus culture and refills to the same volume; ``top_up`` as for feed
``harvest``  marks the harvest day (the product is read from the state on that day)
``dose``     gives ``amount`` of a dose the model declares (an infusion, a chemotherapy
             course): the model says what it adds to or which fraction survives of each
             species

Triggers (:class:`Trigger`) are doses given in response to monitoring, individual by
individual: on each monitoring day, after that day's fixed events, a trigger that has not
fired yet fires if its watched quantity (a species or derived quantity of the model) is at or
above its ``above`` threshold (or at or below its ``below`` threshold); its doses are then
given at the trigger day plus their offsets. Each trigger fires at most once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from ciksim.errors import ProtocolError, UnitError
from ciksim.schemas.base import LIMITS
from ciksim.schemas.protocol import ACTIONS
from ciksim.units import convert

if TYPE_CHECKING:
    from ciksim.model import Model


Value = float | str


@dataclass(frozen=True)
class Event:
    """One action at one time ``day`` (days from the start of the protocol)."""

    day: float
    action: str
    values: Mapping[str, Value] = field(default_factory=dict)
    volume_fraction: float | None = None
    volume: Value | None = None
    max_density: Value | None = None
    target_density: Value | None = None
    cells: str = "keep"
    top_up: Mapping[str, Value] = field(default_factory=dict)
    dose: str | None = None
    amount: Value | None = None
    note: str = ""

    def __post_init__(self) -> None:
        where = f"event {self.action!r} on day {self.day:g}"
        if self.action not in ACTIONS:
            raise ProtocolError(
                f"unknown action {self.action!r}; expected one of {', '.join(ACTIONS)}"
            )
        if not math.isfinite(self.day) or self.day < 0:
            raise ProtocolError(f"{where}: day must be a number >= 0")
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "top_up", MappingProxyType(dict(self.top_up)))
        for key, mapping in (("values", self.values), ("top_up", self.top_up)):
            for name, v in mapping.items():
                _nonnegative(v, f"{where}: {key}.{name}")
        if self.action in ("set", "add") and not self.values:
            raise ProtocolError(f"{where}: give values = {{species = amount}}")
        if self.action == "feed":
            if (self.volume_fraction is None) == (self.volume is None):
                raise ProtocolError(f"{where}: give exactly one of volume_fraction or volume")
            if self.volume_fraction is not None and not self.volume_fraction > 0:
                raise ProtocolError(f"{where}: volume_fraction must be > 0 (e.g. 0.5)")
            if self.volume is not None:
                _nonnegative(self.volume, f"{where}: volume")
        if self.action == "dose":
            if not self.dose or self.amount is None:
                raise ProtocolError(f"{where}: give dose = <name> and amount = <quantity>")
            _nonnegative(self.amount, f"{where}: amount")
            if _number(self.amount) <= 0:
                raise ProtocolError(f"{where}: amount must be > 0 (a dose of nothing)")
        if self.action == "split":
            if self.max_density is None or self.target_density is None:
                raise ProtocolError(f"{where}: give max_density and target_density")
            if self.cells not in ("keep", "discard"):
                raise ProtocolError(f"{where}: cells must be 'keep' or 'discard'")
            _nonnegative(self.max_density, f"{where}: max_density")
            _nonnegative(self.target_density, f"{where}: target_density")


@dataclass(frozen=True)
class TriggerDose:
    """A dose a trigger gives ``offset`` days after the day it fires."""

    offset: float
    dose: str
    amount: Value

    def __post_init__(self) -> None:
        if isinstance(self.offset, bool) or not isinstance(self.offset, (int, float)) \
                or not math.isfinite(self.offset) or self.offset < 0:
            raise ProtocolError(f"offset {self.offset!r}: give days >= 0 after the trigger day")
        object.__setattr__(self, "offset", float(self.offset))
        if not isinstance(self.dose, str) or not self.dose:
            raise ProtocolError("dose: give the name of a dose the model declares")
        _nonnegative(self.amount, "amount")
        if _number(self.amount) <= 0:
            raise ProtocolError("amount must be > 0 (a dose of nothing)")


@dataclass(frozen=True)
class Trigger:
    """Doses given when monitoring finds ``watch`` at or above ``above`` (or at or below
    ``below``), individual by individual; fires at most once.

    ``watch``: a species or derived quantity (assignment) of the model the protocol is
    simulated with; thresholds are numbers in its unit or quantity strings. ``monitor``: the
    monitoring days, as days (``[30, 60, 90]``), ``{"days": [...]}`` or ``{"first": 30,
    "every": 30, "last": 720}`` (stored expanded, days since the start of the protocol).
    ``doses``: :class:`TriggerDose` or ``{"offset": 0, "dose": "cik", "amount": 1e7}``
    (offset in days after the trigger day); none (``[]``): a monitoring-only trigger, which
    only records the day it fires (e.g. the day MRD is first found). The condition is
    evaluated on the state of the monitoring day after that day's fixed events; doses with
    offset 0 follow at once.
    """

    name: str
    watch: str
    above: Value | None = None
    below: Value | None = None
    monitor: Any = ()
    doses: Any = ()
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ProtocolError("trigger: give a name (it labels the trigger day in results)")
        where = f"trigger {self.name!r}"
        if not isinstance(self.watch, str) or not self.watch:
            raise ProtocolError(f"{where}: watch: give a species or derived quantity of the "
                                "model (e.g. 'mrd')")
        if (self.above is None) == (self.below is None):
            raise ProtocolError(f"{where}: give exactly one of above or below (the threshold "
                                f"of {self.watch!r})")
        side = "above" if self.above is not None else "below"
        _nonnegative(self.threshold_value, f"{where}: {side}")
        object.__setattr__(self, "monitor", monitoring_days(self.monitor, f"{where}: monitor"))
        doses = self.doses
        if isinstance(doses, Mapping) or not isinstance(doses, (list, tuple)):
            raise ProtocolError(f"{where}: doses: give a list of {{offset = days, dose = "
                                "name, amount = quantity}} (or [] to monitor only)")
        out = []
        for j, d in enumerate(doses):
            try:
                if isinstance(d, TriggerDose):
                    out.append(d)
                elif isinstance(d, Mapping):
                    unknown = sorted(set(d) - {"offset", "dose", "amount"})
                    if unknown:
                        raise ProtocolError(f"unknown field(s) {', '.join(map(str, unknown))}"
                                            "; allowed: offset, dose, amount")
                    out.append(TriggerDose(d.get("offset", 0.0), d.get("dose", ""),
                                           d.get("amount")))  # type: ignore[arg-type]
                else:
                    raise ProtocolError("give a table {offset, dose, amount}")
            except ProtocolError as exc:
                raise ProtocolError(f"{where}: doses[{j}]: {exc}") from None
        object.__setattr__(self, "doses", tuple(out))

    @property
    def threshold_value(self) -> Value:
        """The threshold as given (``above`` or ``below``)."""
        return self.above if self.above is not None else self.below  # type: ignore[return-value]

    @property
    def upward(self) -> bool:
        """True for ``above`` (fires at or above), False for ``below``."""
        return self.above is not None

    def as_dict(self) -> dict[str, Any]:
        """The trigger as a ``[[triggers]]`` table (monitoring days listed)."""
        side = "above" if self.upward else "below"
        out: dict[str, Any] = {"name": self.name, "watch": self.watch,
                               side: self.threshold_value, "monitor": {"days": list(self.monitor)},
                               "doses": [{"offset": d.offset, "dose": d.dose, "amount": d.amount}
                                         for d in self.doses]}
        if self.note:
            out["note"] = self.note
        return out

    def bind(self, model: Model, protocol: str) -> BoundTrigger:
        """Names, units and doses checked against ``model``."""
        return BoundTrigger.bind(self, model, protocol)


def monitoring_days(spec: Any, where: str = "monitor") -> tuple[float, ...]:
    """Monitoring days from a list of days, ``{"days": [...]}`` or ``{"first", "every",
    "last"}`` (``last`` included when on the schedule); strictly increasing, >= 0, at most
    the ``max_visits`` limit."""
    lim = LIMITS["max_visits"]
    if isinstance(spec, Mapping):
        keys = set(spec)
        if keys == {"days"}:
            spec = spec["days"]
        elif keys == {"first", "every", "last"}:
            first, every, last = (spec[k] for k in ("first", "every", "last"))
            for key, v in (("first", first), ("every", every), ("last", last)):
                if isinstance(v, bool) or not isinstance(v, (int, float)) \
                        or not math.isfinite(v) or v < 0:
                    raise ProtocolError(f"{where}.{key} = {v!r}: give days >= 0")
            if every < LIMITS["min_event_spacing"].value:
                raise ProtocolError(f"{where}.every = {every!r}: give at least "
                                    f"{LIMITS['min_event_spacing'].value:g} days")
            if last < first:
                raise ProtocolError(f"{where}: last ({last:g}) is before first ({first:g})")
            count = math.floor((last - first) / every + 1e-9) + 1
            if count > lim.value:
                raise ProtocolError(f"{where}: {count} visits exceed the limit {lim.name} = "
                                    f"{lim.value:g} ({lim.reason}); use a larger 'every'")
            spec = [first + k * every for k in range(count)]
        else:
            got = ", ".join(sorted(map(str, keys)))
            raise ProtocolError(f"{where}: give {{first = day, every = days, last = day}} or "
                                f"days = [day, ...]; got fields {got}")
    if isinstance(spec, (str, bytes)) or not isinstance(spec, (list, tuple, np.ndarray)):
        raise ProtocolError(f"{where}: give monitoring days: a list of days or {{first, "
                            "every, last}}")
    days = []
    for v in spec:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(v) or v < 0:
            raise ProtocolError(f"{where}: day {v!r} must be a number >= 0")
        days.append(float(v))
    if not days:
        raise ProtocolError(f"{where}: empty monitoring schedule; give at least one day (a "
                            "trigger needs monitoring to fire)")
    if len(days) > lim.value:
        raise ProtocolError(f"{where}: {len(days)} visits exceed the limit {lim.name} = "
                            f"{lim.value:g} ({lim.reason}); monitor less often")
    if any(b <= a for a, b in pairwise(days)):
        raise ProtocolError(f"{where}: days must be strictly increasing")
    if days[-1] > LIMITS["max_protocol_day"].value:
        raise ProtocolError(f"{where}: day {days[-1]:g} exceeds the limit max_protocol_day")
    return tuple(days)


def _number(value: Value) -> float:
    return float(value) if isinstance(value, (int, float)) else float(str(value).split()[0])


def _nonnegative(value: Value, where: str) -> None:
    if isinstance(value, bool):
        raise ProtocolError(f"{where}: expected a number or a quantity string, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.split()[0])
        except (ValueError, IndexError) as exc:
            raise ProtocolError(
                f"{where}: cannot read {value!r}; write a quantity like '500 IU/mL'"
            ) from exc
    else:
        raise ProtocolError(f"{where}: expected a number or a quantity string, got {value!r}")
    if not math.isfinite(number) or number < 0:
        raise ProtocolError(f"{where}: {value!r} is negative or not finite; give a value >= 0")


@dataclass(frozen=True)
class Protocol:
    """A named, ordered list of events plus parameter settings (e.g. seeding density)."""

    name: str
    events: tuple[Event, ...] = ()
    description: str = ""
    source: str = ""
    harvest_day: float | None = None
    parameters: Mapping[str, Value] = field(default_factory=dict)
    triggers: tuple[Trigger, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", tuple(sorted(self.events, key=lambda e: e.day)))
        object.__setattr__(self, "parameters", MappingProxyType(dict(self.parameters)))
        triggers = tuple(self.triggers)
        for i, trig in enumerate(triggers):
            if not isinstance(trig, Trigger):
                raise ProtocolError(f"protocol {self.name!r}: triggers[{i}]: give a "
                                    "ciksim.protocol.Trigger")
        names = [t.name for t in triggers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ProtocolError(f"protocol {self.name!r}: triggers: name(s) {', '.join(twice)} "
                                "used twice; give each trigger its own name")
        object.__setattr__(self, "triggers", triggers)
        harvests = [e.day for e in self.events if e.action == "harvest"]
        if self.harvest_day is None and harvests:
            object.__setattr__(self, "harvest_day", harvests[0])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "protocol") -> Protocol:
        """Build from parsed TOML, validated by :class:`ciksim.schemas.ProtocolSchema`;
        errors name the field (``events[2].action``), the value and the fix."""
        from ciksim.schemas import ProtocolSchema, validate

        spec = validate(ProtocolSchema, data, origin=origin, error=ProtocolError)
        events: list[Event] = []
        for i, raw in enumerate(spec.events):
            for day in raw.expanded_days():
                try:
                    events.append(Event(day=day, action=raw.action, **raw.fields()))
                except ProtocolError as exc:
                    raise ProtocolError(f"{origin}: events[{i}]: {exc}") from exc
        return cls(name=spec.name, description=spec.description, source=spec.source,
                   harvest_day=spec.harvest_day, parameters=spec.parameters,
                   events=tuple(events), triggers=triggers_from(spec.triggers, origin))

    @classmethod
    def load(cls, name_or_path: str | Path) -> Protocol:
        """A built-in protocol by name (``cik-standard``) or a TOML file path."""
        from ciksim.data import load_toml

        data, origin = load_toml(name_or_path, "protocols", "protocol", ProtocolError)
        return cls.from_dict(data, origin=origin)

    def without(self, action: str, after: float = -1.0) -> Protocol:
        """A copy with the events of ``action`` strictly after day ``after`` removed."""
        kept = tuple(e for e in self.events if not (e.action == action and e.day > after))
        return Protocol(self.name + f"-no-{action}", kept, self.description, self.source,
                        self.harvest_day, self.parameters, self.triggers)

    def bind(self, model: Model) -> list[BoundEvent]:
        """Events as functions of the model's state, with names and units checked (the
        triggers are checked too; :meth:`bind_triggers` binds them)."""
        bound = [BoundEvent.bind(e, model, self.name) for e in self.events]
        self.bind_triggers(model)
        return bound

    def bind_triggers(self, model: Model) -> list[BoundTrigger]:
        """Triggers bound to ``model``: watched quantity, threshold unit and doses checked."""
        return [t.bind(model, self.name) for t in self.triggers]

    def parameter_values(self, model: Model) -> dict[str, float]:
        """Protocol parameter settings converted to the model's units."""
        from ciksim.model.model import assert_known
        from ciksim.schemas.parameters import checked_parameter

        assert_known(model, self.parameters, f"protocol {self.name!r}: parameters")
        out = {}
        for k, v in self.parameters.items():
            try:
                out[k] = checked_parameter(model.parameter_by_name[k], v)
            except ValueError as exc:
                raise ProtocolError(f"protocol {self.name!r}: parameters.{k} = {v!r}: "
                                    f"{exc}") from None
        return out


def triggers_from(specs: Any, origin: str) -> tuple[Trigger, ...]:
    """Triggers from validated ``[[triggers]]`` tables (:class:`ciksim.schemas.TriggerSchema`
    or plain mappings), errors prefixed with ``origin: triggers[i]``."""
    out = []
    for i, raw in enumerate(specs or ()):
        data = raw.fields() if hasattr(raw, "fields") else dict(raw)
        try:
            out.append(Trigger(**data))
        except TypeError as exc:
            raise ProtocolError(f"{origin}: triggers[{i}]: {exc}; allowed fields: name, "
                                "watch, above, below, monitor, days, doses, note") from None
        except ProtocolError as exc:
            raise ProtocolError(f"{origin}: triggers[{i}]: {exc}") from None
    return tuple(out)


def builtin_protocols() -> list[str]:
    """Names of the protocols shipped with ciksim."""
    from ciksim.data import builtin_names

    return builtin_names("protocols")


@dataclass(frozen=True)
class BoundEvent:
    """An event bound to a model: ``apply(y, kept, p)`` updates the state in place.

    ``y`` has shape (n_species, n_batch); ``kept`` (n_batch,) is the cumulative fraction of
    the culture kept through discarding splits (1 when nothing was discarded); ``p`` is the
    parameter matrix. For ``dose`` events, ``parts(p)`` gives the (species index, added
    amount) and (species index, surviving fraction) arrays, so an engine with discrete
    species can thin them binomially instead of multiplying.
    """

    day: float
    action: str
    apply: Callable[[np.ndarray, np.ndarray, np.ndarray], None]
    parts: Callable[[np.ndarray], tuple[list[tuple[int, np.ndarray]],
                                        list[tuple[int, np.ndarray]]]] | None = None

    @classmethod
    def bind(cls, event: Event, model: Model, protocol: str, where: str | None = None
             ) -> BoundEvent:
        """``event`` bound to ``model``; errors start with ``where`` (default: the protocol,
        action and day)."""
        where = where or f"protocol {protocol!r}, {event.action} on day {event.day:g}"
        index = {s: i for i, s in enumerate(model.species_names)}

        def resolve(mapping: Mapping[str, Value], key: str) -> list[tuple[int, float]]:
            out = []
            for name, value in mapping.items():
                if name not in index:
                    raise ProtocolError(
                        f"{where}: {key} names unknown species {name!r}; model "
                        f"{model.name!r} has {', '.join(model.species_names)}"
                    )
                unit = model.species_by_name[name].unit
                try:
                    out.append((index[name], convert(value, unit, field=f"{where}: {name}")))
                except UnitError as exc:
                    raise ProtocolError(str(exc)) from exc
            return out

        if event.action in ("set", "add"):
            pairs = resolve(event.values, "values")
            add = event.action == "add"

            def apply(y: np.ndarray, kept: np.ndarray, p: np.ndarray) -> None:
                for i, v in pairs:
                    y[i] = y[i] + v if add else v

            return cls(event.day, event.action, apply)
        if event.action == "harvest":
            return cls(event.day, event.action, lambda y, kept, p: None)
        if event.action == "dose":
            return cls._bind_dose(event, model, where, index)
        medium = _Medium.of(model, where)
        top = resolve(event.top_up, "top_up")
        if event.action == "feed":
            frac = event.volume_fraction
            vol = (None if event.volume is None else
                   convert(event.volume, model.species_by_name[medium.volume].unit,
                           field=f"{where}: volume"))

            def apply(y: np.ndarray, kept: np.ndarray, p: np.ndarray) -> None:
                v = y[medium.iv]
                added = frac * v if frac is not None else np.full_like(v, vol)
                medium.dilute(y, added, np.ones_like(v, dtype=bool))
                medium.top_up(y, top, np.ones_like(v, dtype=bool))

            return cls(event.day, event.action, apply)
        dens_unit = f"({model.species_by_name[medium.cells[0]].unit})/" \
                    f"({model.species_by_name[medium.volume].unit})"
        dmax = convert(event.max_density, dens_unit, field=f"{where}: max_density")
        dtarget = convert(event.target_density, dens_unit, field=f"{where}: target_density")
        per_ml = convert(f"1 {dens_unit}", "cells/mL", field=f"{where}: max_density")
        LIMITS["max_density"].check(dmax * per_ml, field=f"{where}: max_density (cells/mL)",
                                    error=ProtocolError)
        if dtarget > dmax or dtarget <= 0:
            raise ProtocolError(f"{where}: need 0 < target_density <= max_density")
        discard = event.cells == "discard"

        def apply(y: np.ndarray, kept: np.ndarray, p: np.ndarray) -> None:
            v = y[medium.iv]
            cells = y[medium.cells_idx].sum(axis=0)
            density = cells / v
            hit = density > dmax
            if not np.any(hit):
                return
            if discard:
                frac_keep = np.where(hit, dtarget / np.maximum(density, 1e-300), 1.0)
                for i in medium.amount_idx:
                    y[i] *= frac_keep
                kept *= frac_keep
                added = v * (1 - frac_keep)
                y[medium.iv] = v * frac_keep
            else:
                added = np.where(hit, cells / dtarget - v, 0.0)
            medium.dilute(y, added, hit)
            medium.top_up(y, top, hit)

        return cls(event.day, event.action, apply)

    @classmethod
    def _bind_dose(cls, event: Event, model: Model, where: str,
                   index: Mapping[str, int]) -> BoundEvent:
        decl = model.dose_by_name.get(str(event.dose))
        if decl is None:
            known = ", ".join(model.dose_by_name) or "none"
            raise ProtocolError(f"{where}: model {model.name!r} declares no dose "
                                f"{event.dose!r}; its doses: {known}")
        assert event.amount is not None
        try:
            amount = convert(event.amount, decl.unit, field=f"{where}: amount")
        except UnitError as exc:
            raise ProtocolError(str(exc)) from exc
        adds = [(index[s], model.dose_function(decl.name, "adds", s)) for s in decl.adds]
        scales = [(index[s], model.dose_function(decl.name, "scales", s)) for s in decl.scales]

        def parts(p: np.ndarray) -> tuple[list[tuple[int, np.ndarray]],
                                          list[tuple[int, np.ndarray]]]:
            return ([(i, f(p, amount)) for i, f in adds],
                    [(i, np.clip(f(p, amount), 0.0, 1.0)) for i, f in scales])

        def apply(y: np.ndarray, kept: np.ndarray, p: np.ndarray) -> None:
            added, surviving = parts(p)
            for i, frac in surviving:
                y[i] = y[i] * frac
            for i, extra in added:
                y[i] = y[i] + extra

        return cls(event.day, event.action, apply, parts)


@dataclass(frozen=True)
class BoundTrigger:
    """A trigger bound to a model.

    ``species``: index of the watched species, or -1 for a derived quantity ``watch``;
    ``threshold`` in the watched quantity's unit; ``upward``: fires at or above it (else at
    or below); ``days``: monitoring days; ``doses``: (offset in days, bound dose event).
    """

    name: str
    watch: str
    species: int
    threshold: float
    upward: bool
    days: np.ndarray
    doses: tuple[tuple[float, BoundEvent], ...]

    @classmethod
    def bind(cls, trigger: Trigger, model: Model, protocol: str) -> BoundTrigger:
        where = f"protocol {protocol!r}, trigger {trigger.name!r}"
        names = model.species_names
        if trigger.watch in names:
            unit, species = model.species_by_name[trigger.watch].unit, names.index(trigger.watch)
        elif trigger.watch in model.assignment_by_name:
            unit, species = model.assignment_by_name[trigger.watch].unit, -1
        else:
            known = ", ".join(list(model.assignment_by_name) + names)
            raise ProtocolError(f"{where}: watch {trigger.watch!r} is not a species or derived "
                                f"quantity of model {model.name!r}; use one of {known}")
        side = "above" if trigger.upward else "below"
        try:
            threshold = convert(trigger.threshold_value, unit, field=f"{where}: {side}")
        except UnitError as exc:
            raise ProtocolError(str(exc)) from exc
        doses = []
        for j, d in enumerate(trigger.doses):
            event = Event(day=d.offset, action="dose", dose=d.dose, amount=d.amount)
            doses.append((d.offset, BoundEvent.bind(event, model, protocol,
                                                    where=f"{where}: doses[{j}]")))
        return cls(trigger.name, trigger.watch, species, float(threshold), trigger.upward,
                   np.asarray(trigger.monitor, dtype=float), tuple(doses))

    def holds(self, value: np.ndarray) -> np.ndarray:
        """Where the condition holds for watched values ``value`` (NaN never fires)."""
        return value >= self.threshold if self.upward else value <= self.threshold


@dataclass(frozen=True)
class _Medium:
    """Indices a medium-handling event needs: volume, cell species, concentrations."""

    volume: str
    iv: int
    cells: list[str]
    cells_idx: list[int]
    amount_idx: list[int]
    conc: list[tuple[int, float]]

    @classmethod
    def of(cls, model: Model, where: str) -> _Medium:
        vols = [s.name for s in model.species if s.kind == "volume"]
        cells = model.with_role("cells")
        cells = [c for c in cells if c in model.species_by_name]
        if len(vols) != 1 or not cells:
            raise ProtocolError(
                f"{where}: model {model.name!r} has no culture volume and cell species, so it "
                "cannot be fed or split; use set/add events"
            )
        names = model.species_names
        return cls(
            volume=vols[0],
            iv=names.index(vols[0]),
            cells=cells,
            cells_idx=[names.index(c) for c in cells],
            amount_idx=[i for i, s in enumerate(model.species) if s.kind == "amount"],
            conc=[(i, s.medium) for i, s in enumerate(model.species) if s.kind == "concentration"],
        )

    def dilute(self, y: np.ndarray, added: np.ndarray, mask: np.ndarray) -> None:
        v = y[self.iv]
        new_v = np.where(mask, v + added, v)
        for i, fresh in self.conc:
            y[i] = np.where(mask, (y[i] * v + fresh * added) / new_v, y[i])
        y[self.iv] = new_v

    @staticmethod
    def top_up(y: np.ndarray, pairs: list[tuple[int, float]], mask: np.ndarray) -> None:
        for i, target in pairs:
            y[i] = np.where(mask, np.maximum(y[i], target), y[i])

"""Schema of a protocol TOML file (culture protocols, and the events of scenarios)."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import Field, model_validator

from ciksim.schemas.base import LIMITS, Name, Quantity, Schema, Text, limit, limited

ACTIONS = ("set", "add", "feed", "split", "harvest", "dose")
#: Fields each action accepts besides the timing fields and ``note``.
ACTION_FIELDS: dict[str, set[str]] = {
    "set": {"values"},
    "add": {"values"},
    "feed": {"volume_fraction", "volume", "top_up"},
    "split": {"max_density", "target_density", "cells", "top_up"},
    "harvest": set(),
    "dose": {"dose", "amount"},
}
_TIMING = {"day", "days", "every", "from", "until"}
Day = Annotated[limited("max_protocol_day", ge=0),
                Field(description="days since the start of the protocol")]
Every = limited("max_protocol_day", ge=limit("min_event_spacing"))
HarvestDay = limited("max_culture_days", gt=0)
Species = Annotated[str, Field(min_length=1, max_length=100)]


class EventSchema(Schema):
    """One ``[[events]]`` table: an action on ``day``, on each of ``days``, or ``every``
    n days ``from`` a day ``until`` a day; plus the action's own fields."""

    action: Literal["set", "add", "feed", "split", "harvest", "dose"]
    day: Day | None = None
    days: Annotated[list[Day], Field(min_length=1,
                                     max_length=int(limit("max_events")))] | None = None
    every: Every | None = None
    start: Day | None = Field(None, alias="from")
    until: Day | None = None
    note: Text = ""
    values: Annotated[dict[Species, Quantity], Field(max_length=100)] | None = None
    volume_fraction: Annotated[float, Field(gt=0, le=100)] | None = None
    volume: Quantity | None = None
    max_density: Quantity | None = None
    target_density: Quantity | None = None
    cells: Literal["keep", "discard"] | None = None
    top_up: Annotated[dict[Species, Quantity], Field(max_length=100)] | None = None
    dose: Name | None = None
    amount: Quantity | None = None

    @model_validator(mode="before")
    @classmethod
    def _fields_of_action(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("action"), str) \
                and data["action"] in ACTION_FIELDS:
            action = data["action"]
            allowed = ACTION_FIELDS[action] | _TIMING | {"action", "note"}
            extra = sorted(str(k) for k in set(data) - allowed)
            if extra:
                raise ValueError(f"unknown field(s) {', '.join(extra)} for action {action!r}; "
                                 f"allowed: {', '.join(sorted(allowed))}")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> EventSchema:
        timing = [k for k in ("day", "days", "every") if getattr(self, k) is not None]
        if len(timing) != 1:
            raise ValueError("give exactly one of day, days or every (+ from, until)")
        if self.every is not None and (self.start is None or self.until is None):
            raise ValueError("'every' needs 'from' and 'until' too")
        if self.every is None and (self.start is not None or self.until is not None):
            raise ValueError("'from' and 'until' go with 'every'")
        if self.days is not None and any(b <= a for a, b in pairwise(self.days)):
            raise ValueError("days must be strictly increasing")
        if self.every is not None and self.until < self.start:  # type: ignore[operator]
            raise ValueError(f"until ({self.until:g}) is before from ({self.start:g})")
        if len(self.expanded_days()) > limit("max_events"):
            raise ValueError(f"repeats to more than {limit('max_events'):g} events "
                             f"(limit max_events); use a larger 'every'")
        if self.action in ("set", "add") and not self.values:
            raise ValueError("give values = {species = amount}")
        if self.action == "feed" and (self.volume_fraction is None) == (self.volume is None):
            raise ValueError("give exactly one of volume_fraction or volume")
        if self.action == "split" and (self.max_density is None or self.target_density is None):
            raise ValueError("give max_density and target_density")
        if self.action == "dose" and (self.dose is None or self.amount is None):
            raise ValueError("give dose = <name> and amount = <quantity>")
        return self

    def expanded_days(self) -> list[float]:
        """The event's days (``every`` expanded from ``from`` to ``until`` inclusive)."""
        if self.day is not None:
            return [self.day]
        if self.days is not None:
            return list(self.days)
        assert self.every is not None and self.start is not None and self.until is not None
        n = math.floor((self.until - self.start) / self.every + 1e-9) + 1
        if n > limit("max_events"):
            return [self.start] * (int(limit("max_events")) + 1)
        return [self.start + k * self.every for k in range(n)]

    def fields(self) -> dict[str, object]:
        """The action's own fields that were given (for :class:`ciksim.protocol.Event`)."""
        out: dict[str, object] = {k: getattr(self, k) for k in ACTION_FIELDS[self.action]
                                  if getattr(self, k) is not None}
        if self.note:
            out["note"] = self.note
        return out


def check_event_order(events: list[EventSchema]) -> None:
    """Events are listed in time order (each starts no earlier than the previous one), and
    all of them together expand to at most ``max_events``."""
    previous = -math.inf
    total = 0
    for i, ev in enumerate(events):
        days = ev.expanded_days()
        if days[0] < previous:
            raise ValueError(f"events[{i}] starts on day {days[0]:g}, before the previous "
                             f"event (day {previous:g}); list events in time order")
        previous = days[0]
        total += len(days)
    if total > limit("max_events"):
        raise ValueError(f"{total} events after repeats exceed the limit max_events = "
                         f"{limit('max_events'):g} ({LIMITS['max_events'].reason})")


class MonitorSchema(Schema):
    """A monitoring schedule: ``{first = 30, every = 30, last = 720}`` (days; ``last``
    included when on the schedule) or ``{days = [30, 60, 90]}``."""

    first: Day | None = None
    every: Every | None = None
    last: Day | None = None
    days: Annotated[list[Day], Field(min_length=1,
                                     max_length=int(limit("max_visits")))] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> MonitorSchema:
        regular = [self.first, self.every, self.last]
        if self.days is not None:
            if any(v is not None for v in regular):
                raise ValueError("give either days = [...] or first, every and last")
            if any(b <= a for a, b in pairwise(self.days)):
                raise ValueError("days must be strictly increasing")
            return self
        if any(v is None for v in regular):
            raise ValueError("give first, every and last (days), or days = [...]")
        assert self.first is not None and self.every is not None and self.last is not None
        if self.last < self.first:
            raise ValueError(f"last ({self.last:g}) is before first ({self.first:g})")
        count = math.floor((self.last - self.first) / self.every + 1e-9) + 1
        if count > limit("max_visits"):
            raise ValueError(f"{count} visits exceed the limit max_visits = "
                             f"{limit('max_visits'):g} ({LIMITS['max_visits'].reason}); use a "
                             "larger 'every'")
        return self

    def spec(self) -> dict[str, object]:
        """The schedule as given (for :class:`ciksim.protocol.Trigger`)."""
        if self.days is not None:
            return {"days": list(self.days)}
        return {"first": self.first, "every": self.every, "last": self.last}


class TriggerDoseSchema(Schema):
    """A dose a trigger gives ``offset`` days after it fires."""

    offset: Annotated[limited("max_protocol_day", ge=0),
                      Field(description="days after the trigger day")] = 0.0
    dose: Name
    amount: Quantity


class TriggerSchema(Schema):
    """One ``[[triggers]]`` table: on each monitoring day (after that day's fixed events), if
    ``watch`` (a species or derived quantity of the model) is at or ``above`` (or at or
    ``below``) the threshold, the trigger fires once: its ``doses`` follow at the trigger
    day plus their offsets (none: a monitoring-only trigger, which records the day it
    fires). Monitoring: ``monitor = {first, every, last}`` or ``{days}``, or
    ``days = [...]``."""

    name: Name
    watch: Annotated[str, Field(min_length=1, max_length=100)]
    above: Quantity | None = None
    below: Quantity | None = None
    monitor: MonitorSchema | None = None
    days: Annotated[list[Day], Field(min_length=1,
                                     max_length=int(limit("max_visits")))] | None = None
    doses: Annotated[list[TriggerDoseSchema], Field(default_factory=list, max_length=100)]
    note: Text = ""

    @model_validator(mode="after")
    def _consistent(self) -> TriggerSchema:
        if (self.above is None) == (self.below is None):
            raise ValueError(f"give exactly one of above or below (the threshold of "
                             f"{self.watch!r})")
        if (self.monitor is None) == (self.days is None):
            raise ValueError("give the monitoring schedule: monitor = {first = day, every = "
                             "days, last = day} or days = [day, ...] (exactly one)")
        if self.days is not None and any(b <= a for a, b in pairwise(self.days)):
            raise ValueError("days must be strictly increasing")
        return self

    def fields(self) -> dict[str, object]:
        """Keyword arguments of :class:`ciksim.protocol.Trigger`."""
        monitor = self.monitor.spec() if self.monitor is not None else list(self.days or [])
        return {"name": self.name, "watch": self.watch, "above": self.above,
                "below": self.below, "monitor": monitor, "note": self.note,
                "doses": [{"offset": d.offset, "dose": d.dose, "amount": d.amount}
                          for d in self.doses]}


def check_trigger_names(triggers: list[TriggerSchema]) -> None:
    """Each trigger has its own name (it labels the trigger day in results)."""
    names = [t.name for t in triggers]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"triggers: name(s) {', '.join(twice)} used twice; give each "
                         "trigger its own name")


#: The ``[[triggers]]`` of a protocol, scenario or arm.
Triggers = Annotated[list[TriggerSchema], Field(max_length=int(limit("max_triggers")))]


class ProtocolSchema(Schema):
    """A protocol file: ``name``, optional ``harvest_day`` and ``[parameters]`` (model
    parameters such as ``seed_density``, ranges checked against the model's declarations),
    ``[[events]]`` in time order and ``[[triggers]]`` (doses given on monitoring)."""

    name: Name
    description: Text = ""
    source: Text = ""
    harvest_day: HarvestDay | None = None
    parameters: Annotated[dict[Annotated[str, Field(max_length=100)], Quantity],
                          Field(max_length=1000)] = Field(default_factory=dict)
    events: Annotated[list[EventSchema], Field(max_length=int(limit("max_events")))] = Field(
        default_factory=list)
    triggers: Triggers = Field(default_factory=list)

    @model_validator(mode="after")
    def _in_order(self) -> ProtocolSchema:
        check_event_order(self.events)
        check_trigger_names(self.triggers)
        return self

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


class ProtocolSchema(Schema):
    """A protocol file: ``name``, optional ``harvest_day`` and ``[parameters]`` (model
    parameters such as ``seed_density``, ranges checked against the model's declarations),
    and ``[[events]]`` in time order."""

    name: Name
    description: Text = ""
    source: Text = ""
    harvest_day: HarvestDay | None = None
    parameters: Annotated[dict[Annotated[str, Field(max_length=100)], Quantity],
                          Field(max_length=1000)] = Field(default_factory=dict)
    events: Annotated[list[EventSchema], Field(max_length=int(limit("max_events")))] = Field(
        default_factory=list)

    @model_validator(mode="after")
    def _in_order(self) -> ProtocolSchema:
        check_event_order(self.events)
        return self

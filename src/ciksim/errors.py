"""One exception tree for ciksim, and warning categories users can filter.

Every message names the offending field and says how to fix it.
"""

from __future__ import annotations


class CikError(Exception):
    """Base class of every error ciksim raises on purpose."""


class ModelError(CikError):
    """A model declaration is inconsistent (unknown symbol, duplicate name, bad range)."""


class ProtocolError(CikError):
    """A protocol is malformed (unknown action or field, events out of order, bad value)."""


class UnitError(CikError):
    """A quantity's unit does not fit where it is used."""


class DataError(CikError, ValueError):
    """User-supplied data (CSV, TOML values, CLI options) is invalid."""


class CikWarning(UserWarning):
    """Base class of ciksim warnings (filter with ``warnings.filterwarnings``)."""


class SimulationWarning(CikWarning):
    """A simulation finished but something about it deserves attention."""

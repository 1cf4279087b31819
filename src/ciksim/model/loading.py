"""Reading parameter sets (TOML) into Parameter declarations."""

from __future__ import annotations

import tomllib
from importlib import resources

from ciksim.errors import ModelError
from ciksim.model.declarations import Parameter

_FIELDS = {"value", "unit", "low", "high", "source", "description", "variability"}


def load_parameter_file(name: str) -> tuple[Parameter, ...]:
    """Parameters from ``ciksim/data/parameters/<name>.toml``, in file order."""
    text = (resources.files("ciksim.data") / "parameters" / f"{name}.toml").read_text("utf-8")
    data = tomllib.loads(text)
    out = []
    for pname, fields in data.items():
        extra = set(fields) - _FIELDS
        if extra:
            raise ModelError(f"parameters {name}.toml [{pname}]: unknown field(s) {sorted(extra)}")
        try:
            out.append(Parameter(name=pname, **fields))
        except TypeError as exc:
            raise ModelError(f"parameters {name}.toml [{pname}]: {exc}") from exc
    return tuple(out)

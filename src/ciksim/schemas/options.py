"""Options shared by commands and the API: how a trial is executed, how long a simulation
runs. Faces (CLI, web) and library functions validate them with the same schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from ciksim.errors import DataError
from ciksim.schemas.base import LIMITS, Schema, describe, limited, validate

_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")


def _address(text: str) -> str:
    """A Dask scheduler address: ``tcp://HOST:PORT`` (or tls/ws/wss/ucx/inproc)."""
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        scheme, loc = parse_address(text.strip())
        if scheme not in _SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}")
        if scheme != "inproc":
            host, port = parse_host_port(loc)
            if not host or not 0 < int(port) < 65536:
                raise ValueError("host or port missing or out of range")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a scheduler address ({exc}); write tcp://HOST:PORT, e.g. "
                         "tcp://127.0.0.1:8786") from None
    return text.strip()


Workers = limited("max_workers", int, ge=1)
ChunkSize = limited("max_chunk_size", int, ge=1)
Address = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_address)]


class ExecutionOptions(Schema):
    """Where a trial's chunks run: ``workers`` local processes (None: all cores) or a Dask
    ``scheduler``; ``chunk_size`` patients per chunk (None: the spec's)."""

    workers: Workers | None = None
    scheduler: Address | None = None
    chunk_size: ChunkSize | None = None


def execution_options(workers: Any = None, scheduler: Any = None, chunk_size: Any = None
                      ) -> ExecutionOptions:
    """Validated execution options; errors read like ``--workers = -1: must be >= 1``."""
    return validate(ExecutionOptions, {"workers": workers, "scheduler": scheduler,
                                       "chunk_size": chunk_size}, origin="options")


def check_horizon(name: str, value: Any, *, field: str, positive: bool = True) -> float:
    """A simulated horizon (``max_years``, ``max_culture_days``, ``max_assay_hours``): a finite
    number > 0 within the named limit; DataError naming ``field`` and the limit otherwise."""
    lim = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{field}: expected a number of {lim.unit}, got {value!r}")
    lim.check(value, field=field)
    if positive and not value > 0:
        raise DataError(f"{field}: must be > 0 {lim.unit}, got {value!r}")
    return float(value)


def check_count(name: str, value: Any, *, field: str, minimum: int = 1) -> int:
    """A whole number >= ``minimum`` within the named limit (no bools, no 1.5)."""
    lim = LIMITS[name]
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise DataError(f"{field}: need a whole number >= {minimum}, got {value!r}")
    n = int(value)
    if n < minimum:
        raise DataError(f"{field}: need a whole number >= {minimum}, got {value!r}")
    lim.check(n, field=field)
    return n


#: Options any verb may have, checked before its work starts: the option's type.
_CLI_OPTIONS: dict[str, Any] = {"workers": Workers, "scheduler": Address,
                                "chunk_size": ChunkSize,
                                "walkers": limited("max_walkers", int, ge=2),
                                "steps": limited("max_steps", int, ge=1),
                                "donors": limited("max_donors", int, ge=1),
                                "replicates": limited("max_patients", int, ge=1),
                                "years": limited("max_years", gt=0),
                                "days": limited("max_culture_days", gt=0),
                                "hours": limited("max_assay_hours", gt=0)}


def check_cli_options(options: Mapping[str, Any]) -> None:
    """Options a face (CLI, web) received, checked before any work: ``--workers >= 1``, a
    scheduler address that parses, ``--chunk-size >= 1``, counts within their limits, and
    ``--out`` naming a folder (not an existing file). None means "not given"."""
    from pydantic import TypeAdapter, ValidationError

    from ciksim.io import check_out_folder

    for name, typ in _CLI_OPTIONS.items():
        value = options.get(name)
        if value is None:
            continue
        try:
            TypeAdapter(typ, config={"strict": True}).validate_python(value)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise DataError(describe({**err, "loc": ()},
                                     f"--{name.replace('_', '-')}")) from None
    if options.get("out") is not None:
        check_out_folder(options["out"])

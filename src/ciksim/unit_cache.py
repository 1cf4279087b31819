"""Unit checks remembered across processes, so that a warm start never imports pint.

Checking units with pint costs a fresh process about half a second (importing pint, then
parsing its ~600 default units), although the answers for the project's own declarations
never change. This module keeps, in the per-user cache folder (:func:`ciksim.cache.cache_dir`),
the facts pint has established:

- ``unit``: unit texts pint reads as a unit (``"cells/mL"``, ``"1/day"``);
- ``model``: content keys of models whose unit check passed (:meth:`ciksim.model.Model`'s
  key covers every declared unit and expression, nothing else);
- ``convert``: a quantity text converted to a unit (``"500 IU/mL"`` to ``"IU/mL"``) and the
  float pint returned (kept exactly: JSON floats round-trip bit for bit).

Only successes are kept: a text or model not in the file is checked by pint in full, and an
error is raised exactly as without the cache. The file is named by a hash of the pint
installation (its path, size and modification time) and of the source of the modules that
check units, so an upgrade of pint or a change to the checks starts a new file and never
meets a stale verdict. New facts are kept in memory and written together on :func:`flush`
(after each model check, :class:`ciksim.model.Model`) and when the process exits,
atomically and merged with what other processes wrote; a folder that cannot be written, or
a process that ends without its exit handlers (e.g. a forked worker) before a flush, only
costs the checks (facts not written are not retried).
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

#: Modules whose code decides a unit check's outcome (relative to the ``ciksim`` package).
CHECKERS = ("units.py", "unit_grammar.py", "unit_cache.py", "model/expression.py",
            "model/model.py", "model/declarations.py")
KINDS = ("unit", "model", "convert")
_FACTS: dict[str, dict[str, Any]] | None = None
_PATH: list[Path | None] = []
_PENDING: dict[str, dict[str, Any]] = {k: {} for k in KINDS}


def facts_key() -> str:
    """Hash of the pint installation and of the unit-checking code (names the file)."""
    h = hashlib.sha256()
    spec = importlib.util.find_spec("pint")
    origin = spec.origin if spec is not None and spec.origin else ""
    if origin:
        st = os.stat(origin)
        h.update(f"{origin}|{st.st_size}|{st.st_mtime_ns}".encode())
    package = Path(__file__).resolve().parent
    for rel in CHECKERS:
        try:
            h.update((package / rel).read_bytes())
        except OSError:  # no source next to the module (a frozen build): the version decides
            from ciksim._version import __version__

            h.update(f"{rel}|{__version__}".encode())
    return h.hexdigest()[:20]


def facts_path() -> Path | None:
    """``<cache_dir>/units/facts_<key>.json``, or None when there is no cache folder."""
    if not _PATH:
        from ciksim.cache import cache_dir

        try:
            _PATH.append(cache_dir() / "units" / f"facts_{facts_key()}.json")
        except OSError:
            _PATH.append(None)
    return _PATH[0]


def _read(path: Path | None) -> dict[str, dict[str, Any]]:
    facts: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
    if path is None or not path.is_file():
        return facts
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return facts  # unreadable (e.g. cut short): the checks run and write it anew
    if isinstance(data, dict):
        for kind in KINDS:
            if isinstance(data.get(kind), dict):
                facts[kind] = data[kind]
    return facts


def _facts() -> dict[str, dict[str, Any]]:
    global _FACTS
    if _FACTS is None:
        _FACTS = _read(facts_path())
    return _FACTS


def recall(kind: str, key: str) -> Any:
    """The value remembered for ``key`` (``True`` for a passed check), or None."""
    return _facts()[kind].get(key)


def remember(kind: str, key: str, value: Any = True) -> None:
    """Keep a fact pint established (written to the file at exit or on :func:`flush`)."""
    facts = _facts()
    if facts[kind].get(key) == value:
        return
    facts[kind][key] = value
    _PENDING[kind][key] = value


def flush() -> None:
    """Merge the facts learnt since the last flush into the file (one atomic write; on an
    error writing, they stay known to this process only)."""
    if not any(_PENDING.values()):
        return
    path = facts_path()
    pending = {k: dict(v) for k, v in _PENDING.items()}
    for v in _PENDING.values():
        v.clear()
    if path is None:
        return
    merged = _read(path)
    for k in KINDS:
        merged[k].update(pending[k])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(merged, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
    if _FACTS is not None:
        for k in KINDS:
            _FACTS[k].update(merged[k])


atexit.register(flush)  # nothing to write: no work


def forget() -> None:
    """Write what this process has learnt, then drop what it has read (the next question
    reads the file again, as a new process would)."""
    global _FACTS
    flush()
    _FACTS = None
    _PATH.clear()

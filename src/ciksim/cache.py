"""The per-user cache folder: compiled code, cached results and the unit registry.

``$CIKSIM_CACHE_DIR`` if set, else the user cache folder (``$XDG_CACHE_HOME/ciksim`` or
``~/.cache/ciksim``; ``%LOCALAPPDATA%\\ciksim`` on Windows, ``~/Library/Caches/ciksim`` on
macOS); a private temporary folder if that is not writable (e.g. a read-only home). Light
to import (standard library only): the unit registry asks for it at start-up.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ENV_VAR = "CIKSIM_CACHE_DIR"


def cache_dir() -> Path:
    """The cache folder (created if missing)."""
    env = os.environ.get(ENV_VAR)
    if env:
        base = Path(env)
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "ciksim"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches" / "ciksim"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ciksim"
    for folder in (base, Path(tempfile.gettempdir()) / f"ciksim-{_user()}"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            continue
    raise OSError(f"no writable cache folder for ciksim; set {ENV_VAR}")


def _user() -> str:
    try:
        return str(os.getuid())  # type: ignore[attr-defined,unused-ignore]
    except AttributeError:
        return os.environ.get("USERNAME", "user")

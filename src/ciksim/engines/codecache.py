"""Generated code on disk, so numba compiles it once per machine (``cache=True``), and
results that are costly to compute and fully determined by their inputs (``cached_arrays``).

numba caches a compiled function next to its source file and reuses it when that file is
unchanged. Code generated from a model is therefore written once to a stable folder, under a
name made of the hash of its text and of everything it calls (so an upgrade of ciksim or
numba gives a new file, never a stale cache), and imported from there by every process:
the main one, local workers and Dask workers. The file is written atomically and never
rewritten, so the cache is reused and does not grow from run to run.

Cached results (e.g. a trial's product lots, cultured from 200 simulated donors) follow the
same rules: a file named by the hash of everything the result is computed from, written
atomically once and read by every later process.

Folder: ``ciksim.cache.cache_dir()`` (``$CIKSIM_CACHE_DIR``, else the user cache folder).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from ciksim._version import __version__
from ciksim.cache import ENV_VAR, cache_dir

__all__ = ["ENV_VAR", "cache_dir", "cached_arrays", "load_generated", "source_key"]
_LOADED: dict[str, ModuleType] = {}


def source_key(source: str, *depends: str) -> str:
    """Hash of a generated source, the files it calls, ciksim's and numba's versions."""
    import numba

    h = hashlib.sha256()
    for part in (source, *depends, __version__, numba.__version__, sys.version):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:20]


def load_generated(prefix: str, source: str, *depends: str) -> ModuleType:
    """Import ``source`` from ``<cache_dir>/<prefix>_<hash>.py`` (written once).

    ``depends``: texts the generated code relies on (e.g. the source of the modules it
    imports), part of the hash so that a changed dependency never meets a stale cache.
    """
    key = f"{prefix}_{source_key(source, *depends)}"
    if key in _LOADED:
        return _LOADED[key]
    path = cache_dir() / f"{key}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != source:
        tmp = path.with_name(f".{key}.{os.getpid()}.tmp")
        tmp.write_text(source, encoding="utf-8")
        os.replace(tmp, path)
    name = f"ciksim_generated_{key}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has one
        raise ImportError(f"cannot import generated code {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    _LOADED[key] = module
    return module


def cached_arrays(prefix: str, parts: Sequence[str],
                  compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays that ``compute()`` returns, kept in ``<cache_dir>/<prefix>_<hash>.npz``.

    ``parts``: texts that together determine the result (inputs, declarations, the source
    of the code that computes it); their hash (with ciksim's, numba's and Python's
    versions) names the file, so a change of any gives a new file and never a stale
    result. Read back exactly (float64 bit for bit); computed and written atomically when
    the file is missing or unreadable; a cache folder that cannot be written only costs
    the computation.
    """
    key = f"{prefix}_{source_key(*parts)}"
    try:
        path: Path | None = cache_dir() / f"{key}.npz"
    except OSError:
        path = None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # unreadable (e.g. cut short by a full disk): computed and written anew
    arrays = compute()
    if path is not None:
        tmp = path.with_name(f".{key}.{os.getpid()}.tmp.npz")
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)
    return arrays

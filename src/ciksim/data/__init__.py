"""Data shipped with ciksim: protocols, parameter sets, scenarios, targets, examples."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any


def builtin_names(folder: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """Names of the TOML files shipped in ``ciksim/data/<folder>``."""
    files = (resources.files("ciksim.data") / folder).iterdir()
    return sorted(f.name[:-5] for f in files if f.name.endswith(".toml")
                  and f.name[:-5] not in exclude)


def load_toml(name_or_path: str | Path, folder: str, kind: str, error: type[Exception],
              exclude: tuple[str, ...] = ()) -> tuple[dict[str, Any], str]:
    """A built-in ``kind`` by name, or a TOML file: (parsed data, origin for messages)."""
    from ciksim.schemas import parse_toml, read_text

    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        text, origin = read_text(path, what=f"{kind} file", error=error), str(path)
    else:
        names = builtin_names(folder, exclude)
        if str(name_or_path) not in names:
            raise error(f"unknown {kind} {str(name_or_path)!r}; built-in: {', '.join(names)}, "
                        "or give a .toml file")
        text = (resources.files("ciksim.data") / folder / f"{name_or_path}.toml").read_text(
            encoding="utf-8")
        origin = f"{kind} {str(name_or_path)!r}"
    return parse_toml(text, origin=origin, error=error), origin

"""Regenerate the generated part of ``docs/models/<model>.md`` from the declarations.

The hand-written text stays; the block between the markers is replaced by
:meth:`Model.to_markdown`. Run ``python -m ciksim.docs [DOCS_DIR]`` (``make docs``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from ciksim.errors import CikError
from ciksim.model import Model
from ciksim.models.allo import allo_model
from ciksim.models.culture import culture_model
from ciksim.models.killing import killing_model
from ciksim.models.patient import patient_model

BEGIN = "<!-- generated from the model declaration: do not edit by hand -->"
END = "<!-- end of generated part -->"

MODELS: dict[str, Callable[[], Model]] = {
    "culture": culture_model, "killing": killing_model, "patient": patient_model,
    "allo": allo_model,
}


def model_by_name(name: str) -> Model:
    """A default model by name (``culture``)."""
    if name not in MODELS:
        raise CikError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    return MODELS[name]()


def generated_block(model: Model) -> str:
    return f"{BEGIN}\n{model.to_markdown()}{END}"


def update(path: Path, model: Model) -> bool:
    """Replace the generated block in ``path``; returns True if the file changed."""
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise CikError(f"{path}: markers for the generated part are missing")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + generated_block(model) + tail
    if new != text:
        path.write_text(new, encoding="utf-8")
        return True
    return False


def main(argv: list[str] | None = None) -> None:
    folder = Path((argv or sys.argv[1:] or ["docs/models"])[0])
    for name, factory in MODELS.items():
        changed = update(folder / f"{name}.md", factory())
        print(f"{folder / (name + '.md')}: {'updated' if changed else 'up to date'}")


if __name__ == "__main__":
    main()

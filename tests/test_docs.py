import json
from pathlib import Path

import pytest

from ciksim.docs import MODELS, generated_block

DOCS = Path(__file__).resolve().parents[1] / "docs" / "models"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_docs_match_declaration(name):
    text = (DOCS / f"{name}.md").read_text(encoding="utf-8")
    assert generated_block(MODELS[name]()) in text, "run `make docs` to regenerate"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_parameter_documented_with_source(name):
    text = (DOCS / f"{name}.md").read_text(encoding="utf-8")
    for p in MODELS[name]().parameters:
        assert f"| `{p.name}` |" in text
        assert p.source in text


def test_formats_doc_and_json_schemas_match_the_schemas():
    from ciksim.schemas import formats
    from ciksim.schemas.markdown import render

    root = DOCS.parent
    assert (root / "formats.md").read_text(encoding="utf-8") == render(), \
        "run `python -m ciksim.schemas docs` to regenerate"
    for name, fmt in formats().items():  # parameters may change: compare the top level
        text = (root / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")
        shipped, current = json.loads(text), fmt.json_schema()
        assert set(shipped["properties"]) == set(current["properties"]), name
    readme = (root.parent / "README.md").read_text(encoding="utf-8")
    assert "docs/formats.md" in readme

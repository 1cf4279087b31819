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

import dataclasses

import numpy as np
import pytest

from ciksim.errors import ModelError, UnitError
from ciksim.model import Assignment, Model, Parameter, Process, Species


def par(name, value=1.0, unit="1/day", low=0.0, high=10.0, source="assumed: test"):
    return Parameter(name, value, unit, low, high, source, f"{name} for tests")


def growth_model(**changes):
    kw = dict(
        name="growth",
        description="exponential growth",
        species=(Species("N", "cells", "population", initial="N0"),),
        parameters=(par("r", 0.5), par("N0", 10, "cells", 1, 100)),
        processes=(Process("birth", "r * N", {"N": 1}, "births"),),
        assignments=(Assignment("double", "2 * N", "cells", "twice N", roles=("burden",)),),
    )
    kw.update(changes)
    return Model(**kw)


def test_valid_model_is_immutable_and_labelled():
    m = growth_model()
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.name = "x"
    assert m.the("burden") == "double"
    assert m.unit_of("N") == "cells"
    assert m.stoichiometry().tolist() == [[1.0]]


def test_unknown_symbol_named():
    with pytest.raises(ModelError, match=r"unknown symbol.*q"):
        growth_model(processes=(Process("birth", "q * N", {"N": 1}, "births"),))


def test_duplicate_name_named():
    with pytest.raises(ModelError, match="'r' is declared twice"):
        growth_model(assignments=(Assignment("r", "N", "cells", "dup"),))


def test_rate_unit_mismatch_named():
    with pytest.raises(UnitError, match=r"process .birth.*cells\*\*2/d but cells/d"):
        growth_model(processes=(Process("birth", "r * N * N", {"N": 1}, "births"),))


def test_assignment_unit_mismatch_named():
    with pytest.raises(UnitError, match="assignment 'double'"):
        growth_model(assignments=(Assignment("double", "2 * N", "mL", "twice N"),))


def test_unknown_species_in_changes():
    with pytest.raises(ModelError, match="unknown species 'M'"):
        growth_model(processes=(Process("birth", "r * N", {"M": 1}, "births"),))


def test_parameter_validation():
    with pytest.raises(ModelError, match="outside its range"):
        par("r", 20.0)
    with pytest.raises(ModelError, match="source is empty"):
        Parameter("r", 1, "1/day", 0, 2, " ", "rate")
    with pytest.raises(ModelError, match="not an identifier"):
        par("2r")
    with pytest.raises(ModelError, match="reserved"):
        par("exp")
    with pytest.raises(Exception, match="cannot read unit"):
        par("r", unit="furlongs per fortnight per")


def test_compiled_functions_are_vectorised():
    m = growth_model()
    c = m.compiled
    p = np.array([[0.5, 1.0], [10.0, 20.0]])
    y = c.initial(p)
    assert y.tolist() == [[10.0, 20.0]]
    assert c.rhs(0.0, y, p).tolist() == [[5.0, 20.0]]
    assert c.assignments(0.0, y, p)["double"].tolist() == [20.0, 40.0]


def test_markdown_is_derived_from_declaration():
    md = growth_model().to_markdown()
    assert "d`N`/dt = birth" in md
    assert "| `r` | 0.5 | 1/day | 0–10 |" in md
    assert "| `birth` | `r * N` | N +1 | births |" in md
    assert "assumed: test" in md

"""Unit checks remembered across processes: a warm start builds the models without pint,
and whatever changed is still checked by pint in full."""

import json
import os
import subprocess
import sys

import pytest

from ciksim import unit_cache
from ciksim.cache import ENV_VAR
from ciksim.errors import UnitError
from ciksim.model import Assignment, Dose, Model, Parameter, Process, Species
from ciksim.units import convert

SCRIPT = """
import json, sys
from ciksim.models.allo import allo_model
from ciksim.models.culture import culture_model
from ciksim.models.patient import patient_model
from ciksim.units import convert
for build in (culture_model, patient_model, allo_model):
    build()
value = convert("500 IU/mL", "IU/mL", field="il2")
print(json.dumps({"pint": "pint" in sys.modules, "value": value}))
"""


def fresh(cache):
    env = {**os.environ, ENV_VAR: str(cache)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_warm_process_builds_the_models_without_pint(tmp_path):
    first = fresh(tmp_path)
    assert first == {"pint": True, "value": 500.0}
    files = sorted(p.name for p in (tmp_path / "units").iterdir())
    assert len(files) == 1 and files[0].startswith("facts_")
    again = fresh(tmp_path)
    assert again == {"pint": False, "value": 500.0}
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == files  # no growth


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    unit_cache.forget()
    yield tmp_path
    unit_cache.forget()


def par(name, unit="1/day", value=1.0):
    return Parameter(name, value, unit, 0.0, 10.0, "assumed: test", name)


def growth(rate_unit="1/day", double_unit="cells", dose_unit="cells"):
    return Model(
        "growth", "exponential growth",
        species=(Species("N", "cells", "population", initial="N0"),),
        parameters=(par("r", rate_unit, 0.5), par("N0", "cells", 5.0)),
        processes=(Process("birth", "r * N", {"N": 1}, "births"),),
        assignments=(Assignment("double", "2 * N", double_unit, "twice N"),),
        doses=(Dose("seed", dose_unit, "cells added", adds={"N": "amount"}),),
    )


def test_a_changed_unit_is_still_caught(own_cache):
    good = growth()
    assert unit_cache.recall("model", good.unit_key())
    unit_cache.forget()  # as a new process would: read back from the file
    assert unit_cache.recall("model", good.unit_key())
    growth()  # the remembered verdict
    with pytest.raises(UnitError, match="process 'birth'"):
        growth(rate_unit="1/hour")
    with pytest.raises(UnitError, match="assignment 'double'"):
        growth(double_unit="mL")
    with pytest.raises(UnitError, match=r"dose 'seed'\.adds\[N\]"):
        growth(dose_unit="mL")
    with pytest.raises(UnitError, match="cannot read unit"):
        par("r", "furlongs per fortnight per")
    unit_cache.flush()
    facts = json.loads(unit_cache.facts_path().read_text(encoding="utf-8"))
    assert "mL" in facts["unit"]  # the unit reads; only the models using it were wrong
    assert set(facts["model"]) == {good.unit_key()}


def test_the_key_covers_units_and_expressions_not_values(own_cache):
    base = growth()
    assert growth().unit_key() == base.unit_key()
    other_value = Model(base.name, base.description, base.species,
                        (par("r", "1/day", 0.7), par("N0", "cells", 5.0)), base.processes,
                        base.assignments, doses=base.doses)
    assert other_value.unit_key() == base.unit_key()
    assert growth(double_unit="cells").unit_key() == base.unit_key()
    changed = Model(base.name, base.description, base.species, base.parameters,
                    (Process("birth", "r * N * 1", {"N": 1}, "births"),), base.assignments,
                    doses=base.doses)
    assert changed.unit_key() != base.unit_key()


def test_remembered_conversions_are_pints_exactly(own_cache):
    first = convert("2.5e6 cells/L", "cells/mL", field="x")
    unit_cache.forget()
    assert unit_cache.recall("convert", "2.5e6 cells/L\0cells/mL") == first
    assert convert("2.5e6 cells/L", "cells/mL", field="x") == first == 2500.0
    with pytest.raises(UnitError, match="does not convert"):
        convert("2 mL", "cells/mL", field="x")
    assert unit_cache.recall("convert", "2 mL\0cells/mL") is None


def test_an_unreadable_facts_file_is_rewritten(own_cache):
    growth()
    unit_cache.flush()
    path = unit_cache.facts_path()
    path.write_text("{not json", encoding="utf-8")
    unit_cache.forget()
    growth()
    unit_cache.flush()
    assert json.loads(path.read_text(encoding="utf-8"))["model"]


def test_new_facts_are_written_once_on_flush(own_cache):
    path = unit_cache.facts_path()
    for text in ("cells/mL", "IU/mL", "1/day"):
        unit_cache.remember("unit", text)
    assert not path.exists()  # nothing written per fact
    unit_cache.flush()
    assert set(json.loads(path.read_text(encoding="utf-8"))["unit"]) >= {"cells/mL", "IU/mL",
                                                                         "1/day"}
    mtime = path.stat().st_mtime_ns
    unit_cache.flush()  # nothing new: no write
    assert path.stat().st_mtime_ns == mtime

"""Generated code is compiled once per machine: a second process loads numba's cache (no
compilation, no new cache files), for the compiled ODE and stochastic engines alike."""

import json
import os
import subprocess
import sys

import pytest

from ciksim.engines import codecache

SCRIPT = """
import json, numpy as np
from ciksim.engines import compiled, fused
from ciksim.engines.ode import SolverSettings, simulate
from ciksim.engines.stochastic import StochasticSettings, simulate_stochastic
from ciksim.model import Model, Parameter, Process, Species

par = lambda n, v: Parameter(n, v, "1/day", 0.0, 10.0, "assumed: cache test", n)
m = Model("cachetest", "birth-death and a decaying pool",
          (Species("X", "cells", "x", initial="5"), Species("E", "cells", "e", initial="1")),
          (par("lam", 0.3), par("mu", 0.2), par("k", 0.5)),
          (Process("b", "lam * X", {"X": 1}, "birth"), Process("d", "mu * X", {"X": -1}, "death"),
           Process("decay", "k * E", {"E": -1}, "decay")))
simulate(m, None, 2.0, times=[0.0, 2.0], parameters={"lam": np.full(3, 0.3)},
         settings=SolverSettings(method="compiled"))
simulate_stochastic(m, None, 2.0, stochastic=["X"], parameters={"lam": np.full(3, 0.3)},
                    settings=StochasticSettings(1.0, 1.0, 0.0))
stats = [compiled.compiled_module(m).integrate.stats]
stats += [mod.simulate_all.stats for _, mod in fused._MODULES.values()]
print(json.dumps({"hits": sum(sum(s.cache_hits.values()) for s in stats),
                  "misses": sum(sum(s.cache_misses.values()) for s in stats)}))
"""


def run_fresh(cache):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env[codecache.ENV_VAR] = str(cache)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def listing(cache):
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


@pytest.mark.slow
def test_second_process_loads_the_cache_and_adds_no_files(tmp_path):
    first = run_fresh(tmp_path)
    files = listing(tmp_path)
    assert first["misses"] == 2 and first["hits"] == 0
    assert any(f.endswith(".nbi") for f in files) and any(f.startswith("ode_") for f in files)
    for _ in range(2):
        again = run_fresh(tmp_path)
        assert again == {"hits": 2, "misses": 0}
        assert listing(tmp_path) == files


def test_cache_folder_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(codecache.ENV_VAR, str(tmp_path / "c"))
    assert codecache.cache_dir() == tmp_path / "c"
    mod = codecache.load_generated("t", "VALUE = 3\n")
    assert mod.VALUE == 3 and mod.__file__.startswith(str(tmp_path / "c"))
    assert codecache.load_generated("t", "VALUE = 3\n") is mod
    assert len(list((tmp_path / "c").glob("t_*.py"))) == 1


def test_cached_arrays_are_computed_once_and_read_back_exactly(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setenv(codecache.ENV_VAR, str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.array([0.1, 1 / 3, np.pi]), "label": np.array("lots of a test")}

    a = codecache.cached_arrays("t", ["inputs 1"], compute)
    b = codecache.cached_arrays("t", ["inputs 1"], compute)
    assert len(calls) == 1 and b["x"].tobytes() == a["x"].tobytes()
    assert str(b["label"]) == "lots of a test"
    codecache.cached_arrays("t", ["inputs 2"], compute)  # other inputs: computed again
    assert len(calls) == 2 and len(list(tmp_path.glob("t_*.npz"))) == 2
    for f in tmp_path.glob("t_*.npz"):  # a damaged file is computed and written anew
        f.write_bytes(b"cut short")
    c = codecache.cached_arrays("t", ["inputs 1"], compute)
    assert len(calls) == 3 and c["x"].tobytes() == a["x"].tobytes()
    assert not list(tmp_path.glob(".*tmp*")) and len(list(tmp_path.glob("t_*.npz"))) == 2


def test_pint_cache_is_per_installation_and_a_broken_one_is_skipped(tmp_path, monkeypatch):
    """pint's cached definitions name their installation's files by absolute path: each
    installation gets its own folder, and a cache pint cannot read back is not fatal."""
    import pint

    from ciksim import units

    monkeypatch.setenv("CIKSIM_CACHE_DIR", str(tmp_path))
    folder = units.pint_cache_folder()
    assert folder.parent == tmp_path / "pint" and folder.name != "pint"
    monkeypatch.setattr(pint, "__file__", "/elsewhere/pint/__init__.py")
    assert units.pint_cache_folder() != folder
    monkeypatch.undo()
    monkeypatch.setenv("CIKSIM_CACHE_DIR", str(tmp_path))
    folder.parent.mkdir(parents=True)
    folder.write_text("not a folder")  # a cache pint cannot use
    assert str(units.new_registry().Unit("cells/mL")) == "cell / milliliter"

"""Fast start of the ``ciksim`` script: light imports for ``--version``, and the collector
tuned for a process that loads many long-lived objects (``ciksim.cli.main``)."""

import json
import subprocess
import sys

SCRIPT = """
import gc, json, sys
sys.argv = ["ciksim", "--version"]
from ciksim.cli import main
try:
    main()
except SystemExit:
    pass
heavy = ("numpy", "pandas", "numba", "pint", "scipy", "lifelines", "matplotlib", "dask")
print(json.dumps({"imported": [m for m in heavy if m in sys.modules],
                  "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_version_imports_nothing_heavy_and_the_collector_is_tuned():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("ciksim ")
    got = json.loads(lines[-1])
    assert got["imported"] == []
    assert got["threshold"][0] == 10_000  # young objects collected every 10,000 allocations
    assert got["frozen"] > 0  # what is alive at the end is left to the operating system

"""The ``ciksim`` command line: a thin face over the application layer (:mod:`ciksim.jobs`).

Shape (one module per group of verbs; add a verb to the module of its group, or a new
module imported below):

- ``common``: the Typer ``app``, consoles, ``verb`` (registers a verb with ``-h``, run under
  ``guarded``: a ``CikError`` becomes ``error: ...`` on stderr and exit status 2), ``emit``
  (writes ``--out``, prints ``--json`` or the verb's tables), ``echo_json``, ``rich_table``,
  ``progress_bar``, ``parse_number``, ``HELP`` (context settings), ``--version``;
- ``options``: the option types several verbs share (``opt.Seed``, ``opt.Scheduler`` ...);
- ``system`` (``system``), ``culture`` (``culture``, ``culture plan``), ``killing``
  (``killing``, ``lysis``), ``fit`` (``fit culture``, ``fit killing``), ``patient``,
  ``trial`` (``trial``, ``trial power``, ``run``), ``validate``, ``sensitivity``, ``export``
  (``export sbml``, ``export combine``), ``calibrate`` (``calibrate patient``,
  ``calibrate allo``), ``data``
  (``describe``, ``phenotype``), ``schema`` (input formats: JSON Schema, ``--check FILE``),
  ``rerun`` (a job from its saved inputs TOML), ``serve`` (the web page; imports the web
  framework only when run).

A verb parses its options, calls one job function, then writes ``--out`` with
``result.write`` and prints the result (a table or ``--json``), usually through ``emit``.
Heavy modules (numpy, pandas, the models) are imported inside the verb bodies so that
``ciksim --version`` and ``--help`` start fast. Modules here import only public names, from
``common``, ``options`` and the library; the library never imports this package.
"""

from __future__ import annotations

import gc

from ciksim.cli import (  # noqa: F401  (each module registers its verbs on ``app``)
    calibrate,
    culture,
    data,
    export,
    fit,
    killing,
    patient,
    rerun,
    schema,
    sensitivity,
    serve,
    system,
    trial,
    validate,
)
from ciksim.cli.common import app


def main() -> None:
    """Entry point of the ``ciksim`` script.

    A verb loads some 200,000 long-lived objects (numpy, pandas, scipy, numba, lifelines).
    With Python's default thresholds (700, 10, 10) the cyclic collector scans them again
    and again while they load, and in full once more at exit, finding almost nothing: about
    0.7 of the 2.3 CPU seconds of a 10-patient trial (12% of a trial over 3 posterior draws,
    with the same peak memory). So the youngest objects are collected every 10,000
    allocations instead of 700 and the middle generation every 50 of those instead of 10,
    and what is alive when the verb ends is left to the operating system (frozen: stdout,
    stderr and atexit handlers still run as usual).
    """
    gc.set_threshold(10_000, 50, 10)
    try:
        app()
    finally:
        gc.freeze()


__all__ = ["app", "main"]

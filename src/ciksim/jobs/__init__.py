"""The application layer: one library function per job, shared by every face (CLI, web).

Each job function takes validated inputs (plain Python values, the same the CLI options
carry) and returns a :class:`ciksim.jobs.base.JobResult`:

- ``result.summary()`` — a JSON-able dict (what ``--json`` prints);
- ``result.report_html()`` — a self-contained HTML report (composed in :mod:`ciksim.report`);
- ``result.write(out, fmt="csv", figures=("png",))`` — the job's folder: tables (CSV or
  Parquet), figures (PNG and/or SVG), JSON and ``report.html``, staged beside ``out`` and moved
  in only when everything succeeded; returns the file names written.

Modules: ``culture`` (culture run and compare, harvest plan), ``killing`` (simulated assay,
lysis analysis), ``fit`` (culture fit and forecast, killing fit), ``patient``, ``trial``
(trial, power, the whole chain), ``decision`` (the design over parameter draws),
``calibration``, ``validation``, ``sensitivity``, ``export`` (SBML); ``registry`` names the
jobs and reads/writes their inputs as TOML (``ciksim rerun``, the web page's downloads).
Faces print or show results; they never compose reports or write files themselves.
"""

"""Jobs by name, and their inputs as a TOML file the CLI reruns (``ciksim rerun FILE``).

An inputs file names the job and its keyword arguments::

    job = "culture"
    [inputs]
    protocols = ["cik-standard"]
    donors = 200

Any file input (``path``, ``spec``, ``evidence``, ``add_cohort``, ``study``) is relative to
the inputs file (e.g. an uploaded lysis CSV kept beside it). A job that keeps its run in a
folder (calibration) gets the ``--out`` folder of ``ciksim rerun``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from importlib import import_module
from pathlib import Path
from typing import Any

from ciksim.errors import DataError
from ciksim.jobs.base import JobResult
from ciksim.schemas.base import read_toml

#: Job name -> "module:function" of the application layer.
JOBS = {
    "culture": "ciksim.jobs.culture:culture_job",
    "harvest-plan": "ciksim.jobs.culture:harvest_plan_job",
    "killing": "ciksim.jobs.killing:killing_job",
    "lysis": "ciksim.jobs.killing:lysis_job",
    "fit-culture": "ciksim.jobs.fit:culture_fit_job",
    "fit-killing": "ciksim.jobs.fit:killing_fit_job",
    "patient": "ciksim.jobs.patient:patient_job",
    "trial": "ciksim.jobs.trial:trial_job",
    "allo-patient": "ciksim.jobs.allo:allo_patient_job",
    "calibration": "ciksim.jobs.calibration:calibration_job",
    "allo-calibration": "ciksim.jobs.calibration:allo_calibration_job",
    "posterior": "ciksim.jobs.calibration:posterior_job",
}
PATH_INPUTS = ("path", "spec", "evidence", "add_cohort", "study")
#: Inputs a face supplies itself (never saved in an inputs file).
FACE_INPUTS = ("progress", "out")


def job_function(name: str) -> Callable[..., JobResult]:
    """The job function called ``name`` (see ``JOBS``)."""
    if name not in JOBS:
        raise DataError(f"job: unknown job {name!r}; use {', '.join(JOBS)}")
    module, func = JOBS[name].split(":")
    return getattr(import_module(module), func)


def check_inputs(name: str, inputs: Mapping[str, Any]) -> None:
    """Raise DataError naming any input the job does not take."""
    params = inspect.signature(job_function(name)).parameters
    unknown = [k for k in inputs if k not in params or k in FACE_INPUTS]
    if unknown:
        allowed = ", ".join(k for k in params if k not in FACE_INPUTS)
        raise DataError(f"inputs: {', '.join(unknown)} not an input of job {name!r}; use "
                        f"{allowed}")


def run_job(name: str, inputs: Mapping[str, Any], *, base: Path | None = None,
            out: Path | None = None, progress: Callable[..., None] | None = None
            ) -> JobResult:
    """Run job ``name`` with ``inputs``; path inputs are relative to ``base``; ``out`` is
    given to the jobs that must keep their run in a folder (calibration); ``progress`` is
    passed to the jobs that report it (``(done, total)`` from a trial, a line of text from
    a calibration)."""
    check_inputs(name, inputs)
    func = job_function(name)
    params = inspect.signature(func).parameters
    kwargs = dict(inputs)
    for key in PATH_INPUTS:
        if kwargs.get(key) is not None and base is not None:
            kwargs[key] = base / str(kwargs[key])
    if "out" in params and params["out"].default is inspect.Parameter.empty:
        if out is None:
            raise DataError(f"job {name!r} keeps its run in a folder: give --out")
        kwargs["out"] = out
    if progress is not None and "progress" in params:
        kwargs["progress"] = progress
    return func(**kwargs)


def inputs_toml(name: str, inputs: Mapping[str, Any]) -> str:
    """The TOML text of an inputs file (None values are left out: they mean the default)."""
    import tomli_w

    check_inputs(name, inputs)
    body = tomli_w.dumps({"job": name,
                          "inputs": {k: v for k, v in inputs.items() if v is not None}})
    return (f"# ciksim inputs; rerun with: ciksim rerun FILE.toml --out DIR\n{body}")


def load_inputs(path: str | Path) -> tuple[str, dict[str, Any]]:
    """(job name, inputs) of an inputs file, checked against the job's signature."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"inputs file {str(p)!r} does not exist")
    data = read_toml(p, what="inputs file")
    name = data.get("job")
    inputs = data.get("inputs", {})
    if not isinstance(name, str) or not isinstance(inputs, dict):
        raise DataError(f"{p}: needs job = \"NAME\" and an [inputs] table")
    extra = [k for k in data if k not in ("job", "inputs")]
    if extra:
        raise DataError(f"{p}: unknown key(s) {', '.join(extra)}; use job and [inputs]")
    check_inputs(name, inputs)
    return name, inputs

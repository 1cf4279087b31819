"""Jobs by name, and their inputs as a TOML file the CLI reruns (``ciksim rerun FILE``).

An inputs file names the job and its keyword arguments::

    job = "culture"
    [inputs]
    protocols = ["cik-standard"]
    donors = 200

Any ``path`` input is a file relative to the inputs file (e.g. an uploaded lysis CSV kept
beside it).
"""

from __future__ import annotations

import inspect
import tomllib
from collections.abc import Callable, Mapping
from importlib import import_module
from pathlib import Path
from typing import Any

from ciksim.errors import DataError
from ciksim.jobs.base import JobResult

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
}
PATH_INPUTS = ("path", "spec")


def job_function(name: str) -> Callable[..., JobResult]:
    """The job function called ``name`` (see ``JOBS``)."""
    if name not in JOBS:
        raise DataError(f"job: unknown job {name!r}; use {', '.join(JOBS)}")
    module, func = JOBS[name].split(":")
    return getattr(import_module(module), func)


def check_inputs(name: str, inputs: Mapping[str, Any]) -> None:
    """Raise DataError naming any input the job does not take."""
    params = inspect.signature(job_function(name)).parameters
    unknown = [k for k in inputs if k not in params or k == "progress"]
    if unknown:
        allowed = ", ".join(k for k in params if k != "progress")
        raise DataError(f"inputs: {', '.join(unknown)} not an input of job {name!r}; use "
                        f"{allowed}")


def run_job(name: str, inputs: Mapping[str, Any], *, base: Path | None = None,
            progress: Callable[[int, int], None] | None = None) -> JobResult:
    """Run job ``name`` with ``inputs``; path inputs are relative to ``base``;
    ``progress(done, total)`` is passed to the jobs that report it (trial)."""
    check_inputs(name, inputs)
    func = job_function(name)
    kwargs = dict(inputs)
    for key in PATH_INPUTS:
        if key in kwargs and base is not None:
            kwargs[key] = base / str(kwargs[key])
    if progress is not None and "progress" in inspect.signature(func).parameters:
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
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{p}: not valid TOML ({exc})") from exc
    name = data.get("job")
    inputs = data.get("inputs", {})
    if not isinstance(name, str) or not isinstance(inputs, dict):
        raise DataError(f"{p}: needs job = \"NAME\" and an [inputs] table")
    extra = [k for k in data if k not in ("job", "inputs")]
    if extra:
        raise DataError(f"{p}: unknown key(s) {', '.join(extra)}; use job and [inputs]")
    check_inputs(name, inputs)
    return name, inputs

"""Jobs in worker processes: one spawned process per job, progress through a queue,
cancel by ending that process (a web job runs its trial in that one process, so nothing
is left behind). Tables are written as Parquet (units kept); the page converts one to CSV
when asked."""

from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CTX = mp.get_context("spawn")


def _work(name: str, inputs: dict[str, Any], out: str, q: Any) -> None:
    """Body of the worker process: run the job, write its folder, report through ``q``
    (progress is ``(done, total)`` or one line of text, as the job reports it)."""
    from ciksim.errors import CikError
    from ciksim.jobs.registry import run_job

    try:
        res = run_job(name, inputs, out=Path(out),
                      progress=lambda *state: q.put(("progress", *state)))
        files = res.write(out, "parquet", ("png", "svg"))
        q.put(("done", res.summary(), files))
    except CikError as exc:
        q.put(("error", str(exc)))
    except Exception as exc:  # a bug: say so on the page rather than hang
        q.put(("error", f"internal error ({type(exc).__name__}): {exc}"))


@dataclass
class Job:
    """A job running in its own process; :meth:`poll` updates its state."""

    name: str
    inputs: dict[str, Any]
    out: Path
    state: str = "running"  # running, done, error, cancelled
    progress: tuple[int, int] = (0, 0)
    line: str = ""  # the last progress line of a job that reports text
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    error: str = ""

    def __post_init__(self) -> None:
        self._queue = _CTX.Queue()
        self._process = _CTX.Process(target=_work, daemon=True,
                                     args=(self.name, self.inputs, str(self.out),
                                           self._queue))
        self._process.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def poll(self) -> str:
        """Read the worker's messages; returns the state."""
        if self.state != "running":
            return self.state
        while True:
            try:
                msg = self._queue.get_nowait()
            except queue_mod.Empty:
                break
            if msg[0] == "progress" and isinstance(msg[1], str):
                self.line = msg[1]
            elif msg[0] == "progress":
                self.progress = (int(msg[1]), int(msg[2]))
            elif msg[0] == "done":
                self.state, self.summary, self.files = "done", msg[1], list(msg[2])
            else:
                self.state, self.error = "error", msg[1]
        if self.state != "running":
            self._process.join(timeout=5)
        elif not self._process.is_alive():
            self.state, self.error = "error", "the worker stopped unexpectedly"
        return self.state

    def cancel(self) -> None:
        """End the worker process now (terminate, then kill) and mark the job cancelled."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(timeout=5)
        if self.state == "running":
            self.state = "cancelled"
        self._queue.close()

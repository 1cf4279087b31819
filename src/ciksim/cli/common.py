"""What every verb module shares: the Typer app, consoles, error guard and printing helpers.

Only light modules are imported here (typer, rich), so that ``ciksim --version`` starts fast.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from ciksim._version import __version__
from ciksim.errors import CikError, DataError

app = typer.Typer(
    name="ciksim",
    help="Simulate and analyse CIK cell immunotherapy for leukemia.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 130)
err_console = Console(stderr=True)
#: Context settings for every verb: ``-h`` as well as ``--help``.
HELP = {"help_option_names": ["-h", "--help"]}
F = TypeVar("F", bound=Callable[..., Any])
#: The ``--json`` option shared by the verbs.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print only a JSON object.")]


def guarded(fn: F) -> F:
    """Check the shared options, then run; a CikError becomes 'error: ...' on stderr and exit
    status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            from ciksim.schemas.options import check_cli_options

            check_cli_options(kwargs)  # --out, --workers, --scheduler... before any work
            return fn(*args, **kwargs)
        except CikError as exc:
            from rich.markup import escape

            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def verb(group: typer.Typer | None = None, name: str | None = None) -> Callable[[F], F]:
    """Register the decorated function, :func:`guarded`, as the verb ``name`` (default: the
    function's name) of ``group`` (default: ``app``), with ``-h`` as well as ``--help``."""

    def register(fn: F) -> F:
        return (group or app).command(name, context_settings=HELP)(guarded(fn))

    return register


def emit(res: Any, out: Path | None, as_json: bool, show: Callable[[], None],
         *write_args: Any) -> None:
    """A verb's output: write the result ``res`` into ``out`` when given
    (``res.write(out, *write_args)``), then print ``res.summary()`` as JSON (``--json``), or
    call ``show`` and say which files were written."""
    files = res.write(out, *write_args) if out is not None else None
    if as_json:
        echo_json(res.summary())
        return
    show()
    if files is not None:
        wrote(out, files)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ciksim {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True,
                           help="Print the version and exit.")
    ] = False,
) -> None:
    """ciksim: from the culture flask to the clinical trial."""


def parse_number(text: str, name: str) -> float:
    """``text`` as a float, else a DataError naming the option ``--name``."""
    try:
        return float(text)
    except ValueError:
        raise DataError(f"--{name}: {text!r} is not a number") from None


def echo_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (NaN becomes null)."""
    from ciksim.jobs.base import jsonable

    typer.echo(json.dumps(jsonable(data)))


def rich_table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    """A right-aligned rich table with ``columns`` headers and text ``rows``."""
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, justify="right")
    for r in rows:
        table.add_row(*r)
    return table


def num(v: Any, fmt: str = ".3g") -> str:
    """A number as text; ``-`` for None or NaN."""
    return "-" if v is None or v != v else format(v, fmt)


def wrote(out: Any, files: list[str]) -> None:
    """Say which files a verb wrote into ``out``."""
    console.print(f"wrote {out}/: {', '.join(files)}")


@contextmanager
def progress_bar(label: str, enabled: bool, unit: str = "patients"
                 ) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr: ``unit`` done, rate and time left. The update
    ``(done, total, step=None)`` may name the step under way (shown after ``label``)."""
    if not enabled:
        yield lambda done, total, step=None: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    prog = Progress(*columns, console=Console(stderr=True), transient=False)
    task = prog.add_task(label, total=None, rate="")
    shown = False

    def update(done: int, total: int, step: str | None = None) -> None:
        nonlocal shown
        if not shown:  # only once the inputs are checked and the work has started
            prog.start()
            shown = True
        elapsed = prog.tasks[task].elapsed or 0.0
        per_s = done / elapsed if elapsed > 0 else 0.0
        rate = (f"{per_s:,.0f} {unit}/s" if per_s >= 10 else f"{per_s:.2g} {unit}/s"
                ) if per_s else ""
        prog.update(task, completed=done, total=total, rate=rate,
                    description=label if step is None else f"{label}: {step}")

    try:
        yield update
    finally:
        if shown:
            prog.stop()

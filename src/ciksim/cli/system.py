"""``ciksim system``: versions for bug reports."""

from __future__ import annotations

import sys

import typer

from ciksim._version import __version__
from ciksim.cli.common import app


@app.command()
def system() -> None:
    """Versions of Python, the platform and key dependencies (paste into bug reports)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    typer.echo(f"ciksim {__version__}")
    typer.echo(f"python {platform.python_version()} ({sys.executable})")
    typer.echo(f"platform {platform.platform()}")
    for pkg in ("numpy", "scipy", "pandas", "pint", "typer", "rich", "matplotlib", "pyarrow"):
        try:
            typer.echo(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            typer.echo(f"{pkg} not installed")

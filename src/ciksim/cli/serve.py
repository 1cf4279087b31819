"""``ciksim serve``: the web page for people who do not program (extra ``ciksim[web]``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ciksim.cli.common import console, err_console, verb

LOCAL = ("127.0.0.1", "localhost", "::1")


@verb()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (default: this machine "
                                           "only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8050,
) -> None:
    """Serve the web page: culture, killing, fit, patient and trial, in a browser."""
    from importlib.util import find_spec

    from ciksim.errors import CikError

    if find_spec("shiny") is None:
        raise CikError("the web page needs the web extra: pip install 'ciksim[web]'")
    if host not in LOCAL:
        err_console.print(f"[yellow]warning:[/] serving on {host}: anyone who can reach this "
                          "machine can use the page (there is no login) and its CPU time")
    from ciksim.web import serve as run

    console.print(f"ciksim web page on http://{host}:{port} (Ctrl+C stops it)")
    run(host, port)

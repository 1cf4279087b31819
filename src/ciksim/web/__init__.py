"""``ciksim serve``: a local web page over the application layer (:mod:`ciksim.jobs`).

Built on Shiny for Python (the optional extra ``ciksim[web]``): it is what CARTmath's users
know from R, and it keeps a server-side session per browser tab, which the page uses for
its safety rules:

- it binds to 127.0.0.1 unless told otherwise (``ciksim serve`` warns then);
- every browser session works in its own temporary folder, deleted when the session ends;
  uploads are kept there under fixed names and parsed by the same validators as the CLI;
  no user input becomes a file path on the server (selectors offer built-in names only,
  trial specs naming files are refused), and uploads over ``MAX_UPLOAD_BYTES`` are refused
  before they are stored;
- each job runs in its own worker process (trials in that one process), so the page stays
  responsive, several users can work at once, and a cancel ends the process.

Modules: ``pages`` (layout), ``app`` (server), ``summaries`` (result tables), ``session``
(folders, uploads), ``worker`` (processes). This package is imported only by ``serve``.
"""

from __future__ import annotations

from pathlib import Path


def serve(host: str = "127.0.0.1", port: int = 8050, root: Path | None = None) -> None:
    """Run the web page until interrupted (``root``: where session folders live)."""
    import uvicorn

    from ciksim.web.app import make_app

    uvicorn.run(make_app(root), host=host, port=port, log_level="warning")

"""Each browser session's own temporary folder, uploads kept under fixed names, and a size
limit on uploads enforced before a byte is stored."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from ciksim.errors import DataError

#: Largest upload accepted (bytes); a lysis plate or a count table is a few kB.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024

ASGI = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                Awaitable[None]]


def display_name(name: str) -> str:
    """A user's file name reduced to its last part and safe characters (for messages and
    the saved inputs; never used as a path on the server)."""
    base = re.split(r"[\\/]", name)[-1]
    return re.sub(r"[^\w.\-]", "_", base)[:80] or "upload"


class SessionFiles:
    """A temporary folder for one browser session (deleted by :meth:`close`)."""

    def __init__(self, root: Path) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="session-", dir=root))
        self._count = 0

    def job_dir(self, slot: str) -> Path:
        """A new folder name for a job of ``slot`` (created by the job's write)."""
        self._count += 1
        return self.path / f"{slot}-{self._count}"

    def keep_upload(self, info: Mapping[str, Any], slot: str, suffix: str) -> tuple[Path, str]:
        """Copy an uploaded file (Shiny's file info) to ``<slot>-upload<suffix>``; returns
        (kept path, display name). Larger than ``MAX_UPLOAD_BYTES``: DataError."""
        name = display_name(str(info.get("name", "upload")))
        size = int(info.get("size", 0))
        if size > MAX_UPLOAD_BYTES:
            raise DataError(f"{name}: {size / 1e6:.1f} MB is over the "
                            f"{MAX_UPLOAD_BYTES / 1e6:.0f} MB upload limit")
        dest = self.path / f"{slot}-upload{suffix}"
        shutil.copyfile(info["datapath"], dest)
        return dest, name

    def keep_text(self, text: str, name: str) -> Path:
        """Write ``text`` to the session file ``name`` (a fixed name chosen by the app)."""
        dest = self.path / name
        dest.write_text(text, encoding="utf-8")
        return dest

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def limit_uploads(app: ASGI, max_bytes: int = MAX_UPLOAD_BYTES) -> ASGI:
    """Wrap an ASGI app: upload POSTs without a Content-Length, or over ``max_bytes``
    (headers or body), get 413 before anything is written."""

    async def refuse(send: Callable[[Any], Awaitable[None]]) -> None:
        body = f"upload limit is {max_bytes} bytes".encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def wrapped(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                      send: Callable[[Any], Awaitable[None]]) -> None:
        if (scope["type"] == "http" and scope.get("method") == "POST"
                and "/upload/" in scope.get("path", "")):
            length = dict(scope.get("headers", [])).get(b"content-length")
            if length is None or not length.isdigit() or int(length) > max_bytes:
                await refuse(send)
                return
            seen = 0

            async def counted() -> Any:
                nonlocal seen
                message = await receive()
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise DataError("upload larger than its Content-Length")
                return message

            await app(scope, counted, send)
            return
        await app(scope, receive, send)

    return wrapped

"""``python -m ciksim.schemas docs [FOLDER]``: write docs/formats.md and the JSON Schemas."""

from __future__ import annotations

import sys

from ciksim.schemas.markdown import write


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "docs":
        print("usage: python -m ciksim.schemas docs [FOLDER]", file=sys.stderr)
        return 2
    for path in write(argv[1] if len(argv) > 1 else "docs"):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

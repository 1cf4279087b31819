"""A self-contained HTML report: headings, paragraphs, tables and embedded PNG figures."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; } .note { color: #555; font-size: 0.9em; }
"""


@dataclass
class Report:
    """Build a report section by section, then ``render()`` it to one HTML string."""

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> Report:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def paragraph(self, text: str, note: bool = False) -> Report:
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def table(self, df: pd.DataFrame, digits: int = 3) -> Report:
        def fmt(v: Any) -> str:
            if v is None or (isinstance(v, float) and v != v):
                return "–"
            if isinstance(v, float):
                return f"{v:.{digits}g}"
            return str(v)

        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(v))}</td>" for v in row)
                       + "</tr>" for row in df.itertuples(index=False))
        self.parts.append(f"<table><tr>{head}</tr>{body}</table>")
        return self

    def figure(self, fig: Any, caption: str = "") -> Report:
        from ciksim.report.plots import literal_text

        buf = io.BytesIO()
        fig = literal_text(getattr(fig, "figure", fig))
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
        data = base64.b64encode(buf.getvalue()).decode("ascii")
        cap = f"<p class=\"note\">{html.escape(caption)}</p>" if caption else ""
        self.parts.append(f'<img alt="{html.escape(caption)}" src="data:image/png;base64,'
                          f'{data}">{cap}')
        return self

    def preformatted(self, text: str) -> Report:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
                f"<body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")

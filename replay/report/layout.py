"""The page: one self-contained HTML file. plotly.js is inlined once in ``<head>``; every figure is a div with a
fixed id (``fig-…``) and its own small script, so the same run gives the same bytes and the file opens offline, alone.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

CSS = """
body{font-family:system-ui,-apple-system,sans-serif;margin:24px auto;max-width:1240px;padding:0 16px;color:#222}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}h3{margin-top:1.4em}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 10px;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:.92em}
.footnotes{color:#555;font-size:.9em;border-top:1px solid #ddd;margin-top:2em;padding-top:6px}
nav a{margin-right:12px}.pos{color:#1a7f1a}.neg{color:#b52020}details{margin:8px 0}
"""
_ID_SAFE = re.compile(r"[^A-Za-z0-9_-]+")


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (cells built by this module's helpers)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def signed(text: str, value: float | None) -> str:
    """A cell coloured by sign (gains green, losses red); ``text`` is escaped."""
    cls = "" if value is None or value == 0 else (' class="pos"' if value > 0 else ' class="neg"')
    return f"<span{cls}>{esc(text)}</span>"


class Page:
    """Sections in order, figures with deterministic ids, footnotes collected while the tables are built."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.nav: list[tuple[str, str]] = []
        self.footnotes: dict[str, str] = {}  # mark → text, in first-use order
        self._ids: set[str] = set()

    def section(self, title: str, anchor: str) -> None:
        anchor = self._unique(f"s-{anchor}")
        self.nav.append((anchor, title))
        self.parts.append(f'<h2 id="{anchor}">{esc(title)}</h2>')

    def heading(self, title: str) -> None:
        self.parts.append(f"<h3>{esc(title)}</h3>")

    def html(self, fragment: str) -> None:
        self.parts.append(fragment)

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{esc(text)}</p>')

    def footnote(self, mark: str, text: str) -> None:
        self.footnotes.setdefault(mark, text)

    def _unique(self, base: str) -> str:
        base = _ID_SAFE.sub("-", base)
        name, n = base, 1
        while name in self._ids:
            n += 1
            name = f"{base}-{n}"
        self._ids.add(name)
        return name

    def figure(self, fig: go.Figure, name: str) -> None:
        """A plotly figure as a div ``fig-{name}``: never a random uuid, so the file is byte-stable."""
        div_id = self._unique(f"fig-{name}")
        self.parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                      config={"displaylogo": False, "responsive": True}))

    def render(self) -> str:
        nav = "<nav>" + "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in self.nav) + "</nav>"
        notes = ""
        if self.footnotes:
            notes = '<div class="footnotes">' + "".join(f"<p>{esc(m)} {esc(t)}</p>"
                                                       for m, t in self.footnotes.items()) + "</div>"
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(self.title)}"
                f"</title><style>{CSS}</style>\n<script type=\"text/javascript\">{get_plotlyjs()}</script>\n</head>"
                f"<body><h1>{esc(self.title)}</h1>{nav}\n" + "\n".join(self.parts) + notes + "\n</body></html>\n")

"""HTML cards for Jupyter (``_repr_html_``): every value escaped, no scripts, no styles beyond
inline ones, so a notebook renders them safely whatever a run was named."""

from __future__ import annotations

import html
from collections.abc import Mapping


def html_card(title: str, fields: Mapping[str, object], link: str | None = None) -> str:
    """A small table of ``fields`` under ``title``; ``link`` (an http(s) URL) opens the UI."""
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(str(name))}</th>"
        f"<td style='text-align:left'>{html.escape(str(value))}</td></tr>"
        for name, value in fields.items()
        if value is not None
    )
    heading = html.escape(title)
    if link is not None and link.startswith(("http://", "https://")):
        heading = f"<a href='{html.escape(link, quote=True)}' target='_blank'>{heading}</a>"
    return f"<div><strong>{heading}</strong><table>{rows}</table></div>"

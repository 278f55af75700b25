"""One self-contained HTML page: a header, an optional warning, sections of notes, tables and figures, with
Plotly's JavaScript inline, so that it opens offline, from disk or from an e-mail, with nothing fetched."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # plotly is imported where a page is drawn
    import plotly.graph_objects as go

__all__ = ["render_page", "figure_html", "table", "esc", "write", "SHARE_NOTES"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 24px 48px; color: #1d1d1f; }
header { border-bottom: 1px solid #ddd; margin-bottom: 16px; }
h1 { font-size: 1.6em; margin: 24px 0 4px; } h2 { font-size: 1.25em; margin-top: 32px; }
.meta { color: #555; font-size: 0.92em; line-height: 1.5; }
.warning { background: #fff3cd; border: 1px solid #e0b000; padding: 10px 14px; border-radius: 6px; margin: 12px 0; }
.note { color: #555; font-size: 0.92em; max-width: 900px; }
table { border-collapse: collapse; font-size: 0.9em; margin: 8px 0 16px; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 4px 10px; text-align: left; vertical-align: middle; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.thumb { width: 56px; height: 56px; object-fit: cover; border-radius: 3px; }
.figure { margin: 8px 0 24px; }
.tables { display: flex; flex-wrap: wrap; gap: 8px 32px; } h3 { font-size: 1em; margin: 12px 0 4px; }
"""

# What each fusion measure says, under its figures (the dataset report's boxes, the image report's matrices).
SHARE_NOTES = {
    "energy_share": "‖e_ij‖² / Σ_k ‖e_ik‖²: how loud each source stream is in the sum that forms the target stream.",
    "agreement": "⟨e_ij, z_i⟩ / ‖z_i‖²: each source's part of the pre-activation sum; negative when it opposes it.",
    "relu_share": "⟨e_ij, ReLU(z_i)⟩ / ‖ReLU(z_i)‖²: each source's part of what survives the activation.",
}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_page(title: str, meta: str, sections: Sequence[tuple[str, str, str]], warning: str = "") -> str:
    """One HTML page: ``sections`` are (heading, note, body HTML); Plotly's JS is inlined once, in the head."""
    from plotly.offline import get_plotlyjs

    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f'<header><h1>{esc(title)}</h1><p class="meta">{meta}</p></header>',
    ]
    if warning:
        parts.append(f'<div class="warning" role="alert">{warning}</div>')
    for k, (heading, note, body) in enumerate(sections):
        parts.append(f'<section id="section-{k}"><h2>{esc(heading)}</h2>')
        if note:
            parts.append(f'<p class="note">{note}</p>')
        parts.append(body + "</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def figure_html(fig: go.Figure, div_id: str) -> str:
    """``fig`` as a div of the page (its JS comes from the page's head)."""
    import plotly.io as pio

    body = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="figure">{body}</div>'


def table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool] | None = None) -> str:
    """An HTML table; the cells are HTML already (escape text with :func:`esc`); ``numeric`` columns align right."""
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if n else f"<td>{c}</td>" for c, n in zip(r, numeric, strict=False))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write(path: str | Path, text: str) -> Path:
    """``text`` written to ``path`` (its folder made), as UTF-8."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path

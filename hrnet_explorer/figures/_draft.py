"""The figures' draft framework: a figure built as plain dicts and validated by plotly once, its subplot grid taken
from ``make_subplots`` once per grid shape, the figures' template, and the compact layout for narrow screens.

A builder makes a :class:`Draft` (or :func:`subplots` for a grid), adds traces, axes and annotations to it as
dicts, and hands it to :func:`finish`, which titles it, gives it the figures' look and returns the ``go.Figure``.
Plotly's private grid internals stay behind :mod:`hrnet_explorer.figures._plotly`. What this saves is measured in
benchmarks/README.md ("figures").
"""

from __future__ import annotations

import copy
import functools
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from ..display import COMPACT_WIDTH
from . import _plotly

__all__ = [
    "COMPACT_WIDTH",
    "COMPACT_DESIGN_WIDTH",
    "COMPACT_TITLE",
    "TEMPLATE_TRACES",
    "UNUSED_SUBPLOTS",
    "Draft",
    "subplots",
    "panel_grid",
    "finish",
    "wrap",
    "wrap_html",
]


def wrap(text: str, width: int = 110) -> str:
    return "<br>".join(textwrap.wrap(text, width))


_TAG = re.compile(r"(<[^>]+>)")
_SMALL_TAGS = ("sup", "sub")


def wrap_html(text: str, width: int, small_width: int | None = None) -> list[str]:
    """Plotly's pseudo-HTML ``text`` in lines of at most ``width`` visible characters (``small_width`` inside
    <sup>/<sub>, whose font is smaller), broken at spaces and at its own <br>. Tags don't count; a tag open at a
    break is closed at the end of the line and opened again on the next, so every line stands on its own."""
    small_width = small_width or width
    lines: list[str] = []
    stack: list[tuple[str, str]] = []  # open tags: (name, the opening tag as written)
    line, length, space = "", 0, False

    def brk() -> None:
        nonlocal line, length, space
        lines.append(line + "".join(f"</{name}>" for name, _ in reversed(stack)))
        line, length, space = "".join(tag for _, tag in stack), 0, False

    for token in _TAG.split(text):
        if not token:
            continue
        if token.startswith("<"):
            name = token.strip("</>").split()[0].lower() if token.strip("</>") else ""
            if name == "br":
                brk()
            elif token.startswith("</"):
                if stack and stack[-1][0] == name:
                    stack.pop()
                line += token
            else:
                stack.append((name, token))
                line += token
            continue
        if token[:1].isspace():
            space = True
        words = token.split()
        for k, word in enumerate(words):
            limit = small_width if any(name in _SMALL_TAGS for name, _ in stack) else width
            need = len(word) + (1 if space and length else 0)
            if length and length + need > limit:
                brk()
                need = len(word)
            elif space and length:
                line += " "
            line += word
            length += need
            space = k < len(words) - 1 or token[-1:].isspace()
    if line or not lines:
        lines.append(line)
    return lines


# Compact figures (``compact=True``, for narrow screens: the app asks for them below COMPACT_WIDTH px, in
# hrnet_explorer.display) are laid out for about COMPACT_DESIGN_WIDTH px: grids wrap to fewer columns or stack, titles
# wrap, colour bars lie below.
COMPACT_DESIGN_WIDTH = 360
COMPACT_TITLE = (40, 58)  # characters per line of a compact title, and of its <sup> lines
_COMPACT_TOP = 34  # px above a compact title
_COLORBAR_BELOW = 60  # px under the plot for a horizontal colour bar (+ 13 px per line of its title)


def _bar_below(bar: dict) -> int:
    """A colour bar turned horizontal, thin, under the plot; its title under its tick labels. Returns the pixels it
    needs below the plot."""
    text = (bar.get("title") or {}).get("text") or ""
    lines = wrap_html(re.sub(r"<br\s*/?>", " ", text, flags=re.I), 58)
    _merge(
        bar,
        dict(
            orientation="h",
            thickness=12,
            len=1.0,
            x=0.5,
            xanchor="center",
            xref="paper",
            y=0.0,
            yanchor="bottom",
            yref="container",
            ypad=6,
            title=dict(text="<br>".join(lines), side="bottom", font=dict(size=11)),
        ),
    )
    return _COLORBAR_BELOW + 13 * len(lines)


def _title_px(title: str) -> int:
    """About how tall a figure title is: 20 px a line (plotly.js spaces <sup> lines as its 15 px font), the last
    one 13 px when it is a <sup> or <sub> line."""
    lines = title.split("<br>")
    return 20 * (len(lines) - 1) + (13 if re.match(r"\s*<su[bp]>", lines[-1]) else 20)


# The figures' look: plotly's "plotly_white" template, embedded in each figure. Naming it (template="plotly_white")
# made plotly copy and validate all of it, defaults for ~25 trace types and for polar, ternary, 3-D and map subplots,
# each time a figure was drawn (the cost: benchmarks/README.md); the figures keep the part that applies to what they
# draw, unchanged: the layout less those subplots, and the defaults of their trace types.
TEMPLATE_TRACES = ("bar", "heatmap", "image", "sankey", "scatter")
UNUSED_SUBPLOTS = ("geo", "map", "mapbox", "polar", "scene", "smith", "ternary")


def _template() -> dict:
    """The figures' template: plotly_white (as registered now) for the trace types and the 2-D axes they draw."""
    white = pio.templates["plotly_white"].to_plotly_json()  # a copy
    return dict(
        data={k: v for k, v in white.get("data", {}).items() if k in TEMPLATE_TRACES},
        layout={k: v for k, v in white.get("layout", {}).items() if k not in UNUSED_SUBPLOTS},
    )


def _merge(into: dict, update: Mapping) -> dict:
    """``update`` merged into ``into`` as ``update_layout`` merges it: dicts into dicts, anything else replaced."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        elif isinstance(value, Mapping):
            into[key] = _merge({}, value)
        else:
            into[key] = value
    return into


class Draft:
    """A figure as plain dicts (traces and layout), made into a ``go.Figure`` once, by :func:`finish`: plotly
    validates every property each time one is set, so building a figure call by call (``add_trace``,
    ``update_xaxes``, ``add_annotation``, ``update_layout``) cost several times what one validation of the whole
    does. ``grid``: the subplot grid of :func:`subplots` (kept, so ``row=``/``col=`` work on the figure)."""

    def __init__(self, layout: dict | None = None, grid: _plotly.SubplotGrid | None = None):
        self.data: list[dict] = []
        self.layout: dict = layout if layout is not None else {}
        self.grid = grid

    def add(self, trace: dict, row: int | None = None, col: int | None = None) -> dict:
        if row is not None:
            trace.update(_plotly.cell_axes(self.grid, row, col))
        self.data.append(trace)
        return trace

    def axis(self, xy: str, row: int = 1, col: int = 1) -> dict:
        """The layout dict of the x or y axis of cell (row, col) (of the single plot without a grid)."""
        key = _plotly.cell_layout_keys(self.grid, row, col)[xy == "y"] if self.grid else f"{xy}axis"
        return self.layout.setdefault(key, {})

    def axes(self, xy: str) -> list[dict]:
        """Every x or y axis of the layout, as ``update_xaxes()`` without row and col selects them."""
        if not self.grid:
            return [self.layout.setdefault(f"{xy}axis", {})]
        return [v for k, v in self.layout.items() if re.fullmatch(f"{xy}axis[0-9]*", k)]

    def annotate(self, **annotation: Any) -> None:
        self.layout.setdefault("annotations", []).append(annotation)

    def font_annotations(self, size: int) -> None:
        """Every annotation so far in a font of ``size`` px (``update_annotations(font_size=size)``)."""
        for note in self.layout.get("annotations", ()):
            note.setdefault("font", {})["size"] = size

    def rule(self, xy: str, at: float, row: int = 1, col: int = 1, **line: Any) -> None:
        """A line across cell (row, col) at x = ``at`` (``xy="x"``) or y = ``at``, as ``add_vline`` / ``add_hline``
        draw it."""
        axes = _plotly.cell_axes(self.grid, row, col) if self.grid else {"xaxis": "x", "yaxis": "y"}
        x, y = axes["xaxis"], axes["yaxis"]
        shape = dict(type="line", line=line)
        if xy == "x":
            shape.update(x0=at, x1=at, xref=x, y0=0, y1=1, yref=f"{y} domain")
        else:
            shape.update(x0=0, x1=1, xref=f"{x} domain", y0=at, y1=at, yref=y)
        self.layout.setdefault("shapes", []).append(shape)

    def figure(self) -> go.Figure:
        return _plotly.figure_with_grid(self.data, self.layout, self.grid)


@functools.lru_cache(maxsize=64)
def _grid(**options: Any) -> tuple[dict, _plotly.SubplotGrid]:
    """make_subplots' layout and grid, once per grid shape (make_subplots costs more than the rest of a figure:
    benchmarks/README.md)."""
    layout, grid = _plotly.subplot_grid(**options)
    layout.pop("template", None)  # the session's default template: finish sets the figures' own
    return layout, grid


def subplots(**options: Any) -> Draft:
    """``make_subplots(**options)`` as a draft: its layout (axes and title annotations) computed once per grid,
    the titles filled in after (grids that differ only in their titles share one layout)."""
    texts = {}
    for name in ("subplot_titles", "column_titles", "row_titles"):
        if options.get(name):  # plotly draws no annotation for an empty title: those stay empty
            keys = tuple(f"\x00{name}{k}" if text else "" for k, text in enumerate(options[name]))
            texts |= dict(zip(keys, options[name], strict=True))
            options[name] = keys
    layout, grid = _grid(**options)
    layout = copy.deepcopy(layout)
    for note in layout.get("annotations", ()):
        note["text"] = texts.get(note["text"], note["text"])
    return Draft(layout, _plotly.SubplotGrid(copy.deepcopy(grid.ref), grid.text))


def _colour_bars(draft: Draft) -> list[dict]:
    """The colour bars a draft's figure shows (its colour axes' and its traces' own), as dicts to update in place."""
    bars = []
    for name in sorted({t["coloraxis"] for t in draft.data if t.get("coloraxis")}):
        if draft.layout.get(name, {}).get("showscale") is not False:
            bars.append(draft.layout.setdefault(name, {}).setdefault("colorbar", {}))
    for t in draft.data:  # traces with a colour bar of their own (of the types drafts draw: heatmaps)
        if t.get("type") == "heatmap" and not t.get("coloraxis") and t.get("showscale") is not False:
            bars.append(t.setdefault("colorbar", {}))
    return bars


def finish(fig: Draft, title: str, height: int | None = None, *, compact: bool = False, **layout: Any) -> go.Figure:
    """The draft, titled, in the figures' template and ``layout``, made a ``go.Figure``. ``compact``: the title
    wrapped, the colour bars under the plot."""
    layout.setdefault("margin", dict(l=60, r=30, t=90, b=50))
    heading = dict(text=title, x=0.01, xanchor="left", font=dict(size=15))
    if compact:  # the title wrapped, at the top; the top margin keeps the room the figure left under its title
        margin = dict(layout["margin"])
        top = margin.get("t", 90)
        under = max(30, top // 2 + 14 - _title_px(title))  # a wide title starts 14 px above the top margin's middle
        heading["text"] = "<br>".join(wrap_html(title, *COMPACT_TITLE))
        # The top 34 px stay free for the mode bar (and the app's plot label, drawn over the figure's corner);
        # plotly.js lifts a title of several lines 10 px above its pad.
        heading.update(
            y=1, yref="container", yanchor="top", pad=dict(t=_COMPACT_TOP + 10 * ("<br>" in heading["text"]))
        )
        margin["t"] = _COMPACT_TOP + _title_px(heading["text"]) + under
        margin["r"] = min(margin.get("r", 30), 16)
        layout["margin"] = margin
        height = height + margin["t"] - top if height else height
    if height:
        layout["height"] = height
    _merge(fig.layout, dict(title=heading, hoverlabel=dict(namelength=-1), **layout))
    fig.layout["template"] = _template()
    bars = _colour_bars(fig)
    if compact:
        below = max((_bar_below(bar) for bar in bars), default=0)
        if below:
            fig.layout["margin"]["b"] = fig.layout["margin"].get("b", 0) + below
            if fig.layout.get("height"):
                fig.layout["height"] += below
    else:  # the top tick label under its tick: above it, it ran into the last line of the bar's title
        for bar in bars:
            bar["ticklabelposition"] = "outside bottom"
    return fig.figure()


def panel_grid(titles: Sequence[str], compact: bool, title_px: int, wide_spacing: float) -> tuple[Draft, int, float]:
    """A grid of square image panels, one per title: all in one row, or two a row across a narrow screen
    (``compact``), with ``title_px`` above each row for its titles. → (the draft, its columns, the compact grid's
    height in px: rows × (panel side + title_px); 0 when wide)."""
    cols = min(2, len(titles)) if compact else len(titles)
    rows = math.ceil(len(titles) / cols)
    cell = (COMPACT_DESIGN_WIDTH - 40) / cols if compact else 0  # px: a square panel's side on a narrow screen
    fig = subplots(
        rows=rows,
        cols=cols,
        subplot_titles=tuple(titles),
        horizontal_spacing=0.04 if compact else wide_spacing,
        vertical_spacing=title_px / ((cell + title_px) * rows) if rows > 1 else 0.0,
    )
    return fig, cols, rows * (cell + title_px) if compact else 0.0

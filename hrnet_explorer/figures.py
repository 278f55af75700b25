"""Plotly figures of the explorer's results — pure functions, shared by the app, the notebooks and the CLI.

Every builder takes results (a :class:`~hrnet_explorer.predict.Prediction`, a
:class:`~hrnet_explorer.trace.Trace`, a :class:`~hrnet_explorer.fusion.Decomposition`, the dataclasses of
:mod:`hrnet_explorer.attribution`, :class:`~hrnet_explorer.costs.CostReport`) and returns a new
``plotly.graph_objects.Figure``; nothing is computed on the model and nothing global changes. Every
figure has a title, labelled axes, a colour bar that says what its colours mean, and hover text with the
exact numbers. Stream k has the same colour everywhere (:data:`STREAM_COLORS`).

Maps are shown in *input-pixel coordinates* (stream k's pixel covers 4·2^k input pixels), so the lanes
of different resolutions line up; large maps are averaged down to ``max_side`` pixels for display only.
"""

from __future__ import annotations

import base64
import copy
import functools
import io
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from .costs import CARD_FLOPS_EXPLANATION
from .fusion import MEASURES, Decomposition, Flow, FusionStats, fusion_flows, spatial_summary
from .images import OUTLIER_PERC, display_scale

if TYPE_CHECKING:  # the attribution dataclasses are only read, by attribute
    from PIL import Image

    from .attribution import (
        Faithfulness,
        KnockoutResult,
        MethodScores,
        PixelAttribution,
        RandomisationTest,
        StreamGradCAM,
        StreamShares,
    )
    from .costs import CostReport
    from .predict import ClassScore, Prediction
    from .trace import Trace

__all__ = [
    "STREAM_COLORS",
    "MEASURE_LABELS",
    "REDUCTION_LABELS",
    "topk_figure",
    "variants_figure",
    "lanes_figure",
    "module_maps_figure",
    "fusion_matrix_figure",
    "fusion_matrices_figure",
    "sankey_figure",
    "decomposition_figure",
    "attribution_figure",
    "gradcam_figure",
    "stream_shares_figure",
    "knockout_figure",
    "faithfulness_figure",
    "randomisation_figure",
    "compare_figure",
]

# Okabe–Ito colours (readable with the common colour-vision deficiencies), one per stream.
STREAM_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")
NEGATIVE_COLOR = "#D55E00"
POSITIVE_COLOR = "#0072B2"

MEASURE_LABELS = {
    "energy_share": "energy share ‖e_ij‖² / Σ_k ‖e_ik‖² (each row sums to 1)",
    "agreement": "agreement ⟨e_ij, z_i⟩ / ‖z_i‖² (rows sum to 1; < 0 opposes the sum)",
    "relu_share": "ReLU share ⟨e_ij, ReLU(z_i)⟩ / ‖ReLU(z_i)‖² (rows sum to 1)",
}
_MEASURE_SHORT = {"energy_share": "energy share", "agreement": "agreement", "relu_share": "ReLU share"}
REDUCTION_LABELS = {
    "l2": "channel L2 norm",
    "mean": "channel mean",
    "pca": "first 3 principal components over channels as R, G, B",
}
METHOD_LABELS = {
    "ig": "Integrated Gradients",
    "saliency": "Saliency (|gradient|)",
    "smoothgrad": "SmoothGrad",
    "gradshap": "GradientSHAP",
    "occlusion": "Occlusion",
    "random": "random map",
}
# One colour per pixel method in the trust figures (Okabe–Ito again); the random map is grey and dashed.
METHOD_COLORS = {
    "ig": "#0072B2",
    "saliency": "#E69F00",
    "smoothgrad": "#009E73",
    "gradshap": "#CC79A7",
    "occlusion": "#D55E00",
    "random": "#7F7F7F",
}
_SEQUENTIAL = "Viridis"
_DIVERGING = "RdBu_r"  # red = positive, blue = negative, white = 0
_HEAT = "Inferno"


# ---------------------------------------------------------------------------------------------- helpers


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().float().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def _short(variant: str) -> str:
    return variant.removeprefix("hrnet_")


def _clip_label(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` characters at a word boundary where one is near, with an ellipsis."""
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    if space >= width // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def _padded_range(values: Sequence[float], pad: float = 0.3) -> list[float]:
    """An axis range around 0 and ``values`` with room beyond each bar end for its text label, so that labels
    drawn outside negative bars do not run into the tick labels (or get clipped)."""
    lo, hi = min(0.0, *values), max(0.0, *values)
    span = (hi - lo) or 1.0
    return [lo - pad * span if lo < 0 else lo, hi + pad * span if hi > 0 or lo == 0 else hi]


def _wrap(text: str, width: int = 110) -> str:
    return "<br>".join(textwrap.wrap(text, width))


_TAG = re.compile(r"(<[^>]+>)")
_SMALL_TAGS = ("sup", "sub")


def _wrap_html(text: str, width: int, small_width: int | None = None) -> list[str]:
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


# Compact figures (``compact=True``, for narrow screens: the app asks for them below COMPACT_WIDTH px) are laid out
# for about COMPACT_DESIGN_WIDTH px: grids wrap to fewer columns or stack, titles wrap, colour bars lie below.
COMPACT_WIDTH = 820  # below it, the wide layouts' subplot titles and notes run into each other
COMPACT_DESIGN_WIDTH = 360
_COMPACT_TITLE = (40, 58)  # characters per line of a compact title, and of its <sup> lines
_COMPACT_TOP = 34  # px above a compact title
_COLORBAR_BELOW = 60  # px under the plot for a horizontal colour bar (+ 13 px per line of its title)


def _bar_below(bar: dict) -> int:
    """A colour bar turned horizontal, thin, under the plot; its title under its tick labels. Returns the pixels it
    needs below the plot."""
    text = (bar.get("title") or {}).get("text") or ""
    lines = _wrap_html(re.sub(r"<br\s*/?>", " ", text, flags=re.I), 58)
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
# each time a figure was drawn (~5 ms a figure on a 2-core CPU); the figures keep the part that applies to what they
# draw, unchanged: the layout less those subplots, and the defaults of their trace types.
_TEMPLATE_TRACES = ("bar", "heatmap", "image", "sankey", "scatter")
_UNUSED_SUBPLOTS = ("geo", "map", "mapbox", "polar", "scene", "smith", "ternary")


def _template() -> dict:
    """The figures' template: plotly_white (as registered now) for the trace types and the 2-D axes they draw."""
    white = pio.templates["plotly_white"].to_plotly_json()  # a copy
    return dict(
        data={k: v for k, v in white.get("data", {}).items() if k in _TEMPLATE_TRACES},
        layout={k: v for k, v in white.get("layout", {}).items() if k not in _UNUSED_SUBPLOTS},
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


class _Draft:
    """A figure as plain dicts (traces and layout), made into a ``go.Figure`` once, by :func:`_finish`: plotly
    validates every property each time one is set, so building a figure call by call (``add_trace``,
    ``update_xaxes``, ``add_annotation``, ``update_layout``) cost several times what one validation of the whole
    does. ``grid``: the subplot grid of :func:`_subplots` (kept, so ``row=``/``col=`` work on the figure)."""

    def __init__(self, layout: dict | None = None, grid: tuple | None = None):
        self.data: list[dict] = []
        self.layout: dict = layout if layout is not None else {}
        self.grid = grid  # (grid_ref, grid_str) as make_subplots leaves them on its figure

    def add(self, trace: dict, row: int | None = None, col: int | None = None) -> dict:
        if row is not None:
            trace.update(self.grid[0][row - 1][col - 1][0].trace_kwargs)
        self.data.append(trace)
        return trace

    def axis(self, xy: str, row: int = 1, col: int = 1) -> dict:
        """The layout dict of the x or y axis of cell (row, col) (of the single plot without a grid)."""
        key = self.grid[0][row - 1][col - 1][0].layout_keys[xy == "y"] if self.grid else f"{xy}axis"
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
        x, y = (self.grid[0][row - 1][col - 1][0].trace_kwargs[f"{k}axis"] if self.grid else k for k in "xy")
        shape = dict(type="line", line=line)
        if xy == "x":
            shape.update(x0=at, x1=at, xref=x, y0=0, y1=1, yref=f"{y} domain")
        else:
            shape.update(x0=0, x1=1, xref=f"{x} domain", y0=at, y1=at, yref=y)
        self.layout.setdefault("shapes", []).append(shape)

    def figure(self) -> go.Figure:
        spec: dict[str, Any] = {"data": self.data, "layout": self.layout}
        if self.grid:  # as plotly itself rebuilds a subplot figure (BaseFigure.__reduce__)
            spec["_grid_ref"], spec["_grid_str"] = self.grid
        return go.Figure(spec)


@functools.lru_cache(maxsize=64)
def _grid(**options: Any) -> tuple[dict, list, str]:
    """make_subplots' layout and its grid (which it keeps on the figure as ``_grid_ref`` / ``_grid_str``, what
    ``row=``/``col=`` use): ~6 ms for a 1×3 grid, ~14 ms for 2×4 on a 2-core CPU, so once per grid shape."""
    fig = make_subplots(**options)
    layout = fig.layout.to_plotly_json()
    layout.pop("template", None)  # the session's default template: _finish sets the figures' own
    return layout, fig._grid_ref, fig._grid_str


def _subplots(**options: Any) -> _Draft:
    """``make_subplots(**options)`` as a draft: its layout (axes and title annotations) computed once per grid,
    the titles filled in after (grids that differ only in their titles share one layout)."""
    texts = {}
    for name in ("subplot_titles", "column_titles", "row_titles"):
        if options.get(name):  # plotly draws no annotation for an empty title: those stay empty
            keys = tuple(f"\x00{name}{k}" if text else "" for k, text in enumerate(options[name]))
            texts |= dict(zip(keys, options[name], strict=True))
            options[name] = keys
    layout, grid_ref, grid_str = _grid(**options)
    layout = copy.deepcopy(layout)
    for note in layout.get("annotations", ()):
        note["text"] = texts.get(note["text"], note["text"])
    return _Draft(layout, (copy.deepcopy(grid_ref), grid_str))


def _colour_bars(draft: _Draft) -> list[dict]:
    """The colour bars a draft's figure shows (its colour axes' and its traces' own), as dicts to update in place."""
    bars = []
    for name in sorted({t["coloraxis"] for t in draft.data if t.get("coloraxis")}):
        if draft.layout.get(name, {}).get("showscale") is not False:
            bars.append(draft.layout.setdefault(name, {}).setdefault("colorbar", {}))
    for t in draft.data:  # traces with a colour bar of their own (of the types drafts draw: heatmaps)
        if t.get("type") == "heatmap" and not t.get("coloraxis") and t.get("showscale") is not False:
            bars.append(t.setdefault("colorbar", {}))
    return bars


def _finish(fig: _Draft, title: str, height: int | None = None, *, compact: bool = False, **layout: Any) -> go.Figure:
    """The draft, titled, in the figures' template and ``layout``, made a ``go.Figure``. ``compact``: the title
    wrapped, the colour bars under the plot."""
    layout.setdefault("margin", dict(l=60, r=30, t=90, b=50))
    heading = dict(text=title, x=0.01, xanchor="left", font=dict(size=15))
    if compact:  # the title wrapped, at the top; the top margin keeps the room the figure left under its title
        margin = dict(layout["margin"])
        top = margin.get("t", 90)
        under = max(30, top // 2 + 14 - _title_px(title))  # a wide title starts 14 px above the top margin's middle
        heading["text"] = "<br>".join(_wrap_html(title, *_COMPACT_TITLE))
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


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[k : k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _stream_color(k: int) -> str:
    return STREAM_COLORS[k % len(STREAM_COLORS)]


def _weights_note(weights: Any) -> str:
    """'' for real weights, a loud note for random ones (``weights`` is a WeightsSource or None)."""
    return " · <b>RANDOM weights: meaningless</b>" if weights is not None and weights.is_random else ""


def _image_uri(image: Image.Image | np.ndarray, size: tuple[int, int] | None = None) -> str:
    """An RGB image as a JPEG data URI (small in the figure's JSON), resized to ``size`` = (H, W)."""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    img = img.convert("RGB")
    if size is not None and (img.height, img.width) != tuple(size):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _shrink(image: torch.Tensor, max_side: int) -> torch.Tensor:
    """Average [H, W] or [H, W, 3] down so that its longer side is at most ``max_side`` (display only)."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    size = (max(1, round(h * max_side / max(h, w))), max(1, round(w * max_side / max(h, w))))
    x = image.permute(2, 0, 1)[None] if image.ndim == 3 else image[None, None]
    x = F.adaptive_avg_pool2d(x.float(), size)[0]
    return x.permute(1, 2, 0) if image.ndim == 3 else x[0]


def _reduce(trace: Trace, name: str, method: str, sample: int, max_side: int) -> torch.Tensor:
    """The [h, w] (or [h, w, 3] for PCA) display summary of the traced map ``name``."""
    if name in trace.maps:
        out = spatial_summary(trace.maps[name][sample], method)
    elif name in trace.summaries and method in trace.summaries[name]:
        out = trace.summaries[name][method][sample].float()
    else:
        raise KeyError(
            f"{name!r} was not kept with a {method!r} summary (trace keep={trace.keep!r}); trace with keep='all'."
        )
    return _shrink(out.cpu(), max_side)


def _pixel_axis(n: int, extent: int) -> np.ndarray:
    """Centres of ``n`` cells spanning ``extent`` input pixels."""
    return (np.arange(n) + 0.5) * (extent / n)


def _symmetric(values: Sequence[np.ndarray] | np.ndarray) -> float:
    arrays = values if isinstance(values, (list, tuple)) else [values]
    top = max((float(np.abs(a).max()) if a.size else 0.0) for a in arrays)
    return top if top > 0 else 1.0


# ------------------------------------------------------------------------------------------- prediction


def topk_figure(
    prediction: Prediction | Sequence[ClassScore], *, title: str | None = None, compact: bool = False
) -> go.Figure:
    """Horizontal bars of the top-k classes (best on top): softmax probability, with logit and index on hover.
    ``compact``: for a narrow screen (shorter class names, a wrapped title)."""
    scores = list(getattr(prediction, "top", prediction))
    if not scores:
        raise ValueError("topk_figure needs at least one ClassScore.")
    scores = scores[::-1]
    fig = _Draft()
    fig.add(
        dict(
            type="bar",
            x=[s.probability for s in scores],
            y=[f"{_clip_label(s.label, 24 if compact else 40)} ({s.index})" for s in scores],
            orientation="h",
            marker=dict(color=POSITIVE_COLOR),
            text=[f"{s.probability:.1%}" for s in scores],
            textposition="auto",
            customdata=[[s.logit, s.index, s.label] for s in scores],
            hovertemplate="<b>%{customdata[2]}</b> (class %{customdata[1]})<br>probability %{x:.4%}"
            "<br>logit %{customdata[0]:.4f}<extra></extra>",
        )
    )
    if title is None:
        title = f"Top-{len(scores)} classes"
        if hasattr(prediction, "variant"):
            h, w = prediction.input_size
            title += f" · {_short(prediction.model_name)} · {h}×{w} px{_weights_note(prediction.weights)}"
    fig.axis("x").update(title=dict(text="softmax probability"), tickformat=".0%", rangemode="tozero")
    fig.axis("y").update(automargin=True, **({} if compact else dict(title=dict(text="class (index)"))))
    return _finish(fig, title, height=120 + 36 * len(scores), compact=compact)


def variants_figure(
    reports: Sequence[CostReport],
    latencies_ms: Mapping[str, float] | None = None,
    *,
    device: str | None = None,
    compact: bool = False,
) -> go.Figure:
    """The variants compared, card beside measurement: parameters, MACs vs the card's "FLOPs", latency.

    ``latencies_ms`` maps variant name → measured milliseconds of one forward (optional; ``device`` says where).
    ``compact``: the panels stacked, for a narrow screen.
    """
    if not reports:
        raise ValueError("variants_figure needs at least one CostReport.")
    names = [_short(r.variant) for r in reports]
    lat = [latencies_ms.get(r.variant) for r in reports] if latencies_ms else None
    cols = 3 if lat and any(v is not None for v in lat) else 2
    titles = ["Parameters (millions)", "Compute per 224 px image (billions)", "Latency of one traced forward (ms)"][
        :cols
    ]
    if compact:
        fig = _subplots(rows=cols, cols=1, subplot_titles=tuple(titles), vertical_spacing=0.32 / cols)
        fig.font_annotations(13)
    else:
        fig = _subplots(rows=1, cols=cols, subplot_titles=tuple(titles), horizontal_spacing=0.08)

    def at(c: int) -> tuple[int, int]:
        return (c, 1) if compact else (1, c)

    fig.add(
        dict(
            type="bar",
            name="card",
            x=names,
            y=[r.card_params_m for r in reports],
            marker=dict(color="#999999"),
            legendgroup="card",
            hovertemplate="%{x}<br>card: %{y:.2f} M parameters<extra></extra>",
        ),
        *at(1),
    )
    fig.add(
        dict(
            type="bar",
            name="measured",
            x=names,
            y=[r.params / 1e6 for r in reports],
            marker=dict(color=POSITIVE_COLOR),
            legendgroup="measured",
            customdata=[r.params for r in reports],
            hovertemplate="%{x}<br>measured: %{customdata:,} parameters<extra></extra>",
        ),
        *at(1),
    )
    fig.add(
        dict(
            type="bar",
            name="card 'FLOPs'",
            x=names,
            y=[r.card_flops / 1e9 for r in reports],
            marker=dict(color="#999999"),
            legendgroup="card",
            showlegend=False,
            customdata=[[r.card_flops, r.card_flops_over_macs] for r in reports],
            hovertemplate="%{x}<br>card 'FLOPs': %{customdata[0]:,}<br>= %{customdata[1]:.3f} × measured MACs"
            "<extra></extra>",
        ),
        *at(2),
    )
    fig.add(
        dict(
            type="bar",
            name="measured MACs",
            x=names,
            y=[r.macs / 1e9 for r in reports],
            marker=dict(color=POSITIVE_COLOR),
            legendgroup="measured",
            showlegend=False,
            customdata=[r.macs for r in reports],
            hovertemplate="%{x}<br>measured (fvcore): %{customdata:,} MACs<extra></extra>",
        ),
        *at(2),
    )
    if cols == 3:
        fig.add(
            dict(
                type="bar",
                name="measured latency",
                x=names,
                y=lat,
                marker=dict(color=POSITIVE_COLOR),
                legendgroup="measured",
                showlegend=False,
                text=[f"{v:.0f}" if v is not None else "" for v in lat],
                textposition="auto",
                hovertemplate="%{x}<br>%{y:.1f} ms" + (f" on {device}" if device else "") + "<extra></extra>",
            ),
            *at(3),
        )
        fig.axis("y", *at(3))["title"] = dict(text="ms" + (f" ({device})" if device else ""))
    fig.axis("y", 1, 1)["title"] = dict(text="M parameters")
    fig.axis("y", *at(2))["title"] = dict(
        text="G (card 'FLOPs', MACs)" if compact else "G (card: 'FLOPs'; measured: MACs)"
    )
    if not compact:
        for axis in fig.axes("x"):
            axis["title"] = dict(text="variant")
    note = len(_wrap(CARD_FLOPS_EXPLANATION, 56).split("<br>"))  # the compact note's lines
    height = 150 + 250 * cols + 15 * note if compact else 520
    fig.annotate(
        text=_wrap(CARD_FLOPS_EXPLANATION, 56 if compact else 125),
        xref="paper",
        yref="paper",
        x=0,
        y=0 if compact else -0.45,
        yshift=-102 if compact else 0,  # compact: at the foot, under the tick labels and the legend
        showarrow=False,
        align="left",
        xanchor="left",
        yanchor="top",
        font=dict(size=11, color="#555555"),
        name="note",
    )
    if compact:
        for axis in fig.axes("x"):
            axis["tickangle"] = -30
    top1 = ", ".join(f"{_short(r.variant)} {r.card_top1:.2f}%" for r in reports)
    return _finish(
        fig,
        "The variants: card vs measured<br><sup>"
        + _wrap(f"card top-1 ({reports[0].card_tag}): {top1}", 120)
        + "</sup>",
        height=height,
        barmode="group",
        margin=dict(l=60, r=16, t=110, b=110 + 15 * note) if compact else dict(l=60, r=30, t=130, b=190),
        # compact: the legend under the last panel's tick labels, above the note
        legend=dict(orientation="h", y=(15 * note + 12) / height, yanchor="bottom", x=0, yref="container")
        if compact
        else dict(orientation="h", y=1.12, yanchor="bottom", x=1, xanchor="right"),
        compact=compact,
    )


# ------------------------------------------------------------------------------------------------ maps


def _map_grid(
    trace: Trace,
    grid: Sequence[Sequence[str | None]],
    *,
    row_titles: Sequence[str],
    col_titles: Sequence[str],
    method: str,
    sample: int,
    max_side: int,
    title: str,
    cell_px: int = 150,
    compact: bool = False,
) -> go.Figure:
    """Small multiples: grid[r][c] is a trace name (or None for an empty cell), each map on its own scale.
    ``compact``: cells sized to fill a narrow screen's width, the colour bar below."""
    if method not in REDUCTION_LABELS:
        raise ValueError(f"Unknown reduction {method!r}; choose one of {', '.join(REDUCTION_LABELS)}.")
    rows, cols = len(grid), max(len(r) for r in grid)
    margin = dict(l=50, r=16, t=110, b=20) if compact else dict(l=70, r=110, t=110, b=20)
    if compact:  # square cells across the design width
        cell_px = round((COMPACT_DESIGN_WIDTH - margin["l"] - margin["r"]) / cols)
    fig = _subplots(
        rows=rows, cols=cols, column_titles=tuple(col_titles), horizontal_spacing=0.012, vertical_spacing=0.03
    )
    in_h, in_w = trace.input_size
    first = True
    for r, row in enumerate(grid, start=1):
        # A paper annotation, not the y-axis title: the axes of an empty first cell (a stream that does not exist
        # yet) are not drawn, and their title with them.
        fig.annotate(
            text=row_titles[r - 1],
            showarrow=False,
            textangle=-90,
            font=dict(size=11),
            xref="paper",
            yref="paper",
            x=0,
            xshift=-8,
            xanchor="right",
            y=sum(fig.axis("y", r, 1)["domain"]) / 2,
            yanchor="middle",
            name="row title",
        )
        for c, name in enumerate(row, start=1):
            xaxis, yaxis = fig.axis("x", r, c), fig.axis("y", r, c)
            yaxis["scaleanchor"] = yaxis["anchor"]  # square input pixels
            if name is None:
                fig.annotate(
                    text="not yet<br>created",
                    showarrow=False,
                    font=dict(color="#aaaaaa", size=10),
                    xref="paper",
                    yref="paper",
                    x=sum(xaxis["domain"]) / 2,
                    y=sum(yaxis["domain"]) / 2,
                )
                continue
            img = _reduce(trace, name, method, sample, max_side)
            h, w = img.shape[:2]
            shape = trace.shapes.get(name)
            where = f"{name} · {shape[1]} ch · {shape[2]}×{shape[3]}" if shape and len(shape) == 4 else name
            if method == "pca":
                fig.add(
                    dict(
                        type="image",
                        z=(img.clamp(0, 1).numpy() * 255).astype(np.uint8),
                        x0=in_w / w / 2,
                        dx=in_w / w,
                        y0=in_h / h / 2,
                        dy=in_h / h,
                        hovertemplate=f"{where}<br>input px (%{{x:.0f}}, %{{y:.0f}})<br>PC1-3 as RGB %{{z}}"
                        "<extra></extra>",
                    ),
                    r,
                    c,
                )
            else:
                z = img.numpy()
                lo, hi = float(z.min()), float(z.max())
                fig.add(
                    dict(
                        type="heatmap",
                        z=z,
                        x=_pixel_axis(w, in_w),
                        y=_pixel_axis(h, in_h),
                        colorscale=_SEQUENTIAL,
                        zmin=lo,
                        zmax=hi if hi > lo else lo + 1e-12,
                        showscale=first,
                        colorbar=dict(
                            title=dict(text=f"{REDUCTION_LABELS[method]}<br>(each map on<br>its own scale)"),
                            tickvals=[lo, hi],
                            ticktext=["map min", "map max"],
                            len=0.6,
                        ),
                        hovertemplate=f"{where}<br>input px (%{{x:.0f}}, %{{y:.0f}})"
                        f"<br>{REDUCTION_LABELS[method]} %{{z:.5g}}<extra></extra>",
                    ),
                    r,
                    c,
                )
                first = False
    for axis in fig.axes("x"):
        axis.update(showticklabels=False, showgrid=False, zeroline=False, range=[0, in_w])
    for axis in fig.axes("y"):
        axis.update(showticklabels=False, showgrid=False, zeroline=False, range=[in_h, 0])
    fig.font_annotations(10 if compact else 11)
    return _finish(fig, title, height=90 + cell_px * rows, margin=margin, compact=compact)


def lanes_figure(
    trace: Trace, method: str = "l2", *, sample: int = 0, max_side: int = 64, compact: bool = False
) -> go.Figure:
    """The network as parallel lanes: one row per stream (1/4 … 1/32 resolution), one column per
    HighResolutionModule in forward order; each cell is that stream's fused output, reduced over channels.
    Maps larger than ``max_side`` are averaged down for display (at 224 px every stream keeps its resolution).
    ``compact`` (a narrow screen): the lanes run down the page, one column per stream, one row per module."""
    refs = trace.modules
    n = max(r.num_streams for r in refs)
    grid = [[f"{r.name}.fused{k}" if k < r.num_streams else None for r in refs] for k in range(n)]
    widths = {}
    for k in range(n):
        shape = next((trace.shapes[f"{r.name}.fused{k}"] for r in refs if k < r.num_streams), None)
        widths[k] = shape[1] if shape else "?"
    row_titles = [f"stream {k}<br>1/{4 * 2**k} · {widths[k]} ch" for k in range(n)]
    col_titles = [f"stage {r.stage}<br>module {r.index}" for r in refs]
    lanes = "rows = streams (resolution, channels), columns = modules in forward order"
    if compact:
        grid = [list(column) for column in zip(*grid, strict=True)]
        row_titles, col_titles = col_titles, row_titles
        lanes = "columns = streams (resolution, channels), rows = modules in forward order"
    title = (
        f"{_short(trace.variant)} as parallel lanes · {REDUCTION_LABELS.get(method, method)}"
        f"{_weights_note(trace.weights)}<br><sup>{lanes}; each cell is the stream's fused output</sup>"
    )
    return _map_grid(
        trace,
        grid,
        row_titles=row_titles,
        col_titles=col_titles,
        method=method,
        sample=sample,
        max_side=max_side,
        title=title,
        cell_px=150 if len(refs) <= 4 else 120,
        compact=compact,
    )


def module_maps_figure(
    trace: Trace,
    stage: int,
    module: int,
    method: str = "l2",
    *,
    sample: int = 0,
    max_side: int = 56,
    compact: bool = False,
) -> go.Figure:
    """One module, stream by stream: each branch's output, the pre-activation sum and the fused output.
    ``compact``: sized for a narrow screen."""
    ref = trace.module(stage, module if module >= 0 else len([r for r in trace.modules if r.stage == stage]) + module)
    kinds = [("branch", "after its blocks"), ("presum", "Σ of fuse edges"), ("fused", "ReLU(Σ): output")]
    kinds = [(k, d) for k, d in kinds if f"{ref.name}.{k}0" in trace.maps or f"{ref.name}.{k}0" in trace.summaries]
    grid = [[f"{ref.name}.{kind}{i}" for i in range(ref.num_streams)] for kind, _ in kinds]
    title = f"{ref.name}, stream by stream · {REDUCTION_LABELS.get(method, method)}"
    if compact:  # the rows' descriptions in the subtitle: turned beside a narrow row, they run into each other
        title += "<br><sup>" + ", ".join(f"{k}: {d}" for k, d in kinds) + "</sup>"
    return _map_grid(
        trace,
        grid,
        row_titles=[k if compact else f"{k}<br>{d}" for k, d in kinds],
        col_titles=[f"stream {i}{'<br>' if compact else ' '}(1/{4 * 2**i})" for i in range(ref.num_streams)],
        method=method,
        sample=sample,
        max_side=max_side,
        title=title,
        cell_px=190,
        compact=compact,
    )


# ---------------------------------------------------------------------------------------------- fusion


def _measure_scale(measure: str, values: Sequence[np.ndarray]) -> dict:
    if measure not in MEASURES:
        raise ValueError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
    if measure == "energy_share":
        return dict(colorscale="Blues", cmin=0.0, cmax=1.0)
    top = max(1.0, _symmetric(list(values)))
    return dict(colorscale=_DIVERGING, cmin=-top, cmax=top, cmid=0.0)


def _matrix_trace(m: np.ndarray, measure: str, where: str, font_size: int = 11) -> dict:
    n = m.shape[0]
    return dict(
        type="heatmap",
        z=m,
        x=[f"s{j}" for j in range(n)],
        y=[f"s{i}" for i in range(n)],
        coloraxis="coloraxis",
        text=np.vectorize(lambda v: f"{v:.2f}")(m),
        texttemplate="%{text}",
        textfont=dict(size=font_size),
        hovertemplate=f"{where}<br>target stream %{{y}} ← source stream %{{x}}"
        f"<br>{_MEASURE_SHORT[measure]} %{{z:.5f}}<extra></extra>",
    )


def fusion_matrix_figure(
    stats: FusionStats, measure: str = "energy_share", *, sample: int = 0, title: str | None = None
) -> go.Figure:
    """One module's [target × source] fusion matrix as an annotated heatmap."""
    m = _np(stats.matrix(measure, sample))
    fig = _Draft()
    fig.add(_matrix_trace(m, measure, title or "module"))
    fig.axis("x").update(title=dict(text="source stream (sends)"), side="bottom")
    fig.axis("y").update(title=dict(text="target stream (receives)"), autorange="reversed")
    scale = _measure_scale(measure, [m])
    return _finish(
        fig,
        title or f"Fusion: {_MEASURE_SHORT[measure]}",
        height=380,
        coloraxis=dict(**scale, colorbar=dict(title=dict(text=_wrap(MEASURE_LABELS[measure], 22)))),
    )


def fusion_matrices_figure(
    trace: Trace, measure: str = "energy_share", *, sample: int = 0, compact: bool = False
) -> go.Figure:
    """Every module's [target × source] matrix, in forward order, on one colour scale. ``compact``: two
    matrices a row, the colour bar below, for a narrow screen."""
    refs = trace.modules
    cols = min(2 if compact else 4, len(refs))
    rows = math.ceil(len(refs) / cols)
    mats = [_np(trace.fusion(r.stage, r.index).matrix(measure, sample)) for r in refs]
    row_px = 190 if compact else 280
    fig = _subplots(
        rows=rows,
        cols=cols,
        subplot_titles=tuple(r.name for r in refs),
        horizontal_spacing=0.12 if compact else 0.06,
        vertical_spacing=min(0.12, 70 / (row_px * rows)) if rows > 1 else 0.0,
    )
    for k, (ref, m) in enumerate(zip(refs, mats, strict=True)):
        fig.add(_matrix_trace(m, measure, ref.name, 10 if compact else 11), k // cols + 1, k % cols + 1)
    for axis in fig.axes("y"):
        axis["autorange"] = "reversed"
    for k in range(len(refs)):
        if k + cols >= len(refs):  # the lowest matrix of its column
            fig.axis("x", k // cols + 1, k % cols + 1)["title"] = dict(text="source")
    for k in range(len(refs), rows * cols):  # empty cells of the last row: no bare axes
        fig.axis("x", k // cols + 1, k % cols + 1)["visible"] = False
        fig.axis("y", k // cols + 1, k % cols + 1)["visible"] = False
    for r in range(1, rows + 1):
        fig.axis("y", r, 1)["title"] = dict(text="target")
    active = " · ".join(
        f"{r.name}: " + "/".join(f"{v:.0%}" for v in trace.fusion(r.stage, r.index).active_fraction[sample].tolist())
        for r in refs[-1:]
    )
    return _finish(
        fig,
        f"Fusion matrices ({_MEASURE_SHORT[measure]}): what each target stream receives from each source"
        f"{_weights_note(trace.weights)}<br><sup>fraction of pre-activations > 0 per stream, {active}</sup>",
        height=110 + row_px * rows,
        coloraxis=dict(
            **_measure_scale(measure, mats), colorbar=dict(title=dict(text=_wrap(MEASURE_LABELS[measure], 22)))
        ),
        compact=compact,
    )


def sankey_figure(
    flows: Sequence[Flow] | Trace, measure: str = "energy_share", *, title: str | None = None, compact: bool = False
) -> go.Figure:
    """The whole network as a Sankey of stream → stream flows (from :func:`~hrnet_explorer.fusion.fusion_flows`).

    Link width is |weight|; links are coloured by source stream, negative ones (agreement < 0) in
    vermilion. Columns of nodes are positions between steps (modules and stream-creating transitions).
    ``compact``: for a narrow screen (short stream labels, step labels turned when they would touch).
    """
    if not isinstance(flows, Sequence):
        flows = fusion_flows(flows, measure)
    flows = [f for f in flows if abs(f.weight) > 1e-9]
    if not flows:
        raise ValueError("sankey_figure needs at least one non-zero Flow.")
    steps = sorted({f.step for f in flows})
    step_label = {f.step: f.label for f in flows}
    last = max(steps) + 1
    n_streams = max(max(f.source, f.target) for f in flows) + 1
    keys = sorted({(f.step, f.source) for f in flows} | {(f.step + 1, f.target) for f in flows})
    index = {key: k for k, key in enumerate(keys)}

    def where(pos: int) -> str:
        return f"input of {step_label[0]}" if pos == 0 else f"after {step_label[pos - 1]}"

    node = dict(
        label=[f"s{s}" for _, s in keys],
        color=[_stream_color(s) for _, s in keys],
        x=[0.01 + 0.98 * pos / last for pos, _ in keys],
        y=[0.05 + 0.9 * (s + 0.5) / n_streams for _, s in keys],
        customdata=[f"stream {s}, {where(pos)}" for pos, s in keys],
        hovertemplate="%{customdata}<br>node size %{value:.4f}<extra></extra>",
        pad=12,
        thickness=10 if compact else 14,
    )
    link = dict(
        source=[index[(f.step, f.source)] for f in flows],
        target=[index[(f.step + 1, f.target)] for f in flows],
        value=[abs(f.weight) for f in flows],
        color=[_rgba(NEGATIVE_COLOR, 0.65) if f.weight < 0 else _rgba(_stream_color(f.source), 0.35) for f in flows],
        customdata=[[f.label, f.source, f.target, f.weight] for f in flows],
        hovertemplate="%{customdata[0]}: stream %{customdata[1]} → stream %{customdata[2]}"
        f"<br>{_MEASURE_SHORT.get(measure, measure)} %{{customdata[3]:.5f}}<extra></extra>",
    )
    fig = _Draft()
    fig.add(dict(type="sankey", arrangement="fixed", node=node, link=link, valueformat=".4f"))
    turned = compact and len(steps) > 6  # about 40 px a step label on a narrow screen
    for s in steps:
        label = step_label[s]
        short = label.replace("stage", "s").replace(".module", ".m").replace("transition", "t")
        fig.annotate(
            x=0.01 + 0.98 * (s + 0.5) / last,
            y=1.0,
            xref="paper",
            yref="paper",
            text=short,
            showarrow=False,
            yanchor="bottom",
            textangle=-90 if turned else 0,
            font=dict(size=10, color="#555555"),
            hovertext=label,
        )
    for s in range(n_streams):
        fig.annotate(
            x=-0.005,
            y=1 - (0.05 + 0.9 * (s + 0.5) / n_streams),
            xref="paper",
            yref="paper",
            text=f"s{s}" if compact else f"stream {s}",
            showarrow=False,
            xanchor="right",
            font=dict(size=11, color=_stream_color(s)),
        )
    title = title or (
        f"Stream → stream flows through the network ({_MEASURE_SHORT.get(measure, measure)})<br><sup>link width = "
        "|weight| (each module's rows sum to 1); colour = source stream, vermilion = negative;<br>t = a transition "
        "creating a stream from the lowest one (weight 1); s3.m1 = stage 3, module 1</sup>"
    )
    margin = dict(l=30, r=16, t=140 if turned else 110, b=30) if compact else dict(l=80, r=30, t=120, b=30)
    return _finish(fig, title, height=460 + (30 if turned else 0), margin=margin, compact=compact)


def _panel_grid(titles: Sequence[str], compact: bool, title_px: int, wide_spacing: float) -> tuple[_Draft, int, float]:
    """A grid of square image panels, one per title: all in one row, or two a row across a narrow screen
    (``compact``), with ``title_px`` above each row for its titles. → (the draft, its columns, the compact grid's
    height in px: rows × (panel side + title_px); 0 when wide)."""
    cols = min(2, len(titles)) if compact else len(titles)
    rows = math.ceil(len(titles) / cols)
    cell = (COMPACT_DESIGN_WIDTH - 40) / cols if compact else 0  # px: a square panel's side on a narrow screen
    fig = _subplots(
        rows=rows,
        cols=cols,
        subplot_titles=tuple(titles),
        horizontal_spacing=0.04 if compact else wide_spacing,
        vertical_spacing=title_px / ((cell + title_px) * rows) if rows > 1 else 0.0,
    )
    return fig, cols, rows * (cell + title_px) if compact else 0.0


def decomposition_figure(
    dec: Decomposition, method: str = "mean", *, sample: int = 0, max_side: int = 56, compact: bool = False
) -> go.Figure:
    """A fused map taken apart: what each source stream sent, their sum (pre-activation), and ReLU(sum).

    With ``method="mean"`` the channel means are additive, so the source panels sum exactly to the Σ
    panel; all panels share one signed colour scale. ``compact``: two panels a row, for a narrow screen.
    """
    if method not in ("mean", "l2"):
        raise ValueError(f"decomposition_figure shows 'mean' (additive) or 'l2' maps, not {method!r}.")
    parts = [_shrink(spatial_summary(c[sample], method).cpu(), max_side).numpy() for c in dec.contributions]
    presum = _shrink(spatial_summary(dec.presum[sample], method).cpu(), max_side).numpy()
    fused = _shrink(spatial_summary(dec.fused[sample], method).cpu(), max_side).numpy()
    panels = parts + [presum, fused]
    es, ag = dec.energy_share[sample].tolist(), dec.agreement[sample].tolist()
    titles = [f"from stream {j}<br>energy share {es[j]:.1%}<br>agreement {ag[j]:+.3f}" for j in dec.sources]
    titles += ["= Σ (pre-activation)", "ReLU → fused output"]
    fig, cols, grid_px = _panel_grid(titles, compact, title_px=60, wide_spacing=0.015)  # three-line titles
    h, w = presum.shape
    label = REDUCTION_LABELS[method]
    names = [f"edge {j}→{dec.target}" for j in dec.sources] + ["pre-activation Σ", "fused output"]
    for c, (z, name) in enumerate(zip(panels, names, strict=True), start=1):
        fig.add(
            dict(
                type="heatmap",
                z=z,
                coloraxis="coloraxis",
                hovertemplate=f"{dec.module} · {name}<br>cell (%{{x}}, %{{y}}) of {w}×{h}<br>{label} %{{z:.5g}}"
                "<extra></extra>",
            ),
            (c - 1) // cols + 1,
            (c - 1) % cols + 1,
        )
    for c in range(1, len(panels) + 1):
        yaxis = fig.axis("y", (c - 1) // cols + 1, (c - 1) % cols + 1)
        yaxis["scaleanchor"] = yaxis["anchor"]
    for axis in fig.axes("x"):
        axis.update(showticklabels=False, showgrid=False, zeroline=False)
    for axis in fig.axes("y"):
        axis.update(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    fig.font_annotations(11)
    if method == "mean":
        top = _symmetric(panels)
        axis = dict(colorscale=_DIVERGING, cmin=-top, cmax=top, cmid=0.0)
        bar = f"{label}<br>(additive: the source<br>panels sum to Σ)"
    else:
        axis = dict(colorscale=_SEQUENTIAL, cmin=0.0, cmax=float(max(p.max() for p in panels)) or 1.0)
        bar = f"{label}<br>(not additive)"
    return _finish(
        fig,
        f"{dec.module}, stream {dec.target} = ReLU(Σ_j edge j→{dec.target}) · max |reconstruction error| "
        f"{dec.max_error:.1e}",
        height=round(130 + grid_px) if compact else 360,
        coloraxis=dict(**axis, colorbar=dict(title=dict(text=bar))),
        margin=dict(l=20, r=30, t=130, b=20),
        compact=compact,
    )


# ----------------------------------------------------------------------------------------- attribution


def _overlay_traces(uri: str, heat: np.ndarray, coloraxis: str, hover: str) -> list[dict]:
    return [
        dict(type="image", source=uri, hoverinfo="skip"),
        dict(type="heatmap", z=heat, coloraxis=coloraxis, opacity=0.6, hovertemplate=hover),
    ]


def _heat_axis(maps: Sequence[np.ndarray], title: str, outlier_perc: float = OUTLIER_PERC) -> dict:
    """One colour axis for attribution maps: diverging around 0 when any value is negative (the sign matters),
    sequential otherwise; its end is the (100 − outlier_perc)th percentile of |map| (Captum's ``outlier_perc``),
    so that a few extreme pixels saturate instead of leaving the rest blank. Hover keeps the exact values."""
    lo = min(float(m.min()) for m in maps)
    top = display_scale(list(maps), outlier_perc)
    peak = max(float(np.abs(m).max()) for m in maps)
    if outlier_perc > 0 and top < peak:
        title += f"<br><sub>clipped at the {100 - outlier_perc:g}th<br>percentile of |map|<br>(max {peak:.3g})</sub>"
    bar = dict(title=dict(text=title))
    if lo < 0:
        return dict(colorscale=_DIVERGING, cmin=-top, cmax=top, cmid=0.0, colorbar=bar)
    return dict(colorscale=_HEAT, cmin=0.0, cmax=top, colorbar=bar)


def _target_text(result: PixelAttribution | StreamGradCAM | StreamShares | KnockoutResult) -> str:
    """ "class 3 (stripes)": the explained class by index and by the model's name for it (once if they agree)."""
    plain = f"class {result.target}"
    return plain if result.label == plain else f"{plain} ({result.label})"


def attribution_figure(
    image: Image.Image | np.ndarray, attribution: PixelAttribution, *, weights: Any = None, compact: bool = False
) -> go.Figure:
    """A pixel attribution beside the image the network saw (``display_crop``), and overlaid on it. ``weights``
    (the model's WeightsSource) puts the random-weights warning in the title when they are random. ``compact``:
    the two panels stacked, the colour bar below, for a narrow screen."""
    heat = _np(attribution.heatmap)
    if heat.ndim != 2:
        raise ValueError(f"PixelAttribution.heatmap must be [H, W]; got shape {heat.shape}.")
    h, w = heat.shape
    uri = _image_uri(image, (h, w))
    method = METHOD_LABELS.get(attribution.method, attribution.method)
    titles = ["the image the network sees", f"{method} overlaid"]
    if compact:
        panel = COMPACT_DESIGN_WIDTH - 40  # px: each panel the screen's width
        fig = _subplots(rows=2, cols=1, subplot_titles=tuple(titles), vertical_spacing=40 / (2 * panel + 40))
    else:
        fig = _subplots(rows=1, cols=2, subplot_titles=tuple(titles), horizontal_spacing=0.04)
    fig.add(dict(type="image", source=uri, hoverinfo="skip"), 1, 1)
    hover = f"input px (%{{x}}, %{{y}})<br>{method} %{{z:.5g}}<extra></extra>"
    for t in _overlay_traces(uri, heat, "coloraxis", hover):
        fig.add(t, *((2, 1) if compact else (1, 2)))
    for axis in fig.axes("x") + fig.axes("y"):
        axis.update(showticklabels=False, showgrid=False, zeroline=False)
    delta = "" if attribution.delta is None else f" · convergence δ {attribution.delta:.2e}"
    settings = ", ".join(f"{k}={v}" for k, v in (attribution.settings or {}).items() if not isinstance(v, dict))
    sign = "red > 0 > blue" if float(heat.min()) < 0 else "bright = more"
    # The settings wrapped (the subtitle does not wrap by itself and was cut off on the right).
    lines = textwrap.wrap(settings, 90) or [""]
    if compact:
        fig.font_annotations(13)
    return _finish(
        fig,
        f"{method} for {_target_text(attribution)}{delta}{_weights_note(weights)}"
        + "".join(f"<br><sup>{line}</sup>" for line in lines),
        height=(120 + 2 * panel + 40 if compact else 420) + 20 * (len(lines) - 1),
        coloraxis=_heat_axis([heat], f"attribution<br>({sign})"),
        # 20 px a settings line (plotly.js spaces <sup> lines as full ones) and 10 more: the subplot titles
        margin=dict(l=20 if compact else 60, r=30, t=100 + 20 * (len(lines) - 1), b=30 if compact else 50),
        compact=compact,
    )


def gradcam_figure(
    image: Image.Image | np.ndarray,
    cam: StreamGradCAM,
    *,
    shared_scale: bool = False,
    weights: Any = None,
    compact: bool = False,
) -> go.Figure:
    """Grad-CAM of every stream of one module, overlaid on the input. By default each stream on its own colour
    scale (the coarse streams' maps are often 10-100× larger, which leaves the fine ones dark on a shared scale);
    ``shared_scale=True`` puts all on one scale, to compare magnitudes. Each scale is clipped at the 98th
    percentile of |map|; the subplot titles give each stream's scale end, hover the exact values. ``compact``: two
    streams a row, the colour bar below, for a narrow screen."""
    maps = [_np(m) for m in cam.maps]
    if not maps:
        raise ValueError("StreamGradCAM has no maps.")
    h, w = maps[0].shape
    uri = _image_uri(image, (h, w))
    raw = [tuple(r.shape[-2:]) for r in cam.raw] if getattr(cam, "raw", None) else [None] * len(maps)
    titles = [f"stream {k} (1/{4 * 2**k}" + (f", {r[0]}×{r[1]})" if r else ")") for k, r in enumerate(raw)]
    if not shared_scale:
        titles = [f"{t}<br><sub>scale 0 … {display_scale(m):.3g}</sub>" for t, m in zip(titles, maps, strict=True)]
    fig, cols, grid_px = _panel_grid(titles, compact, title_px=50, wide_spacing=0.02)  # two-line titles
    axes = {}
    for k, m in enumerate(maps, start=1):
        hover = f"stream {k - 1}<br>input px (%{{x}}, %{{y}})<br>Grad-CAM %{{z:.5g}}<extra></extra>"
        name = "coloraxis" if shared_scale or k == 1 else f"coloraxis{k}"
        for t in _overlay_traces(uri, m, name, hover):
            fig.add(t, (k - 1) // cols + 1, (k - 1) % cols + 1)
        if not shared_scale:
            axis = _heat_axis([m], "Grad-CAM<br>(each stream<br>on its own scale)")
            axis["colorbar"].update(tickvals=[axis["cmin"], axis["cmax"]], ticktext=["0", "its end"])
            axes[name] = axis | dict(showscale=k == 1)
    if shared_scale:
        axes["coloraxis"] = _heat_axis(maps, "Grad-CAM<br>(one scale<br>for all streams)")
    for axis in fig.axes("x") + fig.axes("y"):
        axis.update(showticklabels=False, showgrid=False, zeroline=False)
    which = "one shared colour scale" if shared_scale else "each stream on its own colour scale"
    if compact:
        fig.font_annotations(12)
    return _finish(
        fig,
        f"Grad-CAM per stream · stage{cam.stage}.module{cam.module} · {_target_text(cam)}{_weights_note(weights)}"
        f"<br><sup>{which}</sup>",
        height=round(140 + grid_px) if compact else 350,
        margin=dict(l=20, r=30, t=120, b=20),
        compact=compact,
        **axes,
    )


def stream_shares_figure(shares: StreamShares, *, weights: Any = None, compact: bool = False) -> go.Figure:
    """How much of the target logit each final stream accounts for (Integrated Gradients over streams).
    ``compact``: for a narrow screen."""
    values = _np(shares.shares).reshape(-1)
    n = values.size
    total = float(values.sum())
    fig = _Draft()
    fig.add(
        dict(
            type="bar",
            x=[f"stream {k}{'<br>' if compact else ' '}(1/{4 * 2**k})" for k in range(n)],
            y=values,
            marker=dict(color=[_stream_color(k) for k in range(n)]),
            text=[f"{v:.3g}" for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}<br>share %{y:.5f}<extra></extra>",
        )
    )
    fig.rule("y", 0, color="#444444", width=1)
    fig.axis("x")["title"] = dict(text="stream (resolution)")
    fig.axis("y").update(title=dict(text="share of the logit"), range=_padded_range([float(v) for v in values]))
    delta = getattr(shares, "delta", None)
    return _finish(
        fig,
        f"Stream shares of the logit of {_target_text(shares)}{_weights_note(weights)}"
        f"<br><sup>logit {shares.logit:.4f} · baseline "
        f"({getattr(shares, 'n_steps', '?')} steps) {shares.baseline_logit:.4f} · Σ shares {total:.4f}"
        + (f" · completeness δ {delta:.2e}" if delta is not None else "")
        + "</sup>",
        height=380,
        compact=compact,
    )


def knockout_figure(results: Sequence[KnockoutResult], *, weights: Any = None, compact: bool = False) -> go.Figure:
    """The change in the target's logit and probability when a stream or an edge is silenced. ``compact``: the
    two panels stacked, for a narrow screen."""
    results = list(results)
    if not results:
        raise ValueError("knockout_figure needs at least one KnockoutResult.")
    labels = [_wrap(r.description, 18) if compact else r.description for r in results][::-1]
    rows = results[::-1]
    custom = [
        [
            r.logit_before,
            r.logit_after,
            r.prob_before,
            r.prob_after,
            (f"{r.top_after[0].label} ({r.top_after[0].probability:.1%})" if r.top_after else "—"),
        ]
        for r in rows
    ]
    panel = 60 + 40 * len(results)  # px of one compact panel
    fig = _subplots(
        rows=2 if compact else 1,
        cols=1 if compact else 2,
        shared_yaxes=not compact,
        horizontal_spacing=0.03,
        vertical_spacing=110 / (2 * panel + 110) if compact else 0.0,  # the upper axis title, the lower panel's title
        subplot_titles=(
            "Δ logit (after − before)",
            "Δ probability (pp)" if compact else "Δ probability (percentage points)",
        ),
    )
    hover = (
        "<b>%{y}</b><br>logit %{customdata[0]:.4f} → %{customdata[1]:.4f}<br>probability %{customdata[2]:.4%} → "
        "%{customdata[3]:.4%}<br>top-1 after: %{customdata[4]}<extra></extra>"
    )
    for col, values in ((1, [r.logit_delta for r in rows]), (2, [100 * r.prob_delta for r in rows])):
        at = dict(row=col, col=1) if compact else dict(row=1, col=col)
        fig.add(
            dict(
                type="bar",
                x=values,
                y=labels,
                orientation="h",
                customdata=custom,
                hovertemplate=hover,
                showlegend=False,
                marker=dict(color=[NEGATIVE_COLOR if v < 0 else POSITIVE_COLOR for v in values]),
                text=[f"{v:+.3g}" for v in values],
                textposition="outside",
                cliponaxis=False,
            ),
            **at,
        )
        fig.axis("x", **at)["range"] = _padded_range(values, 0.45)
        fig.rule("x", 0, **at, color="#444444", width=1)
    fig.axis("x", 1, 1)["title"] = dict(text="logit change")
    fig.axis("x", *((2, 1) if compact else (1, 2)))["title"] = dict(text="probability change (pp)")
    for axis in fig.axes("y"):
        axis["automargin"] = True
    if not compact:
        fig.axis("y", 1, 1)["title"] = dict(text="knocked out")
    return _finish(
        fig,
        f"Knockouts: the change in {_target_text(results[0])}{_weights_note(weights)}"
        "<br><sup>vermilion = the class loses evidence, blue = it gains</sup>",
        height=2 * panel + 270 if compact else 160 + 40 * len(results),
        compact=compact,
    )


def _method_line(method: str) -> dict:
    color = METHOD_COLORS.get(method, "#444444")
    return dict(color=color, width=2, dash="dash" if method == "random" else "solid")


def faithfulness_figure(results: Sequence[Faithfulness | MethodScores], *, compact: bool = False) -> go.Figure:
    """Deletion and insertion curves of one image, one line per method: the target's probability as the most
    relevant pixels are removed (left; lower area is better) or put back into the baseline (right; higher is
    better). The legend gives each curve's normalised AUC (see :mod:`hrnet_explorer.attribution.faithfulness`).
    ``compact``: the two panels stacked, for a narrow screen."""
    curves = [getattr(r, "faithfulness", r) for r in results]
    if not curves:
        raise ValueError("faithfulness_figure needs at least one result.")
    fig = _subplots(
        rows=2 if compact else 1,
        cols=1 if compact else 2,
        shared_yaxes=not compact,
        horizontal_spacing=0.04,
        vertical_spacing=0.2 if compact else 0.0,
        subplot_titles=("Deletion: most relevant pixels removed first", "Insertion: most relevant put back first")
        if not compact
        else ("Deletion: most relevant removed first", "Insertion: most relevant put back first"),
    )

    def at(col: int) -> dict:
        return dict(row=col, col=1) if compact else dict(row=1, col=col)

    for f in curves:
        name = METHOD_LABELS.get(f.method, f.method)
        for col, curve in ((1, f.deletion), (2, f.insertion)):
            fig.add(
                dict(
                    type="scatter",
                    x=[float(v) for v in curve.fractions],  # lists: readable JSON for API clients
                    y=[float(v) for v in curve.probabilities],
                    mode="lines+markers",
                    marker=dict(size=4),
                    line=_method_line(f.method),
                    name=f"{name} · del {f.deletion.auc:.3f} · ins {f.insertion.auc:.3f}",
                    legendgroup=f.method,
                    showlegend=col == 1,
                    hovertemplate=f"<b>{name}</b><br>{curve.kind}: %{{x:.0%}} of the pixels<br>"
                    "p(target) %{y:.4f}<extra></extra>",
                ),
                **at(col),
            )
    first = curves[0]
    fig.axis("x", **at(1)).update(title=dict(text="fraction of pixels removed"), tickformat=".0%")
    fig.axis("x", **at(2)).update(title=dict(text="fraction of pixels inserted"), tickformat=".0%")
    fig.axis("y", 1, 1)["title"] = dict(text="probability of the target")
    if compact:
        for axis in fig.axes("y"):
            axis["title"] = dict(text="p(target)")
        fig.font_annotations(13)
    legend = 30 * len(curves)  # px: one entry a line
    return _finish(
        fig,
        f"Deletion and insertion for {_target_text(first)} · baseline {first.baseline}, {first.steps} steps"
        "<br><sup>legend: AUC of p / p(input) · deletion: lower is better · insertion: higher is better</sup>",
        height=680 + legend if compact else 440,
        legend=dict(orientation="h", yanchor="bottom", y=0, yref="container", x=0)
        if compact
        else dict(orientation="h", yanchor="top", y=-0.18, x=0),
        margin=dict(l=60, r=16, t=90, b=70 + legend) if compact else dict(l=60, r=30, t=90, b=130),
        compact=compact,
    )


def randomisation_figure(results: Sequence[RandomisationTest | MethodScores], *, compact: bool = False) -> go.Figure:
    """The cascading randomisation test: each method's rank similarity to its own original map as the model is
    re-initialised from the head down. A method that stays near 1 does not depend on the weights. ``compact``: for
    a narrow screen (the legend below)."""
    tests = [getattr(r, "randomisation", r) for r in results]
    tests = [t for t in tests if t is not None]
    if not tests:
        raise ValueError("randomisation_figure needs at least one randomisation test.")
    fig = _Draft()
    for t in tests:
        name = METHOD_LABELS.get(t.method, t.method)
        steps = ["original", *(f"+ {layer}" if k else layer for k, layer in enumerate(t.layers))]
        values = [1.0, *(np.nan if v is None else v for v in t.similarity)]
        fig.add(
            dict(
                type="scatter",
                x=steps,
                y=values,
                mode="lines+markers",
                line=_method_line(t.method),
                name=f"{name} · {'—' if t.final_similarity is None else f'{t.final_similarity:.2f}'} when all random",
                hovertemplate=f"<b>{name}</b><br>randomised up to %{{x}}<br>Spearman %{{y:.3f}}<extra></extra>",
            )
        )
    fig.rule("y", 0, color="#444444", width=1)
    fig.axis("x")["title"] = dict(
        text="layers re-initialised (head first)" if compact else "layer groups re-initialised (cumulative, head first)"
    )
    fig.axis("y").update(title=dict(text="Spearman(|map|, |original map|)"), range=[-0.2, 1.05])
    if compact:
        fig.axis("x")["tickangle"] = -90  # turned less, the labels' boxes overlap on a narrow screen
    legend = 30 * len(tests) if len(tests) > 1 else 0  # plotly shows no legend for one line
    return _finish(
        fig,
        f"Randomisation test for {_target_text(tests[0])}<br><sup>a faithful map falls towards 0 as the weights "
        "are randomised; one that stays high ignores the model</sup>",
        height=420 + legend if compact else 400,
        compact=compact,
        **(
            dict(
                legend=dict(orientation="h", yanchor="bottom", y=0, yref="container", x=0),
                margin=dict(l=60, r=16, t=90, b=110 + legend),
            )
            if compact
            else {}
        ),
    )


def compare_figure(
    predictions: Sequence[Prediction], latencies_ms: Mapping[str, float] | None = None, *, compact: bool = False
) -> go.Figure:
    """Two or more models side by side on one image: each one's top-k, on a shared probability axis.

    ``latencies_ms`` maps a model's name (``Prediction.model_name``: the variant, or e.g. "lab") to milliseconds.
    ``compact``: the models one under another, for a narrow screen.
    """
    predictions = list(predictions)
    if not predictions:
        raise ValueError("compare_figure needs at least one Prediction.")
    titles = []
    for p in predictions:
        ms = (latencies_ms or {}).get(p.model_name)
        titles.append(
            f"{_short(p.model_name)}"
            + (f" · {ms:.0f} ms" if ms is not None else "")
            + (" · RANDOM" if p.weights.is_random else "")
        )
    n, k = len(predictions), len(predictions[0].top)
    panel = 40 + 30 * k  # px of one compact panel
    if compact:
        fig = _subplots(
            rows=n, cols=1, subplot_titles=tuple(titles), shared_xaxes=True, vertical_spacing=40 / (n * panel + 40)
        )
    else:
        fig = _subplots(rows=1, cols=n, subplot_titles=tuple(titles), horizontal_spacing=0.12)
    for c, p in enumerate(predictions, start=1):
        top = p.top[::-1]
        fig.add(
            dict(
                type="bar",
                x=[s.probability for s in top],
                y=[f"{_clip_label(s.label, 24)} ({s.index})" for s in top],
                orientation="h",
                marker=dict(color=_stream_color(c - 1)),
                showlegend=False,
                text=[f"{s.probability:.1%}" for s in top],
                textposition="auto",
                customdata=[[s.logit, s.label] for s in top],
                hovertemplate=f"{p.model_name}<br><b>%{{customdata[1]}}</b><br>probability %{{x:.4%}}"
                "<br>logit %{customdata[0]:.4f}<extra></extra>",
            ),
            *((c, 1) if compact else (1, c)),
        )
    top = max(s.probability for p in predictions for s in p.top)
    for axis in fig.axes("x"):
        axis.update(tickformat=".0%", range=[0, max(top, 1e-3) * 1.05])
    for axis in [fig.axis("x", n, 1)] if compact else fig.axes("x"):
        axis["title"] = dict(text="probability")
    for axis in fig.axes("y"):
        axis["automargin"] = True
    if compact:
        fig.font_annotations(13)
    random = any(p.weights.is_random for p in predictions)
    return _finish(
        fig,
        "The models on one image: top-" + str(k) + (" · <b>RANDOM weights: meaningless</b>" if random else ""),
        height=150 + n * panel if compact else 140 + 40 * k,
        compact=compact,
    )

"""Figures of attributions: a pixel map over the image, Grad-CAM per stream, the streams' shares of the
logit, knockouts.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from ..display import METHOD_LABELS, NEGATIVE_COLOR, POSITIVE_COLOR, stream_color
from ..images import OUTLIER_PERC, display_scale
from ._common import DIVERGING, HEAT, as_numpy, image_uri, padded_range, target_text, weights_note
from ._draft import COMPACT_DESIGN_WIDTH, Draft, finish, panel_grid, subplots, wrap

if TYPE_CHECKING:  # the attribution dataclasses are only read, by attribute
    from PIL import Image

    from ..attribution import KnockoutResult, PixelAttribution, StreamGradCAM, StreamShares

__all__ = ["attribution_figure", "gradcam_figure", "stream_shares_figure", "knockout_figure"]


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
        return dict(colorscale=DIVERGING, cmin=-top, cmax=top, cmid=0.0, colorbar=bar)
    return dict(colorscale=HEAT, cmin=0.0, cmax=top, colorbar=bar)


def attribution_figure(
    image: Image.Image | np.ndarray, attribution: PixelAttribution, *, weights: Any = None, compact: bool = False
) -> go.Figure:
    """A pixel attribution beside the image the network saw (``display_crop``), and overlaid on it. ``weights``
    (the model's WeightsSource) puts the random-weights warning in the title when they are random. ``compact``:
    the two panels stacked, the colour bar below, for a narrow screen."""
    heat = as_numpy(attribution.heatmap)
    if heat.ndim != 2:
        raise ValueError(f"PixelAttribution.heatmap must be [H, W]; got shape {heat.shape}.")
    h, w = heat.shape
    uri = image_uri(image, (h, w))
    method = METHOD_LABELS.get(attribution.method, attribution.method)
    titles = ["the image the network sees", f"{method} overlaid"]
    if compact:
        panel = COMPACT_DESIGN_WIDTH - 40  # px: each panel the screen's width
        fig = subplots(rows=2, cols=1, subplot_titles=tuple(titles), vertical_spacing=40 / (2 * panel + 40))
    else:
        fig = subplots(rows=1, cols=2, subplot_titles=tuple(titles), horizontal_spacing=0.04)
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
    return finish(
        fig,
        f"{method} for {target_text(attribution)}{delta}{weights_note(weights)}"
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
    percentile of |map|; the subplot titles give each stream's scale end (shared: its maximum; "all zero" for a
    stream whose map is 0 everywhere), hover the exact values. ``compact``: two streams a row, the colour bar
    below, for a narrow screen."""
    maps = [as_numpy(m) for m in cam.maps]
    if not maps:
        raise ValueError("StreamGradCAM has no maps.")
    h, w = maps[0].shape
    uri = image_uri(image, (h, w))
    raw = [tuple(r.shape[-2:]) for r in cam.raw] if getattr(cam, "raw", None) else [None] * len(maps)
    titles = [f"stream {k} (1/{4 * 2**k}" + (f", {r[0]}×{r[1]})" if r else ")") for k, r in enumerate(raw)]

    def end(m: np.ndarray) -> str:
        """Each panel's own end: a map that is 0 everywhere says so (its colour axis would read 0 … 1, like a
        blank map of a real scale); on the shared scale, the stream's own maximum."""
        if not np.any(m):
            return "all zero"
        return f"max {float(np.abs(m).max()):.3g}" if shared_scale else f"scale 0 … {display_scale(m):.3g}"

    titles = [f"{t}<br><sub>{end(m)}</sub>" for t, m in zip(titles, maps, strict=True)]
    fig, cols, grid_px = panel_grid(titles, compact, title_px=50, wide_spacing=0.02)  # two-line titles
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
    return finish(
        fig,
        f"Grad-CAM per stream · stage{cam.stage}.module{cam.module} · {target_text(cam)}{weights_note(weights)}"
        f"<br><sup>{which}</sup>",
        height=round(140 + grid_px) if compact else 350,
        margin=dict(l=20, r=30, t=120, b=20),
        compact=compact,
        **axes,
    )


def stream_shares_figure(shares: StreamShares, *, weights: Any = None, compact: bool = False) -> go.Figure:
    """How much of the target logit each final stream accounts for (Integrated Gradients over streams).
    ``compact``: for a narrow screen."""
    values = as_numpy(shares.shares).reshape(-1)
    n = values.size
    total = float(values.sum())
    fig = Draft()
    fig.add(
        dict(
            type="bar",
            x=[f"stream {k}{'<br>' if compact else ' '}(1/{4 * 2**k})" for k in range(n)],
            y=values,
            marker=dict(color=[stream_color(k) for k in range(n)]),
            text=[f"{v:.3g}" for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}<br>share %{y:.5f}<extra></extra>",
        )
    )
    fig.rule("y", 0, color="#444444", width=1)
    fig.axis("x")["title"] = dict(text="stream (resolution)")
    fig.axis("y").update(title=dict(text="share of the logit"), range=padded_range([float(v) for v in values]))
    delta = getattr(shares, "delta", None)
    return finish(
        fig,
        f"Stream shares of the logit of {target_text(shares)}{weights_note(weights)}"
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
    labels = [wrap(r.description, 18) if compact else r.description for r in results][::-1]
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
    fig = subplots(
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
        fig.axis("x", **at)["range"] = padded_range(values, 0.45)
        fig.rule("x", 0, **at, color="#444444", width=1)
    fig.axis("x", 1, 1)["title"] = dict(text="logit change")
    fig.axis("x", *((2, 1) if compact else (1, 2)))["title"] = dict(text="probability change (pp)")
    for axis in fig.axes("y"):
        axis["automargin"] = True
    if not compact:
        fig.axis("y", 1, 1)["title"] = dict(text="knocked out")
    return finish(
        fig,
        f"Knockouts: the change in {target_text(results[0])}{weights_note(weights)}"
        "<br><sup>vermilion = the class loses evidence, blue = it gains</sup>",
        height=2 * panel + 270 if compact else 160 + 40 * len(results),
        compact=compact,
    )

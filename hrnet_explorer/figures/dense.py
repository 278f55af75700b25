"""Plotly figures of dense results: a label map over its image, per-stream maps, knockout drops (pure functions).

Stream colours and names come from :mod:`hrnet_explorer.display`, as in every other figure of the explorer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..dense.view import PixelsView
from ..display import stream_color

__all__ = ["knockout_figure", "mask_figure", "palette_image", "pixels_figures", "stream_maps_figure"]


def palette_image(labels: torch.Tensor, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """[H, W, 3] uint8: each pixel the palette colour of its label."""
    table = np.asarray(palette, dtype=np.uint8)
    return table[torch.as_tensor(labels).cpu().numpy().astype(np.int64)]


def _rgb(image) -> np.ndarray:
    """A [3, H, W] float tensor in [0, 1], an [H, W, 3] uint8 array or a PIL image → [H, W, 3] uint8."""
    if isinstance(image, torch.Tensor):
        return (image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.uint8)


def mask_figure(
    image,
    labels: torch.Tensor,
    palette: Sequence[Sequence[int]],
    class_names: Sequence[str],
    *,
    alpha: float = 0.55,
    title: str = "",
    reference: torch.Tensor | None = None,
) -> go.Figure:
    """The image, and the label map blended over it in the palette's colours (with a legend of the classes
    present); with ``reference``, a third panel shows the reference label map the same way."""
    rgb = _rgb(image).astype(np.float32)
    panels = [("image", rgb), ("predicted", (1 - alpha) * rgb + alpha * palette_image(labels, palette))]
    if reference is not None:
        panels.append(("reference", (1 - alpha) * rgb + alpha * palette_image(reference, palette)))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[name for name, _ in panels], horizontal_spacing=0.02)
    for col, (_, z) in enumerate(panels, start=1):
        fig.add_trace(go.Image(z=z.round().clip(0, 255).astype(np.uint8), hoverinfo="skip"), row=1, col=col)
    present = sorted({int(v) for v in torch.as_tensor(labels).unique()})
    for c in present:  # legend entries: one invisible marker per class shown
        r, g, b = palette[c]
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="markers", name=class_names[c], marker={"color": f"rgb({r},{g},{b})"})
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=360, margin={"l": 10, "r": 10, "t": 60, "b": 10}, template="plotly_white")
    return fig


def stream_maps_figure(
    maps: torch.Tensor, titles: Sequence[str], *, title: str = "", symmetric: bool = True
) -> go.Figure:
    """One heatmap per map ([N, H, W]), on one shared colour scale (diverging around 0 when ``symmetric``)."""
    maps = torch.as_tensor(maps).detach().float().cpu()
    end = float(maps.abs().max()) or 1.0
    low, scale = (-end, "RdBu_r") if symmetric else (float(maps.min()), "Viridis")
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=list(titles), horizontal_spacing=0.02)
    for col, m in enumerate(maps, start=1):
        fig.add_trace(
            go.Heatmap(
                z=m.flip(0).numpy(),
                zmin=low,
                zmax=end,
                colorscale=scale,
                showscale=col == len(maps),
                hovertemplate="y %{y}, x %{x}: %{z:.3g}<extra></extra>",
            ),  # fmt: skip
            row=1,
            col=col,
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x")
    fig.update_layout(title=title, height=300, margin={"l": 10, "r": 10, "t": 60, "b": 10}, template="plotly_white")
    return fig


def knockout_figure(rows: Sequence[dict], metrics: Sequence[str], *, title: str = "") -> go.Figure:
    """Grouped bars: for each knockout row (``stream``, ``at``, a ``<metric>_drop`` per metric), each metric's drop."""
    fig = go.Figure()
    names = [f"stream {r['stream']} · {r['at']}" for r in rows]
    for i, metric in enumerate(metrics):
        fig.add_trace(
            go.Bar(
                x=names,
                y=[r[f"{metric}_drop"] for r in rows],
                name=metric.replace("_", " "),
                marker={"color": stream_color(i)},  # the streams' colour-blind-safe palette, one colour a metric
            )
        )
    fig.update_layout(
        title=title, barmode="group", yaxis_title="drop (intact − knocked out)", height=380, template="plotly_white"
    )
    return fig


def pixels_figures(view: PixelsView, name: str) -> tuple[go.Figure, go.Figure]:
    """The Pixels view's two figures (the app's tab and the dense report): model ``name``'s mask over the image, and
    each pixel's score for the explained class split by stream."""
    split = view.split
    mask = mask_figure(
        view.shown, view.labels, view.segmentation.palette, view.segmentation.class_names,
        title=f"{name}: every pixel's class",
    )  # fmt: skip
    streams = [f"stream {k}" for k in range(len(split.parts) - 1)]
    maps = stream_maps_figure(
        split.maps, [*streams, "bias"], title=f"Each pixel's score for {split.label!r}, split by stream (exact)"
    )
    return mask, maps

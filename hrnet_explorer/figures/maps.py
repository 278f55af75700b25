"""Figures of a trace's maps: the network as parallel lanes, one module stream by stream.

Maps are shown in *input-pixel coordinates* (stream k's pixel covers 4·2^k input pixels), so the lanes of different
resolutions line up; large maps are averaged down to ``max_side`` pixels for display only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import torch

from ..display import REDUCTION_LABELS
from ..fusion import spatial_summary
from ._common import SEQUENTIAL, short_name, shrink, weights_note
from ._draft import COMPACT_DESIGN_WIDTH, finish, subplots

if TYPE_CHECKING:
    from ..trace import Trace

__all__ = ["lanes_figure", "module_maps_figure"]


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
    return shrink(out.cpu(), max_side)


def _pixel_axis(n: int, extent: int) -> np.ndarray:
    """Centres of ``n`` cells spanning ``extent`` input pixels."""
    return (np.arange(n) + 0.5) * (extent / n)


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
    fig = subplots(
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
                        colorscale=SEQUENTIAL,
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
    return finish(fig, title, height=90 + cell_px * rows, margin=margin, compact=compact)


def lanes_figure(
    trace: Trace,
    method: str = "l2",
    *,
    sample: int = 0,
    max_side: int = 64,
    compact: bool = False,
    name: str | None = None,
    weights: Any = None,
) -> go.Figure:
    """The network as parallel lanes: one row per stream (1/4 … 1/32 resolution), one column per
    HighResolutionModule in forward order; each cell is that stream's fused output, reduced over channels.
    Maps larger than ``max_side`` are averaged down for display (at 224 px every stream keeps its resolution).
    ``compact`` (a narrow screen): the lanes run down the page, one column per stream, one row per module.
    ``name``: the model's name in the title (a LoadedModel's ``name``: "lab" for the lab model, whose trace's
    variant is its architecture); default the trace's variant. ``weights``: the random-weights warning, as
    the other figures (default the trace's)."""
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
        f"{short_name(name or trace.variant)} as parallel lanes · {REDUCTION_LABELS.get(method, method)}"
        f"{weights_note(trace.weights if weights is None else weights)}"
        f"<br><sup>{lanes}; each cell is the stream's fused output</sup>"
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
    weights: Any = None,
) -> go.Figure:
    """One module, stream by stream: each branch's output, the pre-activation sum and the fused output.
    ``compact``: sized for a narrow screen. ``weights`` (the model's WeightsSource; default the trace's) puts the
    random-weights warning in the title when they are random."""
    ref = trace.module(stage, module if module >= 0 else len([r for r in trace.modules if r.stage == stage]) + module)
    kinds = [("branch", "after its blocks"), ("presum", "Σ of fuse edges"), ("fused", "ReLU(Σ): output")]
    kinds = [(k, d) for k, d in kinds if f"{ref.name}.{k}0" in trace.maps or f"{ref.name}.{k}0" in trace.summaries]
    grid = [[f"{ref.name}.{kind}{i}" for i in range(ref.num_streams)] for kind, _ in kinds]
    title = f"{ref.name}, stream by stream · {REDUCTION_LABELS.get(method, method)}"
    title += weights_note(trace.weights if weights is None else weights)
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

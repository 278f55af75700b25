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
import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
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


def _finish(fig: go.Figure, title: str, height: int | None = None, **layout: Any) -> go.Figure:
    layout.setdefault("margin", dict(l=60, r=30, t=90, b=50))
    if height:
        layout["height"] = height
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=15)),
        template="plotly_white",
        hoverlabel=dict(namelength=-1),
        **layout,
    )
    return fig


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


def topk_figure(prediction: Prediction | Sequence[ClassScore], *, title: str | None = None) -> go.Figure:
    """Horizontal bars of the top-k classes (best on top): softmax probability, with logit and index on hover."""
    scores = list(getattr(prediction, "top", prediction))
    if not scores:
        raise ValueError("topk_figure needs at least one ClassScore.")
    scores = scores[::-1]
    fig = go.Figure(
        go.Bar(
            x=[s.probability for s in scores],
            y=[f"{_clip_label(s.label, 40)} ({s.index})" for s in scores],
            orientation="h",
            marker_color=POSITIVE_COLOR,
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
    fig.update_xaxes(title_text="softmax probability", tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(title_text="class (index)", automargin=True)
    return _finish(fig, title, height=120 + 36 * len(scores))


def variants_figure(
    reports: Sequence[CostReport], latencies_ms: Mapping[str, float] | None = None, *, device: str | None = None
) -> go.Figure:
    """The variants compared, card beside measurement: parameters, MACs vs the card's "FLOPs", latency.

    ``latencies_ms`` maps variant name → measured milliseconds of one forward (optional; ``device`` says where).
    """
    if not reports:
        raise ValueError("variants_figure needs at least one CostReport.")
    names = [_short(r.variant) for r in reports]
    lat = [latencies_ms.get(r.variant) for r in reports] if latencies_ms else None
    cols = 3 if lat and any(v is not None for v in lat) else 2
    titles = ["Parameters (millions)", "Compute per 224 px image (billions)", "Latency of one traced forward (ms)"][
        :cols
    ]
    fig = make_subplots(rows=1, cols=cols, subplot_titles=titles, horizontal_spacing=0.08)
    fig.add_trace(
        go.Bar(
            name="card",
            x=names,
            y=[r.card_params_m for r in reports],
            marker_color="#999999",
            legendgroup="card",
            hovertemplate="%{x}<br>card: %{y:.2f} M parameters<extra></extra>",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Bar(
            name="measured",
            x=names,
            y=[r.params / 1e6 for r in reports],
            marker_color=POSITIVE_COLOR,
            legendgroup="measured",
            customdata=[r.params for r in reports],
            hovertemplate="%{x}<br>measured: %{customdata:,} parameters<extra></extra>",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Bar(
            name="card 'FLOPs'",
            x=names,
            y=[r.card_flops / 1e9 for r in reports],
            marker_color="#999999",
            legendgroup="card",
            showlegend=False,
            customdata=[[r.card_flops, r.card_flops_over_macs] for r in reports],
            hovertemplate="%{x}<br>card 'FLOPs': %{customdata[0]:,}<br>= %{customdata[1]:.3f} × measured MACs"
            "<extra></extra>",
        ),
        1,
        2,
    )
    fig.add_trace(
        go.Bar(
            name="measured MACs",
            x=names,
            y=[r.macs / 1e9 for r in reports],
            marker_color=POSITIVE_COLOR,
            legendgroup="measured",
            showlegend=False,
            customdata=[r.macs for r in reports],
            hovertemplate="%{x}<br>measured (fvcore): %{customdata:,} MACs<extra></extra>",
        ),
        1,
        2,
    )
    if cols == 3:
        fig.add_trace(
            go.Bar(
                name="measured latency",
                x=names,
                y=lat,
                marker_color=POSITIVE_COLOR,
                legendgroup="measured",
                showlegend=False,
                text=[f"{v:.0f}" if v is not None else "" for v in lat],
                textposition="auto",
                hovertemplate="%{x}<br>%{y:.1f} ms" + (f" on {device}" if device else "") + "<extra></extra>",
            ),
            1,
            3,
        )
        fig.update_yaxes(title_text="ms" + (f" ({device})" if device else ""), row=1, col=3)
    fig.update_yaxes(title_text="M parameters", row=1, col=1)
    fig.update_yaxes(title_text="G (card: 'FLOPs'; measured: MACs)", row=1, col=2)
    fig.update_xaxes(title_text="variant")
    fig.add_annotation(
        text=_wrap(CARD_FLOPS_EXPLANATION, 150),
        xref="paper",
        yref="paper",
        x=0,
        y=-0.45,
        showarrow=False,
        align="left",
        xanchor="left",
        yanchor="top",
        font=dict(size=11, color="#555555"),
    )
    top1 = ", ".join(f"{_short(r.variant)} {r.card_top1:.2f}%" for r in reports)
    return _finish(
        fig,
        "The variants: card vs measured<br><sup>"
        + _wrap(f"card top-1 ({reports[0].card_tag}): {top1}", 120)
        + "</sup>",
        height=520,
        barmode="group",
        margin=dict(l=60, r=30, t=130, b=190),
        legend=dict(orientation="h", y=1.12, yanchor="bottom", x=1, xanchor="right"),
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
) -> go.Figure:
    """Small multiples: grid[r][c] is a trace name (or None for an empty cell), each map on its own scale."""
    if method not in REDUCTION_LABELS:
        raise ValueError(f"Unknown reduction {method!r}; choose one of {', '.join(REDUCTION_LABELS)}.")
    rows, cols = len(grid), max(len(r) for r in grid)
    fig = make_subplots(
        rows=rows, cols=cols, column_titles=list(col_titles), horizontal_spacing=0.012, vertical_spacing=0.03
    )
    in_h, in_w = trace.input_size
    first = True
    for r, row in enumerate(grid, start=1):
        # A paper annotation, not the y-axis title: the axes of an empty first cell (a stream that does not exist
        # yet) are not drawn, and their title with them.
        fig.add_annotation(
            text=row_titles[r - 1],
            showarrow=False,
            textangle=-90,
            font=dict(size=11),
            xref="paper",
            yref="paper",
            x=0,
            xshift=-8,
            xanchor="right",
            y=sum(fig.get_subplot(r, 1).yaxis.domain) / 2,
            yanchor="middle",
            name="row title",
        )
        for c, name in enumerate(row, start=1):
            cell = fig.get_subplot(r, c)
            cell.yaxis.scaleanchor = cell.yaxis.anchor  # square input pixels
            if name is None:
                fig.add_annotation(
                    text="not yet<br>created",
                    showarrow=False,
                    font=dict(color="#aaaaaa", size=10),
                    xref="paper",
                    yref="paper",
                    x=sum(cell.xaxis.domain) / 2,
                    y=sum(cell.yaxis.domain) / 2,
                )
                continue
            img = _reduce(trace, name, method, sample, max_side)
            h, w = img.shape[:2]
            shape = trace.shapes.get(name)
            where = f"{name} · {shape[1]} ch · {shape[2]}×{shape[3]}" if shape and len(shape) == 4 else name
            if method == "pca":
                fig.add_trace(
                    go.Image(
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
                fig.add_trace(
                    go.Heatmap(
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
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, range=[0, in_w])
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, range=[in_h, 0])
    fig.update_annotations(font_size=11)
    return _finish(fig, title, height=90 + cell_px * rows, margin=dict(l=70, r=110, t=110, b=20))


def lanes_figure(trace: Trace, method: str = "l2", *, sample: int = 0, max_side: int = 64) -> go.Figure:
    """The network as parallel lanes: one row per stream (1/4 … 1/32 resolution), one column per
    HighResolutionModule in forward order; each cell is that stream's fused output, reduced over channels.
    Maps larger than ``max_side`` are averaged down for display (at 224 px every stream keeps its resolution)."""
    refs = trace.modules
    n = max(r.num_streams for r in refs)
    grid = [[f"{r.name}.fused{k}" if k < r.num_streams else None for r in refs] for k in range(n)]
    widths = {}
    for k in range(n):
        shape = next((trace.shapes[f"{r.name}.fused{k}"] for r in refs if k < r.num_streams), None)
        widths[k] = shape[1] if shape else "?"
    row_titles = [f"stream {k}<br>1/{4 * 2**k} · {widths[k]} ch" for k in range(n)]
    col_titles = [f"stage {r.stage}<br>module {r.index}" for r in refs]
    title = (
        f"{_short(trace.variant)} as parallel lanes · {REDUCTION_LABELS.get(method, method)}"
        f"{_weights_note(trace.weights)}<br><sup>rows = streams (resolution, channels), columns = modules in forward "
        "order; each cell is the stream's fused output</sup>"
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
    )


def module_maps_figure(
    trace: Trace, stage: int, module: int, method: str = "l2", *, sample: int = 0, max_side: int = 56
) -> go.Figure:
    """One module, stream by stream: each branch's output, the pre-activation sum and the fused output."""
    ref = trace.module(stage, module if module >= 0 else len([r for r in trace.modules if r.stage == stage]) + module)
    kinds = [("branch", "after its blocks"), ("presum", "Σ of fuse edges"), ("fused", "ReLU(Σ): output")]
    kinds = [(k, d) for k, d in kinds if f"{ref.name}.{k}0" in trace.maps or f"{ref.name}.{k}0" in trace.summaries]
    grid = [[f"{ref.name}.{kind}{i}" for i in range(ref.num_streams)] for kind, _ in kinds]
    return _map_grid(
        trace,
        grid,
        row_titles=[f"{k}<br>{d}" for k, d in kinds],
        col_titles=[f"stream {i} (1/{4 * 2**i})" for i in range(ref.num_streams)],
        method=method,
        sample=sample,
        max_side=max_side,
        title=f"{ref.name}, stream by stream · {REDUCTION_LABELS.get(method, method)}",
        cell_px=190,
    )


# ---------------------------------------------------------------------------------------------- fusion


def _measure_scale(measure: str, values: Sequence[np.ndarray]) -> dict:
    if measure not in MEASURES:
        raise ValueError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
    if measure == "energy_share":
        return dict(colorscale="Blues", cmin=0.0, cmax=1.0)
    top = max(1.0, _symmetric(list(values)))
    return dict(colorscale=_DIVERGING, cmin=-top, cmax=top, cmid=0.0)


def _matrix_trace(m: np.ndarray, measure: str, where: str) -> go.Heatmap:
    n = m.shape[0]
    return go.Heatmap(
        z=m,
        x=[f"s{j}" for j in range(n)],
        y=[f"s{i}" for i in range(n)],
        coloraxis="coloraxis",
        text=np.vectorize(lambda v: f"{v:.2f}")(m),
        texttemplate="%{text}",
        textfont=dict(size=11),
        hovertemplate=f"{where}<br>target stream %{{y}} ← source stream %{{x}}"
        f"<br>{_MEASURE_SHORT[measure]} %{{z:.5f}}<extra></extra>",
    )


def fusion_matrix_figure(
    stats: FusionStats, measure: str = "energy_share", *, sample: int = 0, title: str | None = None
) -> go.Figure:
    """One module's [target × source] fusion matrix as an annotated heatmap."""
    m = _np(stats.matrix(measure, sample))
    fig = go.Figure(_matrix_trace(m, measure, title or "module"))
    fig.update_xaxes(title_text="source stream (sends)", side="bottom")
    fig.update_yaxes(title_text="target stream (receives)", autorange="reversed")
    scale = _measure_scale(measure, [m])
    return _finish(
        fig,
        title or f"Fusion: {_MEASURE_SHORT[measure]}",
        height=380,
        coloraxis=dict(**scale, colorbar=dict(title=dict(text=_wrap(MEASURE_LABELS[measure], 22)))),
    )


def fusion_matrices_figure(trace: Trace, measure: str = "energy_share", *, sample: int = 0) -> go.Figure:
    """Every module's [target × source] matrix, in forward order, on one colour scale."""
    refs = trace.modules
    cols = min(4, len(refs))
    rows = math.ceil(len(refs) / cols)
    mats = [_np(trace.fusion(r.stage, r.index).matrix(measure, sample)) for r in refs]
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[r.name for r in refs],
        horizontal_spacing=0.06,
        vertical_spacing=0.12 if rows > 1 else 0.0,
    )
    for k, (ref, m) in enumerate(zip(refs, mats, strict=True)):
        fig.add_trace(_matrix_trace(m, measure, ref.name), k // cols + 1, k % cols + 1)
    fig.update_yaxes(autorange="reversed")
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text="source", row=rows, col=c)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text="target", row=r, col=1)
    active = " · ".join(
        f"{r.name}: " + "/".join(f"{v:.0%}" for v in trace.fusion(r.stage, r.index).active_fraction[sample].tolist())
        for r in refs[-1:]
    )
    return _finish(
        fig,
        f"Fusion matrices ({_MEASURE_SHORT[measure]}): what each target stream receives from each source"
        f"{_weights_note(trace.weights)}<br><sup>fraction of pre-activations > 0 per stream, {active}</sup>",
        height=110 + 280 * rows,
        coloraxis=dict(
            **_measure_scale(measure, mats), colorbar=dict(title=dict(text=_wrap(MEASURE_LABELS[measure], 22)))
        ),
    )


def sankey_figure(
    flows: Sequence[Flow] | Trace, measure: str = "energy_share", *, title: str | None = None
) -> go.Figure:
    """The whole network as a Sankey of stream → stream flows (from :func:`~hrnet_explorer.fusion.fusion_flows`).

    Link width is |weight|; links are coloured by source stream, negative ones (agreement < 0) in
    vermilion. Columns of nodes are positions between steps (modules and stream-creating transitions).
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
        thickness=14,
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
    fig = go.Figure(go.Sankey(arrangement="fixed", node=node, link=link, valueformat=".4f"))
    for s in steps:
        label = step_label[s]
        short = label.replace("stage", "s").replace(".module", ".m").replace("transition", "t")
        fig.add_annotation(
            x=0.01 + 0.98 * (s + 0.5) / last,
            y=1.0,
            xref="paper",
            yref="paper",
            text=short,
            showarrow=False,
            yanchor="bottom",
            font=dict(size=10, color="#555555"),
            hovertext=label,
        )
    for s in range(n_streams):
        fig.add_annotation(
            x=-0.005,
            y=1 - (0.05 + 0.9 * (s + 0.5) / n_streams),
            xref="paper",
            yref="paper",
            text=f"stream {s}",
            showarrow=False,
            xanchor="right",
            font=dict(size=11, color=_stream_color(s)),
        )
    title = title or (
        f"Stream → stream flows through the network ({_MEASURE_SHORT.get(measure, measure)})<br><sup>link width = "
        "|weight| (each module's rows sum to 1); colour = source stream, vermilion = negative; t = a transition "
        "creating a stream from the lowest one (weight 1); s3.m1 = stage 3, module 1</sup>"
    )
    return _finish(fig, title, height=460, margin=dict(l=80, r=30, t=110, b=30))


def decomposition_figure(dec: Decomposition, method: str = "mean", *, sample: int = 0, max_side: int = 56) -> go.Figure:
    """A fused map taken apart: what each source stream sent, their sum (pre-activation), and ReLU(sum).

    With ``method="mean"`` the channel means are additive, so the source panels sum exactly to the Σ
    panel; all panels share one signed colour scale.
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
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles, horizontal_spacing=0.015)
    h, w = presum.shape
    label = REDUCTION_LABELS[method]
    names = [f"edge {j}→{dec.target}" for j in dec.sources] + ["pre-activation Σ", "fused output"]
    for c, (z, name) in enumerate(zip(panels, names, strict=True), start=1):
        fig.add_trace(
            go.Heatmap(
                z=z,
                coloraxis="coloraxis",
                hovertemplate=f"{dec.module} · {name}<br>cell (%{{x}}, %{{y}}) of {w}×{h}<br>{label} %{{z:.5g}}"
                "<extra></extra>",
            ),
            1,
            c,
        )
    for c in range(1, len(panels) + 1):
        cell = fig.get_subplot(1, c)
        cell.yaxis.scaleanchor = cell.yaxis.anchor
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    fig.update_annotations(font_size=11)
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
        height=360,
        coloraxis=dict(**axis, colorbar=dict(title=dict(text=bar))),
        margin=dict(l=20, r=30, t=130, b=20),
    )


# ----------------------------------------------------------------------------------------- attribution


def _overlay_traces(uri: str, heat: np.ndarray, coloraxis: str, hover: str) -> list:
    return [
        go.Image(source=uri, hoverinfo="skip"),
        go.Heatmap(z=heat, coloraxis=coloraxis, opacity=0.6, hovertemplate=hover),
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
    image: Image.Image | np.ndarray, attribution: PixelAttribution, *, weights: Any = None
) -> go.Figure:
    """A pixel attribution beside the image the network saw (``display_crop``), and overlaid on it. ``weights``
    (the model's WeightsSource) puts the random-weights warning in the title when they are random."""
    heat = _np(attribution.heatmap)
    if heat.ndim != 2:
        raise ValueError(f"PixelAttribution.heatmap must be [H, W]; got shape {heat.shape}.")
    h, w = heat.shape
    uri = _image_uri(image, (h, w))
    method = METHOD_LABELS.get(attribution.method, attribution.method)
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["the image the network sees", f"{method} overlaid"], horizontal_spacing=0.04
    )
    fig.add_trace(go.Image(source=uri, hoverinfo="skip"), 1, 1)
    hover = f"input px (%{{x}}, %{{y}})<br>{method} %{{z:.5g}}<extra></extra>"
    for t in _overlay_traces(uri, heat, "coloraxis", hover):
        fig.add_trace(t, 1, 2)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    delta = "" if attribution.delta is None else f" · convergence δ {attribution.delta:.2e}"
    settings = ", ".join(f"{k}={v}" for k, v in (attribution.settings or {}).items() if not isinstance(v, dict))
    sign = "red > 0 > blue" if float(heat.min()) < 0 else "bright = more"
    # The settings wrapped (the subtitle does not wrap by itself and was cut off on the right).
    lines = textwrap.wrap(settings, 90) or [""]
    return _finish(
        fig,
        f"{method} for {_target_text(attribution)}{delta}{_weights_note(weights)}"
        + "".join(f"<br><sup>{line}</sup>" for line in lines),
        height=420 + 14 * (len(lines) - 1),
        coloraxis=_heat_axis([heat], f"attribution<br>({sign})"),
        margin=dict(l=60, r=30, t=90 + 14 * (len(lines) - 1), b=50),
    )


def gradcam_figure(
    image: Image.Image | np.ndarray, cam: StreamGradCAM, *, shared_scale: bool = False, weights: Any = None
) -> go.Figure:
    """Grad-CAM of every stream of one module, overlaid on the input. By default each stream on its own colour
    scale (the coarse streams' maps are often 10-100× larger, which leaves the fine ones dark on a shared scale);
    ``shared_scale=True`` puts all on one scale, to compare magnitudes. Each scale is clipped at the 98th
    percentile of |map|; the subplot titles give each stream's scale end, hover the exact values."""
    maps = [_np(m) for m in cam.maps]
    if not maps:
        raise ValueError("StreamGradCAM has no maps.")
    h, w = maps[0].shape
    uri = _image_uri(image, (h, w))
    raw = [tuple(r.shape[-2:]) for r in cam.raw] if getattr(cam, "raw", None) else [None] * len(maps)
    titles = [f"stream {k} (1/{4 * 2**k}" + (f", {r[0]}×{r[1]})" if r else ")") for k, r in enumerate(raw)]
    if not shared_scale:
        titles = [f"{t}<br><sub>scale 0 … {display_scale(m):.3g}</sub>" for t, m in zip(titles, maps, strict=True)]
    fig = make_subplots(rows=1, cols=len(maps), subplot_titles=titles, horizontal_spacing=0.02)
    axes = {}
    for k, m in enumerate(maps, start=1):
        hover = f"stream {k - 1}<br>input px (%{{x}}, %{{y}})<br>Grad-CAM %{{z:.5g}}<extra></extra>"
        name = "coloraxis" if shared_scale or k == 1 else f"coloraxis{k}"
        for t in _overlay_traces(uri, m, name, hover):
            fig.add_trace(t, 1, k)
        if not shared_scale:
            axis = _heat_axis([m], "Grad-CAM<br>(each stream<br>on its own scale)")
            axis["colorbar"].update(tickvals=[axis["cmin"], axis["cmax"]], ticktext=["0", "its end"])
            axes[name] = axis | dict(showscale=k == 1)
    if shared_scale:
        axes["coloraxis"] = _heat_axis(maps, "Grad-CAM<br>(one scale<br>for all streams)")
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    which = "one shared colour scale" if shared_scale else "each stream on its own colour scale"
    return _finish(
        fig,
        f"Grad-CAM per stream · stage{cam.stage}.module{cam.module} · {_target_text(cam)}{_weights_note(weights)}"
        f"<br><sup>{which}</sup>",
        height=350,
        margin=dict(l=20, r=30, t=120, b=20),
        **axes,
    )


def stream_shares_figure(shares: StreamShares, *, weights: Any = None) -> go.Figure:
    """How much of the target logit each final stream accounts for (Integrated Gradients over streams)."""
    values = _np(shares.shares).reshape(-1)
    n = values.size
    total = float(values.sum())
    fig = go.Figure(
        go.Bar(
            x=[f"stream {k} (1/{4 * 2**k})" for k in range(n)],
            y=values,
            marker_color=[_stream_color(k) for k in range(n)],
            text=[f"{v:.3g}" for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}<br>share %{y:.5f}<extra></extra>",
        )
    )
    fig.add_hline(y=0, line_color="#444444", line_width=1)
    fig.update_xaxes(title_text="stream (resolution)")
    fig.update_yaxes(title_text="share of the logit", range=_padded_range([float(v) for v in values]))
    delta = getattr(shares, "delta", None)
    return _finish(
        fig,
        f"Stream shares of the logit of {_target_text(shares)}{_weights_note(weights)}"
        f"<br><sup>logit {shares.logit:.4f} · baseline "
        f"({getattr(shares, 'n_steps', '?')} steps) {shares.baseline_logit:.4f} · Σ shares {total:.4f}"
        + (f" · completeness δ {delta:.2e}" if delta is not None else "")
        + "</sup>",
        height=380,
    )


def knockout_figure(results: Sequence[KnockoutResult], *, weights: Any = None) -> go.Figure:
    """The change in the target's logit and probability when a stream or an edge is silenced."""
    results = list(results)
    if not results:
        raise ValueError("knockout_figure needs at least one KnockoutResult.")
    labels = [r.description for r in results][::-1]
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
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.03,
        subplot_titles=["Δ logit (after − before)", "Δ probability (percentage points)"],
    )
    hover = (
        "<b>%{y}</b><br>logit %{customdata[0]:.4f} → %{customdata[1]:.4f}<br>probability %{customdata[2]:.4%} → "
        "%{customdata[3]:.4%}<br>top-1 after: %{customdata[4]}<extra></extra>"
    )
    for col, values in ((1, [r.logit_delta for r in rows]), (2, [100 * r.prob_delta for r in rows])):
        fig.add_trace(
            go.Bar(
                x=values,
                y=labels,
                orientation="h",
                customdata=custom,
                hovertemplate=hover,
                showlegend=False,
                marker_color=[NEGATIVE_COLOR if v < 0 else POSITIVE_COLOR for v in values],
                text=[f"{v:+.3g}" for v in values],
                textposition="outside",
                cliponaxis=False,
            ),
            1,
            col,
        )
        fig.update_xaxes(range=_padded_range(values, 0.45), row=1, col=col)
        fig.add_vline(x=0, line_color="#444444", line_width=1, row=1, col=col)
    fig.update_xaxes(title_text="logit change", row=1, col=1)
    fig.update_xaxes(title_text="probability change (pp)", row=1, col=2)
    fig.update_yaxes(title_text="knocked out", automargin=True, row=1, col=1)
    return _finish(
        fig,
        f"Knockouts: the change in {_target_text(results[0])}{_weights_note(weights)}"
        "<br><sup>vermilion = the class loses evidence, blue = it gains</sup>",
        height=160 + 40 * len(results),
    )


def _method_line(method: str) -> dict:
    color = METHOD_COLORS.get(method, "#444444")
    return dict(color=color, width=2, dash="dash" if method == "random" else "solid")


def faithfulness_figure(results: Sequence[Faithfulness | MethodScores]) -> go.Figure:
    """Deletion and insertion curves of one image, one line per method: the target's probability as the most
    relevant pixels are removed (left; lower area is better) or put back into the baseline (right; higher is
    better). The legend gives each curve's normalised AUC (see :mod:`hrnet_explorer.attribution.faithfulness`)."""
    curves = [getattr(r, "faithfulness", r) for r in results]
    if not curves:
        raise ValueError("faithfulness_figure needs at least one result.")
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=["Deletion: most relevant pixels removed first", "Insertion: most relevant put back first"],
    )
    for f in curves:
        name = METHOD_LABELS.get(f.method, f.method)
        for col, curve in ((1, f.deletion), (2, f.insertion)):
            fig.add_trace(
                go.Scatter(
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
                1,
                col,
            )
    first = curves[0]
    fig.update_xaxes(title_text="fraction of pixels removed", tickformat=".0%", row=1, col=1)
    fig.update_xaxes(title_text="fraction of pixels inserted", tickformat=".0%", row=1, col=2)
    fig.update_yaxes(title_text="probability of the target", row=1, col=1)
    return _finish(
        fig,
        f"Deletion and insertion for {_target_text(first)} · baseline {first.baseline}, {first.steps} steps"
        "<br><sup>legend: AUC of p / p(input) · deletion: lower is better · insertion: higher is better</sup>",
        height=440,
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
        margin=dict(l=60, r=30, t=90, b=130),
    )


def randomisation_figure(results: Sequence[RandomisationTest | MethodScores]) -> go.Figure:
    """The cascading randomisation test: each method's rank similarity to its own original map as the model is
    re-initialised from the head down. A method that stays near 1 does not depend on the weights."""
    tests = [getattr(r, "randomisation", r) for r in results]
    tests = [t for t in tests if t is not None]
    if not tests:
        raise ValueError("randomisation_figure needs at least one randomisation test.")
    fig = go.Figure()
    for t in tests:
        name = METHOD_LABELS.get(t.method, t.method)
        steps = ["original", *(f"+ {layer}" if k else layer for k, layer in enumerate(t.layers))]
        values = [1.0, *(np.nan if v is None else v for v in t.similarity)]
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=values,
                mode="lines+markers",
                line=_method_line(t.method),
                name=f"{name} · {'—' if t.final_similarity is None else f'{t.final_similarity:.2f}'} when all random",
                hovertemplate=f"<b>{name}</b><br>randomised up to %{{x}}<br>Spearman %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_hline(y=0, line_color="#444444", line_width=1)
    fig.update_xaxes(title_text="layer groups re-initialised (cumulative, head first)")
    fig.update_yaxes(title_text="Spearman(|map|, |original map|)", range=[-0.2, 1.05])
    return _finish(
        fig,
        f"Randomisation test for {_target_text(tests[0])}<br><sup>a faithful map falls towards 0 as the weights "
        "are randomised; one that stays high ignores the model</sup>",
        height=400,
    )


def compare_figure(predictions: Sequence[Prediction], latencies_ms: Mapping[str, float] | None = None) -> go.Figure:
    """Two or more models side by side on one image: each one's top-k, on a shared probability axis.

    ``latencies_ms`` maps a model's name (``Prediction.model_name``: the variant, or e.g. "lab") to milliseconds.
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
    fig = make_subplots(rows=1, cols=len(predictions), subplot_titles=titles, horizontal_spacing=0.12)
    for c, p in enumerate(predictions, start=1):
        top = p.top[::-1]
        fig.add_trace(
            go.Bar(
                x=[s.probability for s in top],
                y=[f"{_clip_label(s.label, 24)} ({s.index})" for s in top],
                orientation="h",
                marker_color=_stream_color(c - 1),
                showlegend=False,
                text=[f"{s.probability:.1%}" for s in top],
                textposition="auto",
                customdata=[[s.logit, s.label] for s in top],
                hovertemplate=f"{p.model_name}<br><b>%{{customdata[1]}}</b><br>probability %{{x:.4%}}"
                "<br>logit %{customdata[0]:.4f}<extra></extra>",
            ),
            1,
            c,
        )
    top = max(s.probability for p in predictions for s in p.top)
    fig.update_xaxes(title_text="probability", tickformat=".0%", range=[0, max(top, 1e-3) * 1.05])
    fig.update_yaxes(automargin=True)
    random = any(p.weights.is_random for p in predictions)
    return _finish(
        fig,
        "The models on one image: top-"
        + str(len(predictions[0].top))
        + (" · <b>RANDOM weights: meaningless</b>" if random else ""),
        height=140 + 40 * len(predictions[0].top),
    )

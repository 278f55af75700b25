"""Figures of fusion: each module's [target × source] matrices, the network's stream → stream flows, one
fused map taken apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from ..analyses import Decomposition, Flow, fusion_flows, module_fusion
from ..display import MEASURE_LABELS, MEASURE_NAMES, NEGATIVE_COLOR, REDUCTION_LABELS, stream_color
from ..fusion import MEASURES, FusionStats, spatial_summary
from ._common import DIVERGING, SEQUENTIAL, as_numpy, rgba, shrink, symmetric, weights_note
from ._draft import Draft, finish, panel_grid, subplots, wrap

if TYPE_CHECKING:
    from ..trace import Trace

__all__ = ["fusion_matrix_figure", "fusion_matrices_figure", "sankey_figure", "decomposition_figure"]


def _measure_scale(measure: str, values: Sequence[np.ndarray]) -> dict:
    if measure not in MEASURES:
        raise ValueError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
    if measure == "energy_share":
        return dict(colorscale="Blues", cmin=0.0, cmax=1.0)
    top = max(1.0, symmetric(list(values)))
    return dict(colorscale=DIVERGING, cmin=-top, cmax=top, cmid=0.0)


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
        f"<br>{MEASURE_NAMES[measure]} %{{z:.5f}}<extra></extra>",
    )


def fusion_matrix_figure(
    stats: FusionStats, measure: str = "energy_share", *, sample: int = 0, title: str | None = None
) -> go.Figure:
    """One module's [target × source] fusion matrix as an annotated heatmap."""
    m = as_numpy(stats.matrix(measure, sample))
    fig = Draft()
    fig.add(_matrix_trace(m, measure, title or "module"))
    fig.axis("x").update(title=dict(text="source stream (sends)"), side="bottom")
    fig.axis("y").update(title=dict(text="target stream (receives)"), autorange="reversed")
    scale = _measure_scale(measure, [m])
    return finish(
        fig,
        title or f"Fusion: {MEASURE_NAMES[measure]}",
        height=380,
        coloraxis=dict(**scale, colorbar=dict(title=dict(text=wrap(MEASURE_LABELS[measure], 22)))),
    )


def fusion_matrices_figure(
    fusion: Trace | Mapping[str, FusionStats],
    measure: str = "energy_share",
    *,
    sample: int = 0,
    compact: bool = False,
    weights: Any = None,
) -> go.Figure:
    """Every module's [target × source] matrix, in forward order, on one colour scale. ``fusion``: every module's
    statistics by name, in forward order (:func:`~hrnet_explorer.analyses.module_fusion`), or a Trace to take them
    from (its weights then go in the title; ``weights`` says them otherwise). ``compact``: two matrices a row, the
    colour bar below, for a narrow screen."""
    if not isinstance(fusion, Mapping):
        weights = fusion.weights if weights is None else weights
        fusion = module_fusion(fusion)
    if not fusion:
        raise ValueError("fusion_matrices_figure needs the statistics of at least one module.")
    names = list(fusion)
    cols = min(2 if compact else 4, len(names))
    rows = math.ceil(len(names) / cols)
    mats = [as_numpy(stats.matrix(measure, sample)) for stats in fusion.values()]
    row_px = 190 if compact else 280
    fig = subplots(
        rows=rows,
        cols=cols,
        subplot_titles=tuple(names),
        horizontal_spacing=0.12 if compact else 0.06,
        vertical_spacing=min(0.12, 70 / (row_px * rows)) if rows > 1 else 0.0,
    )
    for k, (name, m) in enumerate(zip(names, mats, strict=True)):
        fig.add(_matrix_trace(m, measure, name, 10 if compact else 11), k // cols + 1, k % cols + 1)
    for axis in fig.axes("y"):
        axis["autorange"] = "reversed"
    for k in range(len(names)):
        if k + cols >= len(names):  # the lowest matrix of its column
            fig.axis("x", k // cols + 1, k % cols + 1)["title"] = dict(text="source")
    for k in range(len(names), rows * cols):  # empty cells of the last row: no bare axes
        fig.axis("x", k // cols + 1, k % cols + 1)["visible"] = False
        fig.axis("y", k // cols + 1, k % cols + 1)["visible"] = False
    for r in range(1, rows + 1):
        fig.axis("y", r, 1)["title"] = dict(text="target")
    last = names[-1]
    active = f"{last}: " + "/".join(f"{v:.0%}" for v in fusion[last].active_fraction[sample].tolist())
    return finish(
        fig,
        f"Fusion matrices ({MEASURE_NAMES[measure]}): what each target stream receives from each source"
        f"{weights_note(weights)}<br><sup>fraction of pre-activations > 0 per stream, {active}</sup>",
        height=110 + row_px * rows,
        coloraxis=dict(
            **_measure_scale(measure, mats), colorbar=dict(title=dict(text=wrap(MEASURE_LABELS[measure], 22)))
        ),
        compact=compact,
    )


def sankey_figure(
    flows: Sequence[Flow] | Trace,
    measure: str = "energy_share",
    *,
    title: str | None = None,
    compact: bool = False,
    weights: Any = None,
) -> go.Figure:
    """The whole network as a Sankey of stream → stream flows (from :func:`~hrnet_explorer.fusion.fusion_flows`).

    Link width is |weight|; links are coloured by source stream, negative ones (agreement < 0) in
    vermilion. Columns of nodes are positions between steps (modules and stream-creating transitions).
    ``compact``: for a narrow screen (short stream labels, step labels turned when they would touch).
    ``weights`` (the model's WeightsSource; a Trace's own by default) puts the random-weights warning in the
    title when they are random, ``title`` or not.
    """
    if not isinstance(flows, Sequence):
        weights = flows.weights if weights is None else weights
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
        color=[stream_color(s) for _, s in keys],
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
        color=[rgba(NEGATIVE_COLOR, 0.65) if f.weight < 0 else rgba(stream_color(f.source), 0.35) for f in flows],
        customdata=[[f.label, f.source, f.target, f.weight] for f in flows],
        hovertemplate="%{customdata[0]}: stream %{customdata[1]} → stream %{customdata[2]}"
        f"<br>{MEASURE_NAMES.get(measure, measure)} %{{customdata[3]:.5f}}<extra></extra>",
    )
    fig = Draft()
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
            font=dict(size=11, color=stream_color(s)),
        )
    if title is not None:
        title += weights_note(weights)
    title = title or (
        f"Stream → stream flows through the network ({MEASURE_NAMES.get(measure, measure)}){weights_note(weights)}"
        "<br><sup>link width = "
        "|weight| (each module's rows sum to 1); colour = source stream, vermilion = negative;<br>t = a transition "
        "creating a stream from the lowest one (weight 1); s3.m1 = stage 3, module 1</sup>"
    )
    margin = dict(l=30, r=16, t=140 if turned else 110, b=30) if compact else dict(l=80, r=30, t=120, b=30)
    return finish(fig, title, height=460 + (30 if turned else 0), margin=margin, compact=compact)


def decomposition_figure(
    dec: Decomposition,
    method: str = "mean",
    *,
    sample: int = 0,
    max_side: int = 56,
    compact: bool = False,
    weights: Any = None,
) -> go.Figure:
    """A fused map taken apart: what each source stream sent, their sum (pre-activation), and ReLU(sum).

    With ``method="mean"`` the channel means are additive, so the source panels sum exactly to the Σ
    panel; all panels share one signed colour scale. ``compact``: two panels a row, for a narrow screen.
    ``weights`` (the model's WeightsSource) puts the random-weights warning in the title when they are random.
    """
    if method not in ("mean", "l2"):
        raise ValueError(f"decomposition_figure shows 'mean' (additive) or 'l2' maps, not {method!r}.")
    parts = [shrink(spatial_summary(c[sample], method).cpu(), max_side).numpy() for c in dec.contributions]
    presum = shrink(spatial_summary(dec.presum[sample], method).cpu(), max_side).numpy()
    fused = shrink(spatial_summary(dec.fused[sample], method).cpu(), max_side).numpy()
    panels = parts + [presum, fused]
    es, ag = dec.energy_share[sample].tolist(), dec.agreement[sample].tolist()
    titles = [f"from stream {j}<br>energy share {es[j]:.1%}<br>agreement {ag[j]:+.3f}" for j in dec.sources]
    titles += ["= Σ (pre-activation)", "ReLU → fused output"]
    fig, cols, grid_px = panel_grid(titles, compact, title_px=60, wide_spacing=0.015)  # three-line titles
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
        top = symmetric(panels)
        axis = dict(colorscale=DIVERGING, cmin=-top, cmax=top, cmid=0.0)
        bar = f"{label}<br>(additive: the source<br>panels sum to Σ)"
    else:
        axis = dict(colorscale=SEQUENTIAL, cmin=0.0, cmax=float(max(p.max() for p in panels)) or 1.0)
        bar = f"{label}<br>(not additive)"
    return finish(
        fig,
        f"{dec.module}, stream {dec.target} = ReLU(Σ_j edge j→{dec.target}) · max |reconstruction error| "
        f"{dec.max_error:.1e}{weights_note(weights)}",
        height=round(130 + grid_px) if compact else 360,
        coloraxis=dict(**axis, colorbar=dict(title=dict(text=bar))),
        margin=dict(l=20, r=30, t=130, b=20),
        compact=compact,
    )

"""Figures of a whole ``analyze`` run: accuracy per class and per family, confidence, the most predicted classes,
stream energy, fuse-edge shares and stream reliance, one trace per variant.

They draw the summaries :mod:`hrnet_explorer.report.dataset` reduces the run's rows to (the dataclasses here): a
page carries a few numbers per class, box or module, not every row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..display import stream_color

__all__ = [
    "GroupAccuracy",
    "ClassCounts",
    "StreamEnergy",
    "EdgeQuartiles",
    "ClassReliance",
    "accuracy_figure",
    "confidence_figure",
    "top_classes_figure",
    "energy_figure",
    "shares_figure",
    "reliance_figure",
]


@dataclass(frozen=True)
class GroupAccuracy:
    """One variant's top-1 accuracy per group of images (a true class, or a lab family): ``accuracy[k]`` of
    ``counts[k]`` labelled images in ``groups[k]`` (NaN where none is)."""

    variant: str
    groups: list
    accuracy: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class ClassCounts:
    """One variant's most predicted classes: ``counts[k]`` images have top-1 ``classes[k]``, most first."""

    variant: str
    classes: list[str]
    counts: np.ndarray


@dataclass(frozen=True)
class StreamEnergy:
    """The mean energy (mean of fused²) of one variant's stream at every module's output, in forward order."""

    variant: str
    stream: int
    modules: list[str]  # "stage2.module0", ...
    energy: list[float]


@dataclass(frozen=True)
class EdgeQuartiles:
    """One variant's distribution of a fusion measure over all images, per fuse edge of one module: quartiles,
    the 2.5 and 97.5 percentiles (the whiskers) and the mean."""

    variant: str
    module: str
    edges: list[str]  # "j→i": source j into target i
    q1: list[float]
    median: list[float]
    q3: list[float]
    low: list[float]
    high: list[float]
    mean: list[float]


@dataclass(frozen=True)
class ClassReliance:
    """One variant's mean change of the top-1 probability when each final stream is knocked out, per class:
    ``delta[class, knockout]``; ``labelled``: the classes are the true ones (else the predicted ones)."""

    variant: str
    knockouts: list[str]  # "stage4.stream0", ...
    classes: list[str]
    delta: np.ndarray
    labelled: bool


def accuracy_figure(accuracies: Sequence[GroupAccuracy], *, by: str = "class") -> go.Figure:
    """Grouped bars of top-1 accuracy per true class (``by="class"``) or per lab family (``by="family"``)."""
    if by not in ("class", "family"):
        raise ValueError(f"accuracy_figure groups by 'class' or 'family', not {by!r}.")
    fig = go.Figure()
    for k, a in enumerate(accuracies):
        fig.add_trace(
            go.Bar(
                name=a.variant,
                x=a.groups,
                y=a.accuracy,
                marker_color=stream_color(k),
                customdata=a.counts,
                hovertemplate=f"{a.variant}<br>%{{x}}: %{{y:.1%}} of %{{customdata}} images<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Top-1 accuracy per {by}",
        barmode="group",
        yaxis=dict(title="top-1 accuracy", tickformat=".0%", range=[0, 1]),
        xaxis=dict(title="true class" if by == "class" else "family"),
        height=420 if by == "class" else 360,
    )
    return fig


def confidence_figure(top1: Mapping[str, np.ndarray]) -> go.Figure:
    """Overlaid histograms of every image's top-1 probability, one per variant (``top1``: variant → values)."""
    fig = go.Figure()
    for k, (variant, values) in enumerate(top1.items()):
        fig.add_trace(
            go.Histogram(
                x=values,
                name=variant,
                xbins=dict(start=0, end=1, size=0.02),
                marker_color=stream_color(k),
                opacity=0.7,
            )
        )
    fig.update_layout(
        title="Confidence: the top-1 probability of every image",
        barmode="overlay",
        xaxis=dict(title="top-1 softmax probability", tickformat=".0%"),
        yaxis=dict(title="images"),
        height=360,
    )
    return fig


def top_classes_figure(counts: Sequence[ClassCounts]) -> go.Figure:
    """Grouped bars of how many images each variant gives each of its most predicted classes."""
    fig = go.Figure()
    for k, c in enumerate(counts):
        fig.add_trace(go.Bar(name=c.variant, x=c.classes, y=c.counts, marker_color=stream_color(k)))
    fig.update_layout(
        title="The most predicted classes (top 20 per variant)",
        barmode="group",
        xaxis=dict(title="predicted class"),
        yaxis=dict(title="images"),
        height=420,
    )
    return fig


def energy_figure(energy: Sequence[StreamEnergy]) -> go.Figure:
    """One line per variant and stream over the modules in forward order: colour = stream, dash = variant."""
    fig = go.Figure()
    variants = list(dict.fromkeys(e.variant for e in energy))
    for e in energy:
        dash = ("solid", "dash", "dot", "dashdot")[variants.index(e.variant) % 4]
        fig.add_trace(
            go.Scatter(
                x=e.modules,
                y=e.energy,
                mode="lines+markers",
                name=f"{e.variant} · stream {e.stream}",
                line=dict(color=stream_color(e.stream), dash=dash),
                hovertemplate=f"{e.variant} stream {e.stream}<br>%{{x}}: %{{y:.4g}}<extra></extra>",
            )
        )
    order = sorted({m for e in energy for m in e.modules}, key=lambda m: tuple(int(p) for p in re.findall(r"\d+", m)))
    fig.update_layout(
        title="Mean energy of every stream at every module's output",
        xaxis=dict(title="module (forward order)", categoryorder="array", categoryarray=order),
        yaxis=dict(title="mean of fused² (log scale)", type="log"),
        height=420,
    )
    return fig


def shares_figure(boxes: Sequence[EdgeQuartiles], measure: str) -> go.Figure:
    """Box plots of one fusion measure over all images, per fuse edge of a module, one box group per variant."""
    fig = go.Figure()
    for k, b in enumerate(boxes):
        fig.add_trace(
            go.Box(
                name=f"{b.variant} ({b.module})",
                x=b.edges,
                q1=b.q1,
                median=b.median,
                q3=b.q3,
                lowerfence=b.low,
                upperfence=b.high,
                mean=b.mean,
                marker_color=stream_color(k),
            )
        )
    name = measure.replace("_", " ")
    fig.update_layout(
        title=f"{name} of each fuse edge (source→target) of the last stage-4 module, all images",
        boxmode="group",
        xaxis=dict(title="edge source→target"),
        yaxis=dict(title=f"{name} (box: quartiles; whiskers: 2.5–97.5 %)"),
        height=440,
    )
    return fig


def reliance_figure(reliance: Sequence[ClassReliance]) -> go.Figure:
    """One heatmap per variant: class × knocked-out stream, the mean change of the top-1 probability, on one
    diverging scale."""
    if not reliance:
        raise ValueError("reliance_figure needs at least one variant's reliance.")
    fig = make_subplots(
        rows=1, cols=len(reliance), subplot_titles=[r.variant for r in reliance], horizontal_spacing=0.12
    )
    for v, r in enumerate(reliance, start=1):
        fig.add_trace(
            go.Heatmap(
                z=r.delta,
                x=r.knockouts,
                y=[str(c) for c in r.classes],
                coloraxis="coloraxis",
                hovertemplate="%{y} · %{x} knocked out<br>mean Δ top-1 probability %{z:+.4f}<extra></extra>",
            ),
            1,
            v,
        )
        fig.update_yaxes(title_text="true class" if r.labelled else "predicted class", row=1, col=v)
    zmax = max((float(np.nanmax(np.abs(r.delta))) for r in reliance if r.delta.size), default=0.0) or 1.0
    fig.update_layout(
        title="Stream reliance by class: the mean change of the top-1 probability when a stream is knocked out",
        coloraxis=dict(colorscale="RdBu", cmin=-zmax, cmax=zmax, colorbar=dict(title="Δp")),
        height=max(360, 80 + 22 * max(len(r.classes) for r in reliance)),
    )
    return fig

"""Figures of predictions: one model's top-k, models side by side on one image, the variants' card beside the
measurement."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import plotly.graph_objects as go

from ..costs import CARD_FLOPS_EXPLANATION
from ..display import POSITIVE_COLOR, stream_color
from ._common import clip_label, short_name, weights_note
from ._draft import Draft, finish, subplots, wrap

if TYPE_CHECKING:
    from ..costs import CostReport
    from ..predict import ClassScore, Prediction

__all__ = ["topk_figure", "variants_figure", "compare_figure"]


def topk_figure(
    prediction: Prediction | Sequence[ClassScore], *, title: str | None = None, compact: bool = False
) -> go.Figure:
    """Horizontal bars of the top-k classes (best on top): softmax probability, with logit and index on hover.
    ``compact``: for a narrow screen (shorter class names, a wrapped title)."""
    scores = list(getattr(prediction, "top", prediction))
    if not scores:
        raise ValueError("topk_figure needs at least one ClassScore.")
    scores = scores[::-1]
    fig = Draft()
    fig.add(
        dict(
            type="bar",
            x=[s.probability for s in scores],
            y=[f"{clip_label(s.label, 24 if compact else 40)} ({s.index})" for s in scores],
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
            title += f" · {short_name(prediction.model_name)} · {h}×{w} px{weights_note(prediction.weights)}"
    fig.axis("x").update(title=dict(text="softmax probability"), tickformat=".0%", rangemode="tozero")
    fig.axis("y").update(automargin=True, **({} if compact else dict(title=dict(text="class (index)"))))
    return finish(fig, title, height=120 + 36 * len(scores), compact=compact)


def variants_figure(
    reports: Sequence[CostReport],
    latencies_ms: Mapping[str, float] | None = None,
    *,
    device: str | None = None,
    compact: bool = False,
) -> go.Figure:
    """The variants compared, card beside measurement: parameters, MACs vs the card's "FLOPs", latency.

    ``latencies_ms`` maps variant name → measured milliseconds of one forward (optional; ``device`` says where).
    A report without card numbers (nan: a checkpoint with its own model card, ``costs.loaded_costs``) has its
    measured bars only, and no ImageNet accuracy in the title.
    ``compact``: the panels stacked, for a narrow screen.
    """
    if not reports:
        raise ValueError("variants_figure needs at least one CostReport.")
    names = [short_name(r.variant) for r in reports]
    carded = [r for r in reports if not math.isnan(r.card_params_m)]  # those with an ImageNet card
    lat = [latencies_ms.get(r.variant) for r in reports] if latencies_ms else None
    cols = 3 if lat and any(v is not None for v in lat) else 2
    titles = ["Parameters (millions)", "Compute per 224 px image (billions)", "Latency of one traced forward (ms)"][
        :cols
    ]
    if compact:
        fig = subplots(rows=cols, cols=1, subplot_titles=tuple(titles), vertical_spacing=0.32 / cols)
        fig.font_annotations(13)
    else:
        fig = subplots(rows=1, cols=cols, subplot_titles=tuple(titles), horizontal_spacing=0.08)

    def at(c: int) -> tuple[int, int]:
        return (c, 1) if compact else (1, c)

    fig.add(
        dict(
            type="bar",
            name="card",
            x=names,
            y=[r.card_params_m if r in carded else None for r in reports],
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
            y=[r.card_flops / 1e9 if r in carded else None for r in reports],
            marker=dict(color="#999999"),
            legendgroup="card",
            showlegend=False,
            customdata=[[r.card_flops, r.card_flops_over_macs] if r in carded else None for r in reports],
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
    note = len(wrap(CARD_FLOPS_EXPLANATION, 56).split("<br>"))  # the compact note's lines
    height = 150 + 250 * cols + 15 * note if compact else 520
    fig.annotate(
        text=wrap(CARD_FLOPS_EXPLANATION, 56 if compact else 125),
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
    top1 = ", ".join(f"{short_name(r.variant)} {r.card_top1:.2f}%" for r in carded)
    own = ", ".join(short_name(r.variant) for r in reports if r not in carded)
    notes = ([f"card top-1 ({carded[0].card_tag}): {top1}"] if carded else []) + (
        [f"{own}: own model card (measured only; no ImageNet accuracy)"] if own else []
    )
    return finish(
        fig,
        "The variants: card vs measured<br><sup>" + wrap(" · ".join(notes), 120) + "</sup>",
        height=height,
        barmode="group",
        margin=dict(l=60, r=16, t=110, b=110 + 15 * note) if compact else dict(l=60, r=30, t=130, b=190),
        # compact: the legend under the last panel's tick labels, above the note
        legend=dict(orientation="h", y=(15 * note + 12) / height, yanchor="bottom", x=0, yref="container")
        if compact
        else dict(orientation="h", y=1.12, yanchor="bottom", x=1, xanchor="right"),
        compact=compact,
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
        parts = (f"{ms:.0f} ms" if ms is not None else "", "RANDOM" if p.weights.is_random else "")
        details = " · ".join(part for part in parts if part)
        # compact: the details on a line of their own ("w18_small_v2 · 1066 ms · RANDOM" overran a phone's width)
        sep = "<br>" if compact else " · "
        titles.append(short_name(p.model_name) + (sep + details if details else ""))
    n, k = len(predictions), len(predictions[0].top)
    best = max(s.probability for p in predictions for s in p.top)
    panel = 40 + 30 * k  # px of one compact panel
    if compact:
        fig = subplots(
            rows=n, cols=1, subplot_titles=tuple(titles), shared_xaxes=True, vertical_spacing=40 / (n * panel + 40)
        )
    else:
        # room between the panels for the class names of the next (automargin cannot reach into a neighbour)
        fig = subplots(rows=1, cols=n, subplot_titles=tuple(titles), horizontal_spacing=0.2)
        fig.font_annotations(13)  # titles such as "w18_small_v2 · 2345 ms · RANDOM" touched at 14 px
    for c, p in enumerate(predictions, start=1):
        top = p.top[::-1]
        fig.add(
            dict(
                type="bar",
                x=[s.probability for s in top],
                y=[f"{clip_label(s.label, 24)} ({s.index})" for s in top],
                orientation="h",
                marker=dict(color=stream_color(c - 1)),
                showlegend=False,
                text=[f"{s.probability:.1%}" for s in top],
                # a long bar's number inside it: outside, "100.0 %" ran into the next panel's class names
                textposition=["inside" if s.probability > 0.55 * best else "outside" for s in top],
                insidetextanchor="end",
                customdata=[[s.logit, s.label] for s in top],
                hovertemplate=f"{p.model_name}<br><b>%{{customdata[1]}}</b><br>probability %{{x:.4%}}"
                "<br>logit %{customdata[0]:.4f}<extra></extra>",
            ),
            *((c, 1) if compact else (1, c)),
        )
    for axis in fig.axes("x"):
        axis.update(tickformat=".0%", range=[0, max(best, 1e-3) * 1.05])
    for axis in [fig.axis("x", n, 1)] if compact else fig.axes("x"):
        axis["title"] = dict(text="probability")
    for axis in fig.axes("y"):
        axis["automargin"] = True
    if compact:
        fig.font_annotations(13)
    random = [short_name(p.model_name) for p in predictions if p.weights.is_random]
    if len(random) == n:
        warning = " · <b>RANDOM weights: meaningless</b>"
    elif random:  # name them: the others (the lab model, say) are trained
        which = "those panels are" if len(random) > 1 else "that panel is"
        warning = f" · <b>RANDOM weights ({', '.join(random)}): {which} meaningless</b>"
    else:
        warning = ""
    return finish(
        fig,
        "The models on one image: top-" + str(k) + warning,
        height=150 + n * panel if compact else 140 + 40 * k,
        compact=compact,
    )

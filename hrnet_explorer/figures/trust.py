"""Figures of how far an attribution can be trusted: deletion and insertion curves, the randomisation test
(see :mod:`hrnet_explorer.attribution.faithfulness`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from ..display import METHOD_COLORS, METHOD_LABELS
from ._common import target_text, weights_note
from ._draft import Draft, finish, subplots

if TYPE_CHECKING:
    from ..attribution import Faithfulness, MethodScores, RandomisationTest

__all__ = ["faithfulness_figure", "randomisation_figure"]


def _method_line(method: str) -> dict:
    color = METHOD_COLORS.get(method, "#444444")
    return dict(color=color, width=2, dash="dash" if method == "random" else "solid")


def faithfulness_figure(
    results: Sequence[Faithfulness | MethodScores], *, compact: bool = False, weights: Any = None
) -> go.Figure:
    """Deletion and insertion curves of one image, one line per method: the target's probability as the most
    relevant pixels are removed (left; lower area is better) or put back into the baseline (right; higher is
    better). The legend gives each curve's normalised AUC (see :mod:`hrnet_explorer.attribution.faithfulness`).
    ``compact``: the two panels stacked, for a narrow screen. ``weights`` (the model's WeightsSource) puts the
    random-weights warning in the title when they are random."""
    curves = [getattr(r, "faithfulness", r) for r in results]
    if not curves:
        raise ValueError("faithfulness_figure needs at least one result.")
    fig = subplots(
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
    return finish(
        fig,
        f"Deletion and insertion for {target_text(first)} · baseline {first.baseline}, {first.steps} steps"
        f"{weights_note(weights)}"
        "<br><sup>legend: AUC of p / p(input) · deletion: lower is better · insertion: higher is better</sup>",
        height=680 + legend if compact else 440,
        legend=dict(orientation="h", yanchor="bottom", y=0, yref="container", x=0)
        if compact
        else dict(orientation="h", yanchor="top", y=-0.18, x=0),
        margin=dict(l=60, r=16, t=90, b=70 + legend) if compact else dict(l=60, r=30, t=90, b=130),
        compact=compact,
    )


def randomisation_figure(
    results: Sequence[RandomisationTest | MethodScores], *, compact: bool = False, weights: Any = None
) -> go.Figure:
    """The cascading randomisation test: each method's rank similarity to its own original map as the model is
    re-initialised from the head down. A method that stays near 1 does not depend on the weights. ``compact``: for
    a narrow screen (the legend below). ``weights`` (the original model's WeightsSource) puts the random-weights
    warning in the title when they are random."""
    tests = [getattr(r, "randomisation", r) for r in results]
    tests = [t for t in tests if t is not None]
    if not tests:
        raise ValueError("randomisation_figure needs at least one randomisation test.")
    fig = Draft()
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
    return finish(
        fig,
        f"Randomisation test for {target_text(tests[0])}{weights_note(weights)}"
        "<br><sup>a faithful map falls towards 0 as the weights "
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

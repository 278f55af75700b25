"""The figures look as plotly's "plotly_white" template draws them, however they are built.

The figures build each figure as plain dicts validated once (``figures._draft.Draft``), with the part of
plotly_white that applies to what it draws (its layout less polar, ternary, 3-D and map subplots; the defaults of the
trace types it draws) instead of naming the whole template. These tests hold that to what users see: every figure's
template equals plotly_white wherever it applies (white background, grid colours, fonts, colorway, the trace types'
defaults), the session's default template does not leak in, and the draft helpers give what plotly's own calls give.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch
from PIL import Image
from plotly.subplots import make_subplots
from test_figures_compact import NAMES, builders

from hrnet_explorer import trace
from hrnet_explorer.figures import _draft as D


@pytest.fixture(scope="module")
def figures(w18_small):
    torch.manual_seed(0)
    traced = trace(w18_small, torch.randn(1, 3, 224, 224))
    crop = Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8))
    return builders(traced, crop)


def test_every_figure_the_app_draws_is_listed(figures):
    assert sorted(figures) == sorted(NAMES)


def _white() -> dict:
    return pio.templates["plotly_white"].to_plotly_json()


def _check_white(fig: go.Figure) -> None:
    white = _white()
    template = fig.layout.template.to_plotly_json()
    # The layout part: plotly_white's, key for key, less the subplot kinds no figure draws.
    used = {k: v for k, v in white["layout"].items() if not k.startswith(D.UNUSED_SUBPLOTS)}
    assert template["layout"] == used
    layout = fig.layout.to_plotly_json()
    assert not [k for k in layout if k.startswith(D.UNUSED_SUBPLOTS)], "a subplot kind the template leaves out"
    # The properties that make the look, spelled out.
    assert template["layout"]["paper_bgcolor"] == template["layout"]["plot_bgcolor"] == "white"
    for axis in ("xaxis", "yaxis"):
        assert template["layout"][axis]["gridcolor"] == "#EBF0F8"
        assert template["layout"][axis]["zerolinecolor"] == "#EBF0F8"
    assert template["layout"]["font"] == {"color": "#2a3f5f"}
    assert template["layout"]["colorway"] == white["layout"]["colorway"]
    # Each trace type drawn: plotly_white's defaults for it (bars' white outlines, heatmaps' colour bars, ...).
    for kind in {t.type for t in fig.data}:
        assert kind in D.TEMPLATE_TRACES
        assert template.get("data", {}).get(kind) == white["data"].get(kind), kind


@pytest.mark.parametrize("compact", [False, True], ids=["wide", "compact"])
@pytest.mark.parametrize("name", NAMES)
def test_figures_are_drawn_in_plotly_white(figures, name, compact):
    _check_white(figures[name](compact))


def test_the_sessions_default_template_does_not_leak_in(figures):
    """Notebook users may set their own default template: the figures stay white, and building them changes no
    global plotly state."""
    before = pio.templates.default
    white = _white()
    pio.templates.default = "plotly_dark"
    try:
        for name in ("topk", "matrices", "sankey", "lanes", "knockout"):
            _check_white(figures[name](False))
        assert pio.templates.default == "plotly_dark"
    finally:
        pio.templates.default = before
    assert _white() == white


def test_a_grid_figure_keeps_its_subplot_grid(figures):
    fig = figures["matrices"](False)
    fig.add_trace(go.Scatter(x=[0], y=[0]), row=1, col=2)
    assert (fig.data[-1].xaxis, fig.data[-1].yaxis) == ("x2", "y2")
    fig.update_xaxes(title_text="changed", row=1, col=2)
    assert fig.layout.xaxis2.title.text == "changed"


@pytest.mark.parametrize(
    "options",
    [
        dict(rows=2, cols=2, subplot_titles=("a", "b", "c"), horizontal_spacing=0.1),
        dict(rows=1, cols=2, subplot_titles=("", "b"), shared_yaxes=True, horizontal_spacing=0.03),
        dict(rows=2, cols=3, column_titles=("one", "two", "three"), vertical_spacing=0.03),
    ],
    ids=["titles", "an-empty-title", "column-titles"],
)
def test_drafts_give_what_plotlys_own_calls_give(options):
    """The draft helpers against the plotly calls they stand for: the same figure dict."""
    plain = make_subplots(**{k: list(v) if isinstance(v, tuple) else v for k, v in options.items()})
    plain.add_trace(go.Heatmap(z=[[1, 2], [3, 4]], coloraxis="coloraxis"), 1, 1)
    plain.add_trace(go.Bar(x=[1, 2], y=[2, 1], marker_color="#0072B2"), 1, 2)
    plain.update_xaxes(showgrid=False, zeroline=False)
    plain.update_yaxes(title_text="target", row=1, col=1)
    plain.update_yaxes(autorange="reversed")
    plain.add_hline(y=0, line_color="#444444", line_width=1, row=1, col=2)
    plain.add_vline(x=1, line_color="#444444", line_width=1, row=1, col=1)
    plain.add_annotation(text="note", x=0, y=0, xref="paper", yref="paper", showarrow=False)
    plain.update_annotations(font_size=12)
    sub = plain.get_subplot(1, 1)
    sub.yaxis.scaleanchor = sub.yaxis.anchor

    draft = D.subplots(**options)
    draft.add(dict(type="heatmap", z=[[1, 2], [3, 4]], coloraxis="coloraxis"), 1, 1)
    draft.add(dict(type="bar", x=[1, 2], y=[2, 1], marker=dict(color="#0072B2")), 1, 2)
    for axis in draft.axes("x"):
        axis.update(showgrid=False, zeroline=False)
    draft.axis("y", 1, 1)["title"] = dict(text="target")
    for axis in draft.axes("y"):
        axis["autorange"] = "reversed"
    draft.rule("y", 0, 1, 2, color="#444444", width=1)
    draft.rule("x", 1, 1, 1, color="#444444", width=1)
    draft.annotate(text="note", x=0, y=0, xref="paper", yref="paper", showarrow=False)
    draft.font_annotations(12)
    yaxis = draft.axis("y", 1, 1)
    yaxis["scaleanchor"] = yaxis["anchor"]
    built = draft.figure()

    expected, got = plain.to_dict(), built.to_dict()
    expected["layout"].pop("template")  # both the session's default: _finish gives drafts the figures' own
    got["layout"].pop("template")
    assert got == expected
    assert built.get_subplot(1, 2).xaxis.plotly_name == plain.get_subplot(1, 2).xaxis.plotly_name


def test_a_single_plot_draft_gives_what_plotlys_own_calls_give():
    plain = go.Figure(go.Bar(x=[1, 2], y=[3, -1]))
    plain.add_hline(y=0, line_color="#444444", line_width=1)
    plain.update_xaxes(title_text="x")
    plain.update_yaxes(title_text="y", range=[-2, 4])
    draft = D.Draft()
    draft.add(dict(type="bar", x=[1, 2], y=[3, -1]))
    draft.rule("y", 0, color="#444444", width=1)
    draft.axis("x")["title"] = dict(text="x")
    draft.axis("y").update(title=dict(text="y"), range=[-2, 4])
    expected, got = plain.to_dict(), draft.figure().to_dict()
    expected["layout"].pop("template")
    got["layout"].pop("template")
    assert got == expected

"""Compact figures (``compact=True``, what the app sends a narrow screen): panels wrapped to at most two columns
or stacked, colour bars thin and horizontal under the plot, titles wrapped; the wide figures as they were.
How they look in a browser at 420 px is tests/system/test_browser.py's test_figures_fit_a_phone_screen."""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from hrnet_explorer import figures as F
from hrnet_explorer import trace
from hrnet_explorer.analyses import decompose, fusion_flows
from hrnet_explorer.attribution import KnockoutResult, PixelAttribution, StreamGradCAM, StreamShares
from hrnet_explorer.attribution.faithfulness import Faithfulness, PerturbationCurve
from hrnet_explorer.attribution.randomisation import RandomisationTest
from hrnet_explorer.costs import CostReport
from hrnet_explorer.figures import _draft as D
from hrnet_explorer.predict import ClassScore, Prediction, topk_from_logits
from hrnet_explorer.ui.callbacks import compact
from hrnet_explorer.zoo import WeightsSource

RANDOM = WeightsSource("random", "asked for")
TAG = re.compile(r"<[^>]+>")


@pytest.fixture(scope="module")
def traced(w18_small):
    torch.manual_seed(0)
    return trace(w18_small, torch.randn(1, 3, 224, 224))


@pytest.fixture(scope="module")
def crop():
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (224, 224, 3), dtype=np.uint8))


def _curve(kind: str) -> PerturbationCurve:
    x = torch.linspace(0, 1, 11, dtype=torch.float64)
    p = 0.5 * (1 - x) if kind == "deletion" else 0.5 * x
    return PerturbationCurve(kind, x, p, p / 0.5, 0.25, 0.5)


def _faithfulness(method: str) -> Faithfulness:
    return Faithfulness(method, 1, "blur", 10, _curve("deletion"), _curve("insertion"), 0.5, 0.1, 0, 0.1)


NAMES = [  # every figure the app draws, the keys of builders()
    "topk",
    "variants",
    "lanes",
    "module",
    "matrices",
    "sankey",
    "decomposition",
    "attribution",
    "gradcam",
    "shares",
    "knockout",
    "faithfulness",
    "randomisation",
    "compare",
]


def builders(traced, crop) -> dict:
    """Every figure the app draws, as a function of ``compact``."""
    logits = traced.logits[0]
    pred = Prediction("hrnet_w18_small", RANDOM, "cpu", "fp32", (224, 224), topk_from_logits(logits, 5), logits)
    other = Prediction("hrnet_w18", RANDOM, "cpu", "fp32", (224, 224), pred.top, logits)
    report = CostReport("hrnet_w18_small", 13_187_464, 1_612_000_000, 13.19, 2_071_651_488, 1.285, 72.34, 90.7, "g", "")
    heat = torch.rand(224, 224) - 0.5
    pixels = PixelAttribution("ig", 1, heat[None, None].expand(1, 3, 224, 224), heat, 0.01, {"n_steps": 32})
    cam = StreamGradCAM(1, 4, 0, [torch.rand(224, 224) * 10**k for k in range(4)], [torch.rand(7, 7)] * 4)
    shares = StreamShares(1, torch.tensor([0.5, 0.25, -0.05, 0.3]), 3.2, 0.1, 1e-3, 32)
    top = [ClassScore(3, "tiger shark", 0.4, 2.0)]
    knocked = [KnockoutResult(1, f"stream {k} removed everywhere", 4.0, 2.5 + k, 0.8, 0.3, top) for k in range(4)]
    rand = RandomisationTest("ig", 1, ("head", "stage4", "stage3", "stage2", "stem"), (0.5, 0.3, 0.2, 0.1, 0.0), 0, 1)
    return {
        "topk": lambda c: F.topk_figure(pred, compact=c),
        "variants": lambda c: F.variants_figure([report], {"hrnet_w18_small": 80.0}, device="cpu", compact=c),
        "lanes": lambda c: F.lanes_figure(traced, compact=c),
        "module": lambda c: F.module_maps_figure(traced, 4, 0, compact=c),
        "matrices": lambda c: F.fusion_matrices_figure(traced, compact=c),
        "sankey": lambda c: F.sankey_figure(fusion_flows(traced), compact=c),
        "decomposition": lambda c: F.decomposition_figure(decompose(traced, 4, 0, 0), compact=c),
        "attribution": lambda c: F.attribution_figure(crop, pixels, weights=RANDOM, compact=c),
        "gradcam": lambda c: F.gradcam_figure(crop, cam, weights=RANDOM, compact=c),
        "shares": lambda c: F.stream_shares_figure(shares, weights=RANDOM, compact=c),
        "knockout": lambda c: F.knockout_figure(knocked, weights=RANDOM, compact=c),
        "faithfulness": lambda c: F.faithfulness_figure([_faithfulness("ig"), _faithfulness("random")], compact=c),
        "randomisation": lambda c: F.randomisation_figure([rand], compact=c),
        "compare": lambda c: F.compare_figure([pred, other], {"hrnet_w18_small": 80.0}, compact=c),
    }


def columns(fig: go.Figure) -> int:
    """How many columns of panels (distinct x domains of the axes that hold a trace)."""
    used = {getattr(t, "xaxis", None) or "x" for t in fig.data if t.type != "sankey"}
    return len({tuple(fig.layout["xaxis" + name[1:]].domain or (0, 1)) for name in used}) if used else 1


def shown_bars(fig: go.Figure) -> list:
    axes = {t.coloraxis for t in fig.data if getattr(t, "coloraxis", None)}
    bars = [fig.layout[a].colorbar for a in axes if fig.layout[a].showscale is not False]
    return bars + [t.colorbar for t in fig.data if "colorbar" in t and not t.coloraxis and t.showscale is not False]


@pytest.mark.parametrize("name", NAMES)
def test_compact_figures_fit_a_narrow_screen(traced, crop, name):
    build = builders(traced, crop)[name]
    wide, small = build(False), build(True)
    # titles wrapped: no line longer than a phone's width (a narrower one in <sup>), each line's tags closed
    for line in small.layout.title.text.split("<br>"):
        limit = D.COMPACT_TITLE[1] if line.startswith(("<sup>", "<sub>")) else D.COMPACT_TITLE[0]
        assert len(TAG.sub("", line)) <= limit, line
        assert line.count("<") == 2 * line.count("</"), line
    # the same words as the wide title, in the same order (the turned lanes say so; the module's row names explained)
    words = TAG.sub(" ", small.layout.title.text.replace("<br>", " ")).split()
    if name not in ("lanes", "module"):
        assert words == TAG.sub(" ", wide.layout.title.text.replace("<br>", " ")).split()
    # colour bars: thin and under the plot, not a column of their own beside it
    for bar in shown_bars(small):
        assert bar.orientation == "h" and bar.thickness <= 14 and bar.yref == "container" and bar.y == 0
    for bar in shown_bars(wide):
        assert bar.orientation is None and bar.ticklabelposition == "outside bottom"
    assert small.layout.margin.r <= 16
    limit = 4 if name in ("lanes", "module") else 2  # streams side by side; every other grid wraps or stacks
    assert columns(small) <= limit
    assert small.layout.height >= wide.layout.height or name in ("lanes", "module", "topk", "shares", "sankey")


def test_grids_wrap_on_a_narrow_screen(traced, crop):
    figs = builders(traced, crop)
    assert [columns(figs[n](False)) for n in ("gradcam", "decomposition", "attribution", "knockout", "compare")] == [
        4,
        6,
        2,
        2,
        2,
    ]
    assert [columns(figs[n](True)) for n in ("gradcam", "decomposition", "attribution", "knockout", "compare")] == [
        2,
        2,
        1,
        1,
        1,
    ]


def test_compact_lanes_run_down_the_page(traced):
    """On a narrow screen the lanes turn: one column per stream, one row per module (w18_small: 3 modules)."""
    fig = F.lanes_figure(traced, compact=True)
    rows = [a.text for a in fig.layout.annotations if a.name == "row title"]
    assert rows == [f"stage {s}<br>module 0" for s in (2, 3, 4)]
    assert columns(fig) == 4 and sum("not yet" in a.text for a in fig.layout.annotations) == 3
    assert "columns = streams" in fig.layout.title.text
    wide = F.lanes_figure(traced)
    assert [a.text.split("<br>")[0] for a in wide.layout.annotations if a.name == "row title"] == [
        f"stream {k}" for k in range(4)
    ]


def test_empty_cells_of_a_wrapped_grid_draw_no_axes(traced):
    fig = F.fusion_matrices_figure(traced, compact=True)  # three modules in two columns: one empty cell
    assert fig.layout.xaxis4.visible is False and fig.layout.yaxis4.visible is False
    assert fig.layout.xaxis2.title.text == "source" and fig.layout.xaxis3.title.text == "source"


def test_wrap_html():
    assert D.wrap_html("one two three four", 9) == ["one two", "three", "four"]
    assert D.wrap_html("a<br>b", 40) == ["a", "b"]
    lines = D.wrap_html("plain then <b>bold words that go on</b> and <sup>small words here too</sup>", 14, 20)
    assert all(line.count("<") == 2 * line.count("</") for line in lines)  # every line closes what it opens
    assert lines[1].startswith("<b>") and any(line.startswith("<sup>") for line in lines)
    assert all(len(TAG.sub("", line)) <= 20 for line in lines)
    words = " ".join(TAG.sub(" ", line) for line in lines).split()
    assert " ".join(words) == "plain then bold words that go on and small words here too"
    assert D.wrap_html("a-very-long-word-without-spaces", 5) == ["a-very-long-word-without-spaces"]


@pytest.mark.parametrize(
    "width, small", [(0, False), (None, False), ("", False), ("abc", False), (356, True), (819, True), (900, False)]
)
def test_the_app_asks_for_compact_figures_below_the_compact_width(width, small):
    assert compact(width) is small
    assert F.COMPACT_WIDTH == 820

"""Every figure builder: a titled figure with labelled axes, explained colours, exact hover numbers, valid JSON."""

from __future__ import annotations

import json
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
from hrnet_explorer.costs import CostReport
from hrnet_explorer.predict import ClassScore, Prediction, topk_from_logits
from hrnet_explorer.zoo import WeightsSource

RANDOM = WeightsSource("random", "asked for")
HUB = WeightsSource("hub", "timm/hrnet_w18_small.ms_in1k", "hrnet_w18_small.ms_in1k")


@pytest.fixture(scope="module")
def traced(w18_small):
    torch.manual_seed(0)
    return trace(w18_small, torch.randn(1, 3, 224, 224))


@pytest.fixture(scope="module")
def prediction(traced):
    logits = traced.logits[0]
    return Prediction("hrnet_w18_small", RANDOM, "cpu", "fp32", (224, 224), topk_from_logits(logits, 5), logits)


@pytest.fixture(scope="module")
def crop():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))


def check(fig: go.Figure) -> dict:
    """The common contract; returns the figure as the JSON the browser gets."""
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text, "every figure has a title"
    data = json.loads(fig.to_json())
    for tr in data["data"]:
        kind = tr["type"]
        if kind == "image":
            continue  # the picture under an overlay: the heatmap on top carries the hover
        if kind == "sankey":
            assert "%{customdata" in tr["link"]["hovertemplate"] and tr["node"]["hovertemplate"]
            continue
        assert "hovertemplate" in tr and re.search(r"%\{[xyz]|%\{customdata", tr["hovertemplate"]), kind
        if kind == "heatmap":
            if "coloraxis" in tr:
                axis = data["layout"][tr["coloraxis"]]
                assert axis["colorbar"]["title"]["text"], "colour scale explained"
            elif tr.get("showscale", True):
                assert tr["colorbar"]["title"]["text"], "colour scale explained"
    return data


def axis_titles(data: dict) -> list[str]:
    return [v["title"]["text"] for k, v in data["layout"].items() if re.match(r"[xy]axis\d*$", k) and "title" in v]


def test_topk(prediction):
    data = check(F.topk_figure(prediction))
    bar = data["data"][0]
    assert bar["type"] == "bar" and len(bar["y"]) == 5
    probs = [s.probability for s in prediction.top]
    assert bar["x"] == pytest.approx(probs[::-1])  # best on top
    assert "RANDOM" in data["layout"]["title"]["text"]
    assert {"softmax probability", "class (index)"} <= set(axis_titles(data))
    assert "logit" in bar["hovertemplate"] and "%{x:.4%}" in bar["hovertemplate"]
    scores = [ClassScore(1, "goldfish", 0.9, 5.0)]
    assert "RANDOM" not in check(F.topk_figure(scores))["layout"]["title"]["text"]
    with pytest.raises(ValueError):
        F.topk_figure([])


def test_variants():
    reports = [
        CostReport("hrnet_w18_small", 13_187_464, 1_612_000_000, 13.19, 2_071_651_488, 1.285, 72.34, 90.68, "g", "m"),
        CostReport("hrnet_w18", 21_299_004, 4_318_000_000, 21.30, 5_547_205_500, 1.285, 76.76, 93.44, "a", "m"),
    ]
    data = check(F.variants_figure(reports, {"hrnet_w18_small": 120.0}, device="cpu"))
    names = [t["name"] for t in data["data"]]
    assert names[:4] == ["card", "measured", "card 'FLOPs'", "measured MACs"] and len(names) == 5
    assert data["data"][1]["customdata"] == [13_187_464, 21_299_004]  # exact counts on hover
    assert any("1.285" in a["text"] for a in data["layout"]["annotations"])  # the FLOPs artefact explained
    assert len(check(F.variants_figure(reports))["data"]) == 4  # no latency column without latencies


@pytest.mark.parametrize("method", ["l2", "mean", "pca"])
def test_lanes(traced, method):
    fig = F.lanes_figure(traced, method)
    data = check(fig)
    kinds = [t["type"] for t in data["data"]]
    assert len(kinds) == 2 + 3 + 4  # stage 2, 3, 4 modules have 2, 3, 4 streams
    assert set(kinds) == ({"image"} if method == "pca" else {"heatmap"})
    titles = [a["text"] for a in data["layout"]["annotations"]]
    assert any("module 0" in t for t in titles)
    assert sum("not yet" in t for t in titles) == 2 + 1  # streams that do not exist yet
    # every row is labelled in paper coordinates: the axes of an empty first cell (streams 2, 3) are not drawn
    rows = [a for a in data["layout"]["annotations"] if a.get("name") == "row title"]
    assert [a["text"].split("<br>")[0] for a in rows] == [f"stream {k}" for k in range(4)]
    assert all(a["xref"] == "paper" and a["x"] == 0 for a in rows)
    # stream 0 (56×56 at 224 px) keeps its resolution: not averaged down to look as coarse as stream 1
    first = {k: next(t for t in fig.data if f"fused{k} " in t.hovertemplate) for k in range(2)}
    assert [np.asarray(first[k].z).shape[:2] for k in range(2)] == [(56, 56), (28, 28)]
    if method != "pca":
        hm = data["data"][0]
        assert "stage2.module0.fused0" in hm["hovertemplate"]
        # input-pixel coordinates: every stream spans the 224 px input, whatever its resolution
        for t in fig.data:
            assert 0 < min(t.x) < max(t.x) < 224 and max(t.x) - min(t.x) > 150


def test_module_maps(traced):
    data = check(F.module_maps_figure(traced, 4, -1, "mean"))
    assert len(data["data"]) == 3 * 4  # branch, presum, fused × 4 streams
    with pytest.raises(ValueError, match="reduction"):
        F.module_maps_figure(traced, 4, 0, "max")


@pytest.mark.parametrize("measure", ["energy_share", "agreement", "relu_share"])
def test_fusion_matrices(traced, measure):
    data = check(F.fusion_matrices_figure(traced, measure))
    heat = data["data"]
    assert [len(h["text"]) for h in heat] == [2, 3, 4]
    last = traced.fusion(4, 0).matrix(measure, 0)
    assert heat[-1]["text"][0][1] == f"{float(last[0, 1]):.2f}"
    axis = data["layout"]["coloraxis"]
    if measure == "energy_share":
        assert (axis["cmin"], axis["cmax"]) == (0.0, 1.0)
    else:
        assert axis["cmid"] == 0.0 and axis["cmin"] == -axis["cmax"]
    single = check(F.fusion_matrix_figure(traced.fusion(3, 0), measure))
    assert {"source stream (sends)", "target stream (receives)"} <= set(axis_titles(single))


def test_fusion_figures_draw_the_statistics_they_are_given(w18_small):
    """The app's Analysis computes every module's fusion statistics once and hands them to the figures; given a
    Trace instead, the figure reads the same statistics from it (no other maths), so both figures are the same."""
    torch.manual_seed(0)
    shared = trace(w18_small, torch.randn(1, 3, 224, 224), keep="all")
    from_trace = F.fusion_matrices_figure(shared, "agreement")
    F.sankey_figure(shared, "agreement")
    own = shared.clone()
    stats = {r.name: own.fusion(r.stage, r.index) for r in own.modules}
    given = F.fusion_matrices_figure(stats, "agreement", weights=shared.weights)
    assert json.loads(given.to_json()) == json.loads(from_trace.to_json())
    assert "RANDOM" in given.layout.title.text
    with pytest.raises(ValueError, match="at least one module"):
        F.fusion_matrices_figure({})


def test_sankey(traced):
    flows = fusion_flows(traced, "agreement")
    data = check(F.sankey_figure(flows, "agreement"))
    link = data["data"][0]["link"]
    nonzero = [f for f in flows if abs(f.weight) > 1e-9]
    assert len(link["value"]) == len(nonzero)
    assert all(v >= 0 for v in link["value"])  # widths are magnitudes; the sign is in the hover and colour
    negative = [c for f, c in zip(nonzero, link["color"], strict=True) if f.weight < 0]
    assert all(c.startswith("rgba(213,94,0") for c in negative)
    assert [c[3] for c in link["customdata"]] == pytest.approx([f.weight for f in nonzero])
    assert len(check(F.sankey_figure(traced))["data"][0]["link"]["value"]) == len(fusion_flows(traced))


def test_decomposition_is_additive(traced):
    dec = decompose(traced, 4, 0, 1)
    fig = F.decomposition_figure(dec, "mean", max_side=1000)
    data = check(fig)
    panels = [np.asarray(t.z, dtype=np.float64) for t in fig.data]
    assert len(panels) == 4 + 2
    np.testing.assert_allclose(sum(panels[:4]), panels[4], atol=1e-4)  # channel means add up to Σ
    assert "max |reconstruction error| 0.0e+00" in data["layout"]["title"]["text"]
    check(F.decomposition_figure(dec, "l2"))
    with pytest.raises(ValueError, match="additive"):
        F.decomposition_figure(dec, "pca")


@pytest.mark.parametrize("signed", [False, True])
def test_attribution(crop, signed):
    heat = torch.rand(224, 224) - (0.5 if signed else 0.0)
    result = PixelAttribution("ig", 1, heat[None, None].expand(1, 3, 224, 224), heat, 0.0123, {"n_steps": 32})
    data = check(F.attribution_figure(crop, result))
    assert [t["type"] for t in data["data"]] == ["image", "image", "heatmap"]
    assert data["data"][0]["source"].startswith("data:image/jpeg;base64,")
    axis = data["layout"]["coloraxis"]
    assert (axis.get("cmid") == 0.0) == signed
    title = data["layout"]["title"]["text"]
    assert "Integrated Gradients" in title and "goldfish" in title and "1.23e-02" in title and "n_steps=32" in title


@pytest.mark.parametrize("signed", [False, True])
def test_attribution_scale_ignores_an_outlier_pixel(crop, signed):
    """One huge pixel must not scale the rest to blank: the colour scale ends at the 98th percentile of |map|."""
    heat = torch.rand(224, 224) - (0.5 if signed else 0.0)
    heat[10, 10] = 1e4
    result = PixelAttribution("ig", 1, heat[None, None].expand(1, 3, 224, 224), heat, None, {})
    axis = F.attribution_figure(crop, result).layout.coloraxis
    clipped = float(np.percentile(heat.abs().numpy(), 98))
    assert axis.cmax == pytest.approx(clipped, rel=1e-5) and axis.cmax < 1.0
    assert (axis.cmin == pytest.approx(-clipped, rel=1e-5)) if signed else axis.cmin == 0.0
    assert "98th" in axis.colorbar.title.text and "max 1e+04" in axis.colorbar.title.text


def test_gradcam(crop):
    maps = [torch.rand(224, 224) * (k + 1) for k in range(4)]
    raw = [torch.rand(56 // 2**k, 56 // 2**k) for k in range(4)]
    data = check(F.gradcam_figure(crop, StreamGradCAM(207, 4, 0, maps, raw)))
    assert sum(t["type"] == "heatmap" for t in data["data"]) == 4
    assert "stream 3 (1/32, 7×7)" in data["layout"]["annotations"][3]["text"]
    # default: each stream on its own scale, so a stream 100× weaker than the next is not left dark
    ends = [data["layout"]["coloraxis" + ("" if k == 0 else str(k + 1))]["cmax"] for k in range(4)]
    assert ends == pytest.approx([float(np.percentile(m.numpy(), 98)) for m in maps])
    assert [t.get("coloraxis") for t in data["data"] if t["type"] == "heatmap"] == [
        "coloraxis",
        "coloraxis2",
        "coloraxis3",
        "coloraxis4",
    ]
    assert "own colour scale" in data["layout"]["title"]["text"]
    shared = check(F.gradcam_figure(crop, StreamGradCAM(207, 4, 0, maps, raw), shared_scale=True))
    every = np.concatenate([m.numpy().ravel() for m in maps])
    assert shared["layout"]["coloraxis"]["cmax"] == pytest.approx(float(np.percentile(every, 98)))  # one scale
    assert {t["coloraxis"] for t in shared["data"] if t["type"] == "heatmap"} == {"coloraxis"}
    assert "one shared colour scale" in shared["layout"]["title"]["text"]


def test_stream_shares():
    shares = StreamShares(207, torch.tensor([0.5, 0.25, -0.05, 0.3]), 3.2, 0.1, 1e-3, 32)
    fig = F.stream_shares_figure(shares)
    data = check(fig)
    assert list(fig.data[0].y) == pytest.approx([0.5, 0.25, -0.05, 0.3])
    assert "golden retriever" in data["layout"]["title"]["text"]
    assert {"stream (resolution)", "share of the logit"} <= set(axis_titles(data))


def test_knockout():
    top = [ClassScore(3, "tiger shark", 0.4, 2.0)]
    results = [
        KnockoutResult(1, "stream 0", 4.0, 2.5, 0.8, 0.3, top),
        KnockoutResult(1, "edge 3→0 in stage4.module0", 4.0, 4.5, 0.8, 0.85, top),
    ]
    data = check(F.knockout_figure(results))
    logit, prob = data["data"]
    assert logit["x"] == pytest.approx([0.5, -1.5]) and prob["x"] == pytest.approx([5.0, -50.0])
    assert logit["marker"]["color"] == [F.POSITIVE_COLOR, F.NEGATIVE_COLOR]
    assert logit["customdata"][1][4] == "tiger shark (40.0%)"
    with pytest.raises(ValueError):
        F.knockout_figure([])


def test_compare(prediction):
    other = Prediction("hrnet_w18", HUB, "cpu", "fp32", (224, 224), prediction.top[:3], prediction.logits)
    data = check(F.compare_figure([prediction, other], {"hrnet_w18_small": 80.0}))
    assert [t["type"] for t in data["data"]] == ["bar", "bar"]
    titles = [a["text"] for a in data["layout"]["annotations"]]
    assert titles == ["w18_small · 80 ms · RANDOM", "w18"]
    # on a phone the details get a line of their own, whatever the measured time's width
    compact = check(F.compare_figure([prediction, other], {"hrnet_w18_small": 12345.0, "hrnet_w18": 7.0}, compact=True))
    assert [a["text"] for a in compact["layout"]["annotations"]] == ["w18_small<br>12345 ms · RANDOM", "w18<br>7 ms"]


def test_attribution_figures_warn_about_random_weights(crop):
    heat = torch.rand(224, 224)
    pixels = PixelAttribution("saliency", 1, heat[None, None].expand(1, 3, 224, 224), heat, None, {})
    cam = StreamGradCAM(207, 4, 0, [heat] * 4, [heat[:7, :7]] * 4)
    shares = StreamShares(207, torch.tensor([0.5, 0.25, -0.05, 0.3]), 3.2, 0.1, 1e-3, 32)
    ko = [KnockoutResult(1, "stream 0", 4.0, 2.5, 0.8, 0.3, [])]
    for weights, loud in ((RANDOM, True), (HUB, False), (None, False)):
        figs = [
            F.attribution_figure(crop, pixels, weights=weights),
            F.gradcam_figure(crop, cam, weights=weights),
            F.stream_shares_figure(shares, weights=weights),
            F.knockout_figure(ko, weights=weights),
        ]
        assert all(("RANDOM weights" in f.layout.title.text) == loud for f in figs)


def test_trace_and_trust_figures_warn_about_random_weights(w18_small, traced):
    """Issue 26, item 13: the module, Sankey, decomposition, Trust-curve and randomisation figures left the warning
    out. A figure of a Trace takes the trace's weights unless told; the others only what they are given."""
    from hrnet_explorer import attribution as A

    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    curves = A.deletion_insertion(w18_small, x, torch.rand(64, 64), 1, steps=4)
    test = A.randomisation_test(w18_small, x, "saliency", 1, layers=("head",))
    dec = decompose(traced, 4, 0, 1)
    flows = fusion_flows(traced, "energy_share")
    assert traced.weights.is_random
    for weights, loud in ((RANDOM, True), (HUB, False)):
        figs = {
            "lanes": F.lanes_figure(traced, weights=weights),
            "module": F.module_maps_figure(traced, 4, 0, weights=weights),
            "sankey": F.sankey_figure(flows, weights=weights),
            "sankey of a trace": F.sankey_figure(traced, weights=weights),
            "sankey titled": F.sankey_figure(flows, title="flows", weights=weights),
            "decomposition": F.decomposition_figure(dec, weights=weights),
            "curves": F.faithfulness_figure([curves], weights=weights),
            "randomisation": F.randomisation_figure([test], weights=weights),
        }
        for name, fig in figs.items():
            assert ("RANDOM weights" in fig.layout.title.text) == loud, (name, weights)
    # without weights= a trace's figures say its own (random here); results carry none, so nothing is claimed
    assert all(
        "RANDOM weights" in f.layout.title.text
        for f in (F.lanes_figure(traced), F.module_maps_figure(traced, 4, 0), F.sankey_figure(traced))
    )
    assert "RANDOM weights" not in F.sankey_figure(flows).layout.title.text
    assert "RANDOM weights" not in F.randomisation_figure([test]).layout.title.text


def test_lanes_title_names_the_model(traced):
    """Issue 26, item 14: the lab model's lanes said w18_small (its architecture, the trace's variant)."""
    assert F.lanes_figure(traced).layout.title.text.startswith("w18_small as parallel lanes")
    assert F.lanes_figure(traced, name="lab").layout.title.text.startswith("lab as parallel lanes")


def test_bar_labels_have_room_beyond_negative_bars():
    """Labels sit outside the bars, and the value axis leaves room for them past both ends (a label left of a
    negative bar used to run into the tick labels, or be clipped)."""
    shares = F.stream_shares_figure(StreamShares(207, torch.tensor([0.5, 0.25, -0.4, 0.3]), 3.2, 0.1, 1e-3, 32))
    lo, hi = shares.layout.yaxis.range
    assert shares.data[0].textposition == "outside" and lo < -0.4 - 0.2 and hi > 0.5 + 0.2
    top = [ClassScore(3, "tiger shark", 0.4, 2.0)]
    ko = F.knockout_figure([KnockoutResult(1, "stream 0", 4.0, 5.0, 0.8, 0.9, top)])  # both deltas > 0
    for axis, value in ((ko.layout.xaxis, -1.0), (ko.layout.xaxis2, -10.0)):
        assert axis.range[0] == 0 and axis.range[1] > -value * 1.3  # "+1" has room right of its bar
    ko = F.knockout_figure([KnockoutResult(1, "stream 0", 4.0, 2.5, 0.8, 0.3, top)])
    assert ko.layout.xaxis.range[0] < -1.5 * 1.3 and all(t.cliponaxis is False for t in ko.data)


def test_long_class_names_are_cut_at_a_word_with_an_ellipsis():
    long = "a very long class name, with words, that goes on and on past forty characters"
    fig = F.topk_figure([ClassScore(0, long, 0.9, 3.0)])
    label = fig.data[0].y[0]
    assert label.endswith("… (0)") and len(label) <= 40 + 4
    kept = label.removesuffix("… (0)")
    assert long.startswith(kept) and not long[len(kept)].isalnum()  # cut between words


def test_attribution_settings_subtitle_wraps(crop):
    heat = torch.rand(224, 224)
    settings = {f"setting_{k}": f"value_{k}" * 3 for k in range(12)}
    result = PixelAttribution("ig", 1, heat[None, None].expand(1, 3, 224, 224), heat, None, settings)
    fig = F.attribution_figure(crop, result)
    subtitle = re.findall(r"<sup>(.*?)</sup>", fig.layout.title.text)
    assert len(subtitle) > 2 and all(len(line) <= 90 for line in subtitle)
    assert " ".join(subtitle).replace(", ", ",").count("=") == 12 and fig.layout.margin.t > 90


def test_one_table_of_names_and_colours_without_plotly():
    """display.py names every method and measure the core knows and needs no plotly (the reports of analyze and the
    app's menus read it); the figures show its colours and names."""
    import subprocess
    import sys

    from hrnet_explorer import display
    from hrnet_explorer.attribution import PIXEL_METHODS, RANDOM_MAP
    from hrnet_explorer.fusion import MEASURES

    assert set(display.METHODS) == {*PIXEL_METHODS, RANDOM_MAP}
    assert list(display.MEASURE_LABELS) == list(display.MEASURE_NAMES) == list(MEASURES)
    assert F.STREAM_COLORS is display.STREAM_COLORS and F.METHOD_LABELS is display.METHOD_LABELS
    assert len(set(display.METHOD_COLORS.values())) == len(display.METHODS)  # every method its own colour
    code = "import sys, hrnet_explorer.display; assert 'plotly' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

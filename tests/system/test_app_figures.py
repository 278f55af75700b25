"""The app's figures say what they show (issue 26): Grad-CAM's zero streams and scale ends, Compare's top-k panels."""

from __future__ import annotations

import dataclasses

import torch

from hrnet_explorer import attribution as A
from hrnet_explorer import figures as F
from hrnet_explorer.images import display_crop, read_image
from hrnet_explorer.ui import ASSETS


def panel_titles(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations if a.text and a.text.startswith("stream ")]


def test_gradcam_says_zero_for_a_stream_that_is_zero_and_gives_each_streams_end(w18_small):
    """A stream whose Grad-CAM is 0 everywhere said "scale 0 … 1", like a blank map on a real scale: it says "all
    zero"; the others give their own end, and on the shared scale each its own maximum (the colour bar's end was
    stream 0's alone)."""
    picture = read_image(str(ASSETS / "grace_hopper.jpg"))
    x = torch.nn.functional.interpolate(torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)), 64)
    cam = A.gradcam_streams(w18_small, x, stage=4, module=0)
    zeroed = dataclasses.replace(cam, maps=[torch.zeros_like(cam.maps[0]), *cam.maps[1:]])
    crop = display_crop(picture, w18_small.data_config, 64)
    own = panel_titles(F.gradcam_figure(crop, zeroed))
    assert own[0].endswith("<sub>all zero</sub>") and all("scale 0 …" in t for t in own[1:]), own
    shared = panel_titles(F.gradcam_figure(crop, zeroed, shared_scale=True))
    assert shared[0].endswith("<sub>all zero</sub>")
    for title, m in zip(shared[1:], zeroed.maps[1:], strict=True):
        assert title.endswith(f"<sub>max {float(m.abs().max()):.3g}</sub>") and float(m.max()) > 0, title


def test_compare_names_the_random_panels_and_keeps_each_number_in_its_panel(w18_small):
    """Compare with the lab model beside random w18_small: the title's warning names the random panel only (it
    said "RANDOM weights" of every panel); a bar near the axis' end carries its number inside (outside, "100.0 %"
    ran into the next panel's class names), a short one beside it."""
    from hrnet_explorer.predict import predict
    from hrnet_explorer.zoo import load_model

    lab = load_model("lab", device="cpu")
    image = str(ASSETS / "lab_0008_ring.png")
    fig = F.compare_figure([predict(lab, image), predict(w18_small, image)])
    assert "RANDOM weights (w18_small): that panel is meaningless" in fig.layout.title.text
    best = max(max(bar.x) for bar in fig.data)
    for bar in fig.data:
        for p, where in zip(bar.x, bar.textposition, strict=True):
            assert where == ("inside" if p > 0.55 * best else "outside"), (p, where)
    assert "inside" in fig.data[0].textposition  # the lab model is sure of its ring
    both_random = F.compare_figure([predict(w18_small, image), predict(w18_small, image)])
    assert "RANDOM weights: meaningless" in both_random.layout.title.text

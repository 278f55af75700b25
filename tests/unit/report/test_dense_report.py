"""The image report of a dense model: the app's Pixels view (the same numbers as the tab) in one page and a manifest."""

from __future__ import annotations

import json

import pytest

from hrnet_explorer import load_model
from hrnet_explorer.dense.view import pixels_view
from hrnet_explorer.errors import InputError, NotFoundError
from hrnet_explorer.report import image_report
from hrnet_explorer.report.page import esc
from hrnet_explorer.zoo import ASSETS

RING = ASSETS / "lab_0008_ring.png"


@pytest.fixture(scope="module")
def lab_seg():
    return load_model("lab-seg", device="cpu")


def test_the_page_and_manifest_hold_the_pixels_view(lab_seg, tmp_path):
    steps = []
    paths = image_report(RING, out=tmp_path / "ring.html", loaded=lab_seg, progress=lambda d, t: steps.append((d, t)))
    assert set(paths) == {"html", "json"} and steps[-1] == (3, 3)
    html = paths["html"].read_text()
    for heading in ("Every pixel's class", "The classes", "ring: its pixels split by stream", "removed at the head"):
        assert esc(heading) in html
    assert html.count('class="plotly-graph-div"') == 2 and str(tmp_path) not in html
    manifest = json.loads(paths["json"].read_text())
    view = pixels_view(lab_seg, RING)  # what the app's Pixels tab shows
    assert manifest["split"]["label"] == view.split.label == "ring"
    assert manifest["split"]["score"] == pytest.approx(view.split.score, rel=1e-6)
    assert sum(manifest["split"]["parts"]) == pytest.approx(manifest["split"]["score"], rel=1e-5)
    assert len(manifest["knockouts_at_head"]) == 4 and manifest["weights"]["detail"] == "the checkpoint of lab-seg"
    assert [c["name"] for c in manifest["classes"]] == list(view.segmentation.fractions())


def test_a_chosen_class_and_bad_requests(lab_seg, tmp_path):
    with pytest.raises(NotFoundError, match="No class 'goldfish'"):
        pixels_view(lab_seg, RING, "goldfish")
    with pytest.raises(InputError, match="labels no pixel"):
        pixels_view(lab_seg, RING, "disk")
    with pytest.raises(InputError, match="Pixels view"):
        image_report(RING, out=tmp_path / "r.html", loaded=lab_seg, trust=True)

"""``hrnet-explorer segment``: every pixel's class by a dense model, the mask as a palette PNG, and ``--explain CLASS``:
that class's pixels split by stream."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from hrnet_explorer.cli import main
from hrnet_explorer.zoo import ASSETS

RING = ASSETS / "lab_0008_ring.png"


def test_segment_prints_the_classes_and_writes_the_mask(tmp_path, capsys):
    out = tmp_path / "mask.png"
    assert main(["segment", str(RING), "--variant", "lab-seg", "--device", "cpu", "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    width, height = Image.open(RING).size
    assert result["model"] == "lab-seg" and result["size"] == [height, width] and result["mask"] == str(out)
    names = [c["name"] for c in result["classes"]]
    assert names[:2] == ["background", "ring"] and result["classes"][1]["index"] == 9
    mask = Image.open(out)
    assert mask.mode == "P" and mask.size == (width, height)
    assert set(np.unique(np.asarray(mask)).tolist()) >= {0, 9}


def test_segment_text_output(capsys):
    assert main(["segment", str(RING), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "lab-seg" in text and "ring" in text and "file:" in text


def test_segment_refuses_a_classifier_in_one_line(capsys):
    assert main(["segment", str(RING), "--variant", "hrnet_w18_small", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "segment needs a dense model" in err and "\n" not in err


def test_segment_refuses_a_mask_path_that_is_not_png(tmp_path, capsys):
    assert main(["segment", str(RING), "--device", "cpu", "--out", str(tmp_path / "mask.jpg")]) == 2
    assert "use a .png path" in capsys.readouterr().err


def test_segment_explains_a_class_by_stream(capsys):
    args = ["segment", str(RING), "--device", "cpu", "--ig-steps", "8", "--explain"]
    assert main([*args, "ring", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    ring = next(c for c in result["classes"] if c["name"] == "ring")
    explained, (h, w) = result["explain"], result["size"]
    assert explained["pixels"] == round(ring["fraction"] * h * w)  # the asset is seen at its own size
    split, ig = explained["split"], explained["ig"]
    assert split["label"] == ig["label"] == "ring" and len(split["parts"]) == len(ig["shares"]) + 1 == 5
    assert sum(split["parts"]) == pytest.approx(split["score"], rel=1e-5) and split["error"] < 1e-5
    assert sum(ig["shares"]) == pytest.approx(ig["score"] - ig["baseline_score"], rel=0.05)
    assert main([*args, "9"]) == 0  # the same class by its index, as explain --target takes one
    text = capsys.readouterr().out
    assert "every pixel labelled 'ring'" in text and "exact part" in text and "bias" in text


@pytest.mark.parametrize(("cls", "words"), [("goldfish", "'goldfish' matches 0 classes"), ("12", "No class 12")])
def test_segment_explain_refuses_an_unknown_class_in_one_line(capsys, cls, words):
    assert main(["segment", str(RING), "--device", "cpu", "--explain", cls]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err


@pytest.mark.parametrize("command", ["predict", "trace", "explain", "analyze"])
def test_classifier_commands_point_a_dense_model_to_segment(tmp_path, capsys, command):
    """A dense model given to a classifier's command: one line naming its task and segment, not a shape error."""
    extra = ["--out", str(tmp_path / "run"), "-q"] if command == "analyze" else []
    source = "lab:2" if command == "analyze" else str(RING)
    assert main([command, source, "--variant", "lab-seg", "--device", "cpu", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "segmentation model" in err and "hrnet-explorer segment" in err and "\n" not in err


def test_report_of_a_dense_model_is_its_pixels_view(tmp_path, capsys):
    page = tmp_path / "ring.html"
    assert main(["report", str(RING), "--variant", "lab-seg", "--device", "cpu", "--out", str(page), "-q"]) == 0
    assert capsys.readouterr().out.split() == ["wrote", str(page), "wrote", str(tmp_path / "ring.json")]
    assert "ring: its pixels split by stream" in page.read_text()
    assert main(["report", str(RING), "--variant", "lab-seg", "--device", "cpu", "--out", str(page), "--trust"]) == 2
    assert "Pixels view" in capsys.readouterr().err

"""``hrnet-explorer segment``: every pixel's class by a dense model, the mask as a palette PNG."""

from __future__ import annotations

import json

import numpy as np
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

"""The dense lab: per-pixel labels from the lab task, the segmentation scores, `lab train --task segment`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hrnet_explorer.dense.card import load_dense
from hrnet_explorer.dense.metrics import boundary, boundary_f, score_labels
from hrnet_explorer.errors import InputError
from hrnet_explorer.lab import CLASSES, render
from hrnet_explorer.lab.segment import SEG_CLASSES, label_maps


def test_label_maps_are_the_evidence_masks_with_the_class_plus_one():
    batch = render(range(12), "test", 64)
    labels = label_maps(batch)
    assert ["background", *CLASSES] == SEG_CLASSES
    for i in range(12):
        inside = labels[i][batch.masks[i]]
        assert inside.numel() > 0 and bool((inside == batch.labels[i] + 1).all())
        assert bool((labels[i][~batch.masks[i]] == 0).all())


def _square(size: int = 32, lo: int = 8, hi: int = 24, label: int = 1) -> torch.Tensor:
    out = torch.zeros(size, size, dtype=torch.long)
    out[lo:hi, lo:hi] = label
    return out


def test_perfect_labels_score_one_and_a_shifted_square_loses_boundary_f_first():
    ref = _square()
    perfect = score_labels(ref, ref, ["bg", "a"])
    assert perfect.miou == 1.0 and perfect.boundary_f == 1.0 and perfect.interior_miou == 1.0
    near = score_labels(torch.roll(ref, 2, 1), ref, ["bg", "a"])  # within the 2-px tolerance
    assert near.boundary_f == 1.0 and near.miou < 1.0
    far = score_labels(torch.roll(ref, 4, 1), ref, ["bg", "a"])
    assert far.boundary_f < 0.75 and far.miou > 0.7
    # IoU by hand: 16×16 squares overlapping 16×12.
    assert math.isclose(far.per_class["a"], 192 / (256 + 256 - 192))


def test_boundary_is_the_pixels_with_another_label_next_to_them():
    edge = boundary(_square()[None])[0]
    assert int(edge.sum()) == (16 * 16 - 14 * 14) + (18 * 18 - 16 * 16)  # the square's own edge ring + the one outside
    assert math.isnan(float(boundary_f(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))[0]))
    assert float(boundary_f(_square()[None], torch.zeros(1, 32, 32, dtype=torch.long))[0]) == 0.0


def test_scores_refuse_mismatched_or_out_of_range_labels():
    with pytest.raises(InputError, match="one shape"):
        score_labels(torch.zeros(4, 4), torch.zeros(4, 5), ["bg"])
    with pytest.raises(InputError, match="outside 0..1"):
        score_labels(_square(label=2), _square(), ["bg", "a"])


def test_lab_train_task_segment_writes_a_dense_model_and_its_card(tmp_path, capsys):
    from hrnet_explorer.cli import main

    out = tmp_path / "seg"
    args = ["lab", "train", "--task", "segment", "--out", str(out), "--steps", "2", "--batch-size", "2"]
    main([*args, "--size", "64", "--eval-n", "2", "--device", "cpu", "--quiet"])
    assert "held-out mIoU" in capsys.readouterr().out
    card = json.loads((out / "lab-seg.json").read_text())
    assert card["task"] == "segmentation" and card["class_names"] == SEG_CLASSES
    assert card["training"]["steps"] == 2 and card["training"]["config"]["size"] == 64
    assert 0 <= card["training"]["held_out"]["miou"] <= 1
    loaded = load_dense(out / "lab-seg.safetensors")
    with torch.no_grad():
        assert loaded.model(torch.zeros(1, 3, 64, 64)).shape == (1, 11, 64, 64)

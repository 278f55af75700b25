"""The dense lab: per-pixel labels from the lab task, the segmentation scores, `lab train --task segment`."""

from __future__ import annotations

import json
import math
from pathlib import Path

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


# ------------------------------------------------------------------------- the shipped dense lab model
# Thresholds from what was measured (hrnet_explorer/assets/lab-seg/eval.json, 1000 test images on an H200; and
# benchmarks/results/dense_truth_h200.json), each with a margin for the few images scored here on a CPU.


@pytest.fixture(scope="module")
def lab_seg():
    from hrnet_explorer import load_model

    return load_model("lab-seg", device="cpu")


def test_the_shipped_model_is_a_dense_lab_model_with_its_record(lab_seg):
    from hrnet_explorer.dense import DenseHRNet

    assert isinstance(lab_seg.model, DenseHRNet) and lab_seg.card["task"] == "segmentation"
    assert list(lab_seg.class_names) == SEG_CLASSES and lab_seg.architecture == "hrnet_w18_small"
    record = lab_seg.card["training"]
    assert record["device"] == "NVIDIA H200" and record["held_out"]["miou"] >= 0.99  # measured 0.994 on 500
    shipped = lab_seg.weights.detail
    assert shipped.endswith("lab-seg.safetensors") and Path(shipped).stat().st_size <= 30 * 2**20


def test_the_shipped_model_labels_pixels_as_the_task_says(lab_seg):
    from hrnet_explorer.lab.segment import evaluate_segmentation

    c = lab_seg.data_config
    conditions = ("clean", "blurred", "evidence_removed")
    result = evaluate_segmentation(lab_seg.model, c["mean"], c["std"], 20, conditions=conditions, batch_size=10)
    clean = result.conditions["clean"]
    assert clean.miou >= 0.98 and min(clean.per_class.values()) >= 0.95  # measured 0.994, every class ≥ 0.985
    assert clean.boundary_f >= 0.98  # measured 1.000
    blurred = result.family("blurred")
    assert blurred["fine"] <= 0.05 and blurred["coarse"] >= 0.4  # measured 0.000 and 0.636: fine lost, coarse kept
    removed = result.conditions["evidence_removed"]
    assert removed.predicted_fraction["background"] >= 0.99  # measured 1.000: nothing left but background


def test_the_head_split_of_the_shipped_model_is_exact(lab_seg):
    from hrnet_explorer.dense import dense_trace, head_split

    batch = render(range(2), "test", 224)
    c = lab_seg.data_config
    x = (batch.images - torch.tensor(c["mean"]).view(1, 3, 1, 1)) / torch.tensor(c["std"]).view(1, 3, 1, 1)
    split = head_split(lab_seg, dense_trace(lab_seg, x))
    assert split.presum_error < 1e-5 and split.scores_error < 1e-5  # measured ~1e-6 in fp32 on a CPU


def test_stream_0_carries_boundaries_at_the_head_and_fine_classes_through_fusion(lab_seg):
    from hrnet_explorer.lab.segment_truth import knockout_truth

    result = knockout_truth(lab_seg, 10)
    rows = {(r["stream"], r["at"]): r for r in result["knockouts"]}
    head, fusion = rows[(0, "head")], rows[(0, "fusion")]
    # Measured on 500: at the head, boundary F −0.28 vs interior mIoU −0.03; its fuse edges, fine −0.83 vs coarse −0.04.
    assert head["boundary_f_drop"] > 0.15 and head["boundary_f_drop"] > 4 * head["interior_miou_drop"]
    assert fusion["fine_iou_drop"] > 0.5 and fusion["coarse_iou_drop"] < 0.15
    # Stream 3 at the head is the coarse classes' (measured −0.49 coarse vs −0.08 fine).
    assert rows[(3, "head")]["coarse_iou_drop"] > 3 * rows[(3, "head")]["fine_iou_drop"]


def test_stream_0_s_share_is_largest_at_fine_class_pixels(lab_seg):
    from hrnet_explorer.lab.segment_truth import share_truth

    fam = share_truth(lab_seg, 10, batch_size=5)["families"]
    # Measured on 200: stream 0's ReLU share 0.42 at fine pixels, 0.29 at coarse, 0.13 on background.
    assert fam["fine"]["relu_share"][0] > fam["coarse"]["relu_share"][0] + 0.05
    assert fam["fine"]["relu_share"][0] > fam["background"]["relu_share"][0] + 0.1
    assert fam["coarse"]["score_fraction"][3] > 0.4  # stream 3: 0.53 of the coarse classes' score (measured)


def test_a_region_s_pixel_attribution_stays_mostly_inside_it(lab_seg):
    from hrnet_explorer.dense.explain import region_pixels
    from hrnet_explorer.dense.regions import Region

    c = lab_seg.data_config
    for index in (0, 5):  # a fine and a coarse sample
        batch = render([index], "test", 224)
        x = (batch.images - torch.tensor(c["mean"]).view(1, 3, 1, 1)) / torch.tensor(c["std"]).view(1, 3, 1, 1)
        region = Region.of_mask(batch.masks[0], (224, 224), "evidence")
        ig = region_pixels(lab_seg, x, region, int(batch.labels[0]) + 1, n_steps=16)
        # Measured on 100: IG's mass in the region 0.74 (fine) and 0.44 (coarse) for areas of 0.07-0.08.
        assert ig.mass_in_region > 3 * ig.area_fraction, (index, ig.mass_in_region, ig.area_fraction)

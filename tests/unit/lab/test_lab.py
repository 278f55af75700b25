"""The resolution lab: the task's construction, training on CPU, and the shipped model's claims checked.

Thresholds on the shipped checkpoint come from its measured scores (hrnet_explorer/assets/lab/eval.json, 2,000 test
images on an H200; the first 100–200 here on CPU): clean 100 % (100 %); blurred: fine 0.4 % (0 %), coarse 90.6 %
(94 %); blurred inside the mask: fine 0 % (0 %), coarse 99.6 % (100 %); evidence removed 10 % (10 %; chance 10 %);
background replaced 97.2 % (96 %). The model is the one retrained on the task as fixed in issue 25; the one
before it kept the coarse family at 100 % blurred and 99.6 % on a new background (see assets/lab/README.md).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from hrnet_explorer import cli, load_model
from hrnet_explorer.dense.card import load_dense
from hrnet_explorer.lab import BLUR_SIGMA, CLASSES, FAMILY, LabDataset, gaussian_blur, render, sample
from hrnet_explorer.lab import train as train_module
from hrnet_explorer.lab.evaluate import CONDITIONS, condition_batch, evaluate
from hrnet_explorer.lab.segment import SEG_CLASSES
from hrnet_explorer.lab.segment_train import LAB_SEG, train_segment
from hrnet_explorer.lab.train import TrainConfig, train
from hrnet_explorer.zoo import ASSETS, LAB_DIR

CHANCE = 1 / len(CLASSES)


# The task -------------------------------------------------------------------------------------------


def test_classes_and_families():
    assert len(CLASSES) == 10 and len(set(CLASSES)) == 10
    assert sorted(FAMILY.values()).count("fine") == 5 and sorted(FAMILY.values()).count("coarse") == 5


def test_samples_are_deterministic_and_balanced():
    a, b = sample(13, "test"), sample(13, "test")
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and np.array_equal(a.mask, b.mask)
    assert a.label == 3 and a.family == FAMILY[CLASSES[3]] and a.image.size == (224, 224)
    assert not np.array_equal(np.asarray(sample(13, "train").image), np.asarray(a.image))  # splits differ
    batch = render(range(40))
    assert batch.labels.tolist() == [i % 10 for i in range(40)]
    # one batch renders exactly what the single samples are
    assert torch.equal(torch.from_numpy(np.array(sample(7).image)).permute(2, 0, 1).float() / 255, batch.images[7])


def test_evidence_region_is_inside_the_image_and_of_class_independent_size():
    batch = render(range(200))
    masks = batch.masks
    assert not masks[:, 0, :].any() and not masks[:, -1, :].any() and not masks[:, :, 0].any()
    area = masks.float().mean((1, 2))
    assert bool((area > 0.02).all()) and bool((area < 0.25).all())
    by_class = torch.stack([area[batch.labels == c].mean() for c in range(10)])
    # equal-area shapes, sizes from one distribution: no class is more than 35 % off the mean area
    assert float((by_class / area.mean() - 1).abs().max()) < 0.35, by_class


def test_only_the_evidence_region_differs_from_the_clutter_beneath():
    clean = render(range(20))
    removed = condition_batch(range(20), "evidence_removed")
    outside = ~clean.masks.unsqueeze(1).expand_as(clean.images)
    assert torch.equal(clean.images[outside], removed.images[outside])
    inside = clean.masks.unsqueeze(1).expand_as(clean.images)
    assert (clean.images[inside] - removed.images[inside]).abs().mean() > 0.1
    replaced = condition_batch(range(20), "background_replaced")
    assert (replaced.images[outside] - clean.images[outside]).abs().mean() > 0.05  # new clutter
    assert (replaced.images[inside] - clean.images[inside]).abs().mean() < 0.06  # same evidence, new pixel noise
    assert torch.equal(replaced.masks, clean.masks) and torch.equal(replaced.labels, clean.labels)


def test_blur_removes_gratings_of_the_fine_classes_and_keeps_coarse_shapes():
    x = torch.arange(64, dtype=torch.float32) + 0.5
    grating = torch.cos(2 * math.pi * x / 5.0).view(1, 1, 1, 64).expand(1, 1, 64, 64)  # the longest period
    blurred = gaussian_blur(grating, BLUR_SIGMA)
    assert blurred[..., 20:44, 20:44].abs().max() < 2e-3  # exp(-2π²σ²/P²) = 8e-4
    step = (x.view(1, 1, 1, 64) > 32).float().expand(1, 1, 64, 64)
    assert torch.allclose(gaussian_blur(step)[..., :, 45:], torch.ones(1, 1, 64, 19), atol=1e-3)  # 40 px shapes stay
    # On real samples, what the region adds to the clutter (same noise in both) has high-frequency energy
    # for the fine classes only, and the blur takes it away (away from the region's edge).
    batch, removed = render(range(40)), render(range(40), evidence=False)
    added = batch.images - removed.images
    inner = -torch.nn.functional.max_pool2d(-batch.masks.float().unsqueeze(1), 21, 1, 10)[:, 0] > 0.5  # eroded 10 px
    fine = batch.labels < 5

    def detail(images):
        energy = (images - gaussian_blur(images)).pow(2).mean(1)
        return torch.stack([energy[i][inner[i]].mean() for i in range(40)])

    coarse = detail(added)[~fine]
    coarse = coarse[~coarse.isnan()]  # thin rings and crosses have no pixel 10 px inside their edge
    assert len(coarse) >= 10 and float(detail(added)[fine].min()) > 20 * float(coarse.max())
    assert float(detail(gaussian_blur(added))[fine].max()) < 0.01 * float(detail(added)[fine].min())


def test_bad_lab_requests_are_clear_errors():
    with pytest.raises(ValueError, match="split"):
        render([0], "validation")
    with pytest.raises(ValueError, match="32..1024"):
        render([0], size=16)
    with pytest.raises(ValueError, match="non-negative"):
        render([-1])
    with pytest.raises(TypeError, match="int"):
        sample("3")
    with pytest.raises(ValueError, match="condition"):
        condition_batch([0], "sharpened")
    with pytest.raises(ValueError, match="n ≥ 1"):
        LabDataset(0)


def test_dataset_items_and_transform():
    data = LabDataset(12, "val", size=64)
    image, label = data[11]
    assert len(data) == 12 and isinstance(image, Image.Image) and image.size == (64, 64) and label == 1
    tensors = LabDataset(3, transform=lambda im: torch.from_numpy(np.array(im)).permute(2, 0, 1))
    assert tensors[2][0].shape == (3, 224, 224)
    with pytest.raises(IndexError):
        data[12]


def test_shipped_examples_are_lab_samples():
    """The app's lab examples are the samples: the generator has not drifted from what the model learned.

    Exact up to float rounding: transcendental functions round differently across thread counts and
    devices, which moves a rare value across an 8-bit level (1 of 150,528 seen)."""
    examples = sorted(ASSETS.glob("lab_*.png"))
    assert len(examples) >= 2
    for path in examples:
        index = int(path.name.split("_")[1])
        s = sample(index)
        assert path.stem.endswith(s.class_name)
        difference = np.abs(np.asarray(Image.open(path).convert("RGB"), int) - np.asarray(s.image, int))
        assert difference.max() <= 1 and np.count_nonzero(difference) <= 20, path


# Training ---------------------------------------------------------------------------------------------

TINY = TrainConfig(steps=4, batch_size=6, size=64, eval_n=20, save_every=2, warmup_steps=1)


def test_training_writes_a_checkpoint_and_card_that_load_model_reads(tmp_path):
    card = train(tmp_path, TINY, device="cpu")
    assert (tmp_path / "lab.safetensors").is_file() and json.loads((tmp_path / "lab.json").read_text()) == card
    record = card["training"]
    assert record["steps"] == 4 and record["images_seen"] == 24 and record["device"].startswith("cpu")
    assert set(record["held_out"]["family"]) == {"fine", "coarse"} and len(record["held_out"]["per_class"]) == 10
    assert {"torch", "timm", "hrnet_explorer"} <= set(record["versions"])
    assert all(v.dtype in (torch.float16, torch.int64) for v in load_file(tmp_path / "lab.safetensors").values())
    loaded = load_model("hrnet_w18_small", weights=str(tmp_path / "lab.safetensors"), device="cpu", cache=False)
    assert not loaded.weights.is_random and list(loaded.class_names) == CLASSES
    assert loaded.data_config["input_size"] == (3, 64, 64)


def test_training_resumes_where_it_was_interrupted(tmp_path, monkeypatch):
    whole = train(tmp_path / "whole", TINY, device="cpu")
    calls = {"n": 0}
    real_render = train_module.render

    def interrupted_render(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after two steps, i.e. right after the state of step 2 was saved
            raise KeyboardInterrupt
        return real_render(*args, **kwargs)

    monkeypatch.setattr(train_module, "render", interrupted_render)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "resumed", TINY, device="cpu")
    assert torch.load(tmp_path / "resumed" / "train_state.pt", weights_only=True)["step"] == 2
    monkeypatch.setattr(train_module, "render", real_render)
    resumed = train(tmp_path / "resumed", TINY, device="cpu")
    a, b = load_file(tmp_path / "whole" / "lab.safetensors"), load_file(tmp_path / "resumed" / "lab.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # bit-identical to the uninterrupted run
    assert resumed["training"]["held_out"] == whole["training"]["held_out"]
    with pytest.raises(ValueError, match="another config"):
        train(tmp_path / "resumed", TrainConfig(**{**TINY.__dict__, "lr": 1e-3}), device="cpu")


def test_dense_training_shares_the_loop_and_resumes_bit_identically(tmp_path, monkeypatch):
    """lab train --task segment: the same loop (lab.train.fit) with a per-pixel loss; interrupted and resumed, it
    ships the same weights as the run left alone."""
    whole = train_segment(tmp_path / "whole", TINY, device="cpu")
    assert whole["training"]["steps"] == 4 and set(whole["training"]["held_out"]) >= {"miou", "boundary_f"}
    dense = load_dense(tmp_path / "whole" / f"{LAB_SEG}.safetensors", "cpu")
    assert dense.model(torch.zeros(1, 3, 64, 64)).shape[1] == len(SEG_CLASSES)
    calls = {"n": 0}
    real_render = train_module.render

    def interrupted_render(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_render(*args, **kwargs)

    monkeypatch.setattr(train_module, "render", interrupted_render)
    with pytest.raises(KeyboardInterrupt):
        train_segment(tmp_path / "resumed", TINY, device="cpu")
    monkeypatch.setattr(train_module, "render", real_render)
    train_segment(tmp_path / "resumed", TINY, device="cpu")
    a = load_file(tmp_path / "whole" / f"{LAB_SEG}.safetensors")
    b = load_file(tmp_path / "resumed" / f"{LAB_SEG}.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_config_is_validated():
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainConfig(size=100)
    with pytest.raises(ValueError, match="Unknown variant"):
        TrainConfig(variant="resnet50")
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)


def test_lab_train_command(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["lab", "train", "--out", str(out), "--steps", "2", "--batch-size", "4", "--size", "64"]
    assert cli.main([*args, "--eval-n", "10", "--device", "cpu", "--quiet"]) == 0
    assert "held-out accuracy" in capsys.readouterr().out
    assert json.loads((out / "lab.json").read_text())["training"]["config"]["steps"] == 2
    evaluated = ["lab", "eval", "--weights", str(out / "lab.safetensors"), "--n", "4", "--json", "--device", "cpu"]
    assert cli.main(evaluated) == 0
    assert json.loads(capsys.readouterr().out)["conditions"]["clean"]["n"] == 4
    assert cli.main(["lab", "train", "--out", str(out), "--size", "100", "--quiet"]) == 2
    assert "multiple of 32" in capsys.readouterr().err


# The shipped model -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_model():
    return load_model("lab", device="cpu", cache=False)


def test_shipped_checkpoint_and_card(lab_model):
    path = LAB_DIR / "lab.safetensors"
    assert path.stat().st_size <= 30_000_000
    assert all(v.dtype in (torch.float16, torch.int64) for v in load_file(path).values())
    assert lab_model.weights.kind == "file" and not lab_model.weights.is_random
    assert list(lab_model.class_names) == CLASSES and lab_model.num_classes == 10
    record = lab_model.card["training"]
    assert record["held_out"]["n"] >= 2000 and record["held_out"]["overall"] >= 0.98
    assert record["device"].startswith("NVIDIA") and record["precision"].startswith("bf16")


@pytest.fixture(scope="module")
def lab_scores(lab_model):
    config = lab_model.data_config
    clean = evaluate(lab_model.model, config["mean"], config["std"], 200, conditions=("clean",), batch_size=50)
    others = [c for c in CONDITIONS if c != "clean"]
    rest = evaluate(lab_model.model, config["mean"], config["std"], 100, conditions=others, batch_size=50)
    return {**clean.conditions, **rest.conditions}


def test_clean_held_out_accuracy(lab_scores):
    assert lab_scores["clean"].overall >= 0.98


def test_removing_the_evidence_leaves_chance(lab_scores):
    assert lab_scores["evidence_removed"].overall <= 2 * CHANCE  # measured 10 % on 2,000


def test_a_new_background_changes_nothing(lab_scores):
    # measured 97.2 % on 2,000 (H200), 96 % on these 100: the coarse shapes lose a few points on new clutter
    assert lab_scores["background_replaced"].overall >= lab_scores["clean"].overall - 0.06


def test_blur_removes_the_fine_classes_only(lab_scores):
    # coarse measured on 2,000 (H200) / these 100: whole image blurred 90.6 % / 94 %, region only 99.6 % / 100 %
    for condition, loss in (("blurred", 0.12), ("blurred_in_mask", 0.03)):
        acc = lab_scores[condition].family
        assert acc["fine"] <= CHANCE, condition  # measured 0.4 % and 0 %
        assert acc["coarse"] >= lab_scores["clean"].family["coarse"] - loss, condition


def test_predict_lab_offline_says_not_random(capsys):
    image = str(ASSETS / "lab_0008_ring.png")
    assert cli.main(["predict", image, "--variant", "lab", "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["random_weights"] is False and result["weights"]["kind"] == "file" and result["model"] == "lab"
    assert result["top"][0]["label"] == "ring"


def test_lab_eval_command(capsys):
    assert cli.main(["lab", "eval", "--n", "10", "--conditions", "clean,blurred", "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["conditions"]) == {"clean", "blurred"} and report["n"] == 10
    assert report["conditions"]["clean"]["overall"] >= 0.9

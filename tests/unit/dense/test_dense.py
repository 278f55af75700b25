"""The dense HRNet (hrnet_explorer.dense): model, weights, card, dense trace and the exact head split."""

from __future__ import annotations

import json
import warnings

import pytest
import timm
import torch
from safetensors.torch import save_file

from hrnet_explorer import VARIANTS, RandomWeightsWarning, trace, trace_names
from hrnet_explorer.dense import (
    MAX_SIDE,
    create_dense,
    dense_trace,
    dense_trace_names,
    head_names,
    head_split,
)
from hrnet_explorer.dense.card import dense_card, load_dense, voc_palette, write_dense
from hrnet_explorer.errors import CardError, InputError, WeightsError


def _scramble_batchnorms(model: torch.nn.Module, seed: int = 0) -> None:
    """Fresh BatchNorms are the identity: give every one statistics and an affine map, so the fold is tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(1 + 0.3 * torch.randn(n, generator=g))
                m.bias.copy_(0.2 * torch.randn(n, generator=g))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_head_split_reconstructs_every_pixel_for_every_variant(variant):
    model, source = create_dense(variant, 5, "random", seed=1)
    assert source.is_random
    _scramble_batchnorms(model)
    c = VARIANTS[variant].width
    assert model.backbone.feature_info.channels() == [c, 2 * c, 4 * c, 8 * c]
    assert model.backbone.feature_info.reduction() == [4, 8, 16, 32]
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    tr = dense_trace(model, x)
    assert tr.names() == dense_trace_names(model)
    with torch.no_grad():
        assert torch.equal(tr.logits, model(x))  # the trace changes nothing
    assert [tr[f"head.stream{k}"].shape[-2:] for k in range(4)] == [torch.Size([16, 24])] * 4
    split = head_split(model, tr)
    assert split.presum_error < 1e-5 and split.scores_error < 1e-5
    # The same identities, by hand: Σ parts is the score at every pixel, for every class.
    assert torch.allclose(split.score_parts.sum(1), tr["head.scores"], atol=1e-5 * tr["head.scores"].abs().max())
    assert torch.allclose(split.energy_share.sum(1), torch.ones(1, 16, 24))
    active = tr["head.hidden"].amax(1) > 0
    assert torch.allclose(split.relu_share.sum(1)[active], torch.ones(int(active.sum())), atol=1e-4)


def test_the_split_notices_a_head_it_does_not_describe():
    model, _ = create_dense("hrnet_w18_small", 3, "random")
    _scramble_batchnorms(model)
    tr = dense_trace(model, torch.randn(1, 3, 64, 64))
    with torch.no_grad():
        model.head.bn.running_mean.add_(1.0)  # the trace no longer matches the head's weights
    split = head_split(model, tr)
    assert split.presum_error > 1e-3 and split.scores_error > 1e-3  # 100× the tolerance of a matching head


def test_dense_trace_names_and_maps_are_the_classification_trace_s_for_the_backbone(tmp_path):
    torch.manual_seed(3)
    classifier = timm.create_model("hrnet_w18_small", pretrained=False).eval()
    _scramble_batchnorms(classifier, seed=3)
    path = tmp_path / "w18_small.safetensors"
    save_file({k: v.contiguous() for k, v in classifier.state_dict().items()}, str(path))
    model, source = create_dense("hrnet_w18_small", 4, path)
    assert source.kind == "file"
    head = [n for n in trace_names(classifier) if n.startswith("head.") or n == "logits"]
    backbone_names = [n for n in trace_names(classifier) if n not in head]
    assert dense_trace_names(model) == backbone_names + head_names(4)
    x = torch.randn(1, 3, 64, 64)
    dense, classified = dense_trace(model, x), trace(classifier, x, exact=True)
    assert dense.names()[: len(backbone_names)] == backbone_names
    assert [n for n in classified.names() if n not in head] == backbone_names
    for name in backbone_names:
        assert torch.equal(dense[name], classified[name]), name


def test_backbone_weights_by_tag_from_the_hub_cache(hub_cache):
    state = hub_cache("hrnet_w18_small.ms_in1k", seed=5)
    model, source = create_dense("hrnet_w18_small", 3, "ms_in1k")
    assert (source.kind, source.tag) == ("hub", "hrnet_w18_small.ms_in1k")
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_an_uncached_tag_offline_falls_back_to_random_weights_with_a_warning():
    with pytest.warns(RandomWeightsWarning, match="not in the Hugging Face cache"):
        _, source = create_dense("hrnet_w18_small", 3, "default")
    assert source.is_random


def test_a_checkpoint_of_another_variant_is_refused(tmp_path):
    path = tmp_path / "w18.safetensors"
    state = timm.create_model("hrnet_w18", pretrained=False).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(WeightsError, match="does not fit hrnet_w18_small's backbone"):
        create_dense("hrnet_w18_small", 3, path)


def test_sizes_multiples_of_32_up_to_cityscapes_and_clear_errors_otherwise():
    model, _ = create_dense("hrnet_w18_small", 3, "random")
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 512, 1024)).shape == (1, 3, 512, 1024)
        assert model(torch.zeros(2, 3, 32, 64)).shape == (2, 3, 32, 64)
        with pytest.raises(InputError, match="multiples of 32"):
            model(torch.zeros(1, 3, 100, 64))
        with pytest.raises(InputError, match=f"at most {MAX_SIDE} px"):
            model(torch.zeros(1, 3, 32, MAX_SIDE + 32))
    with pytest.raises(InputError, match="num_classes"):
        create_dense("hrnet_w18_small", 0, "random")


def _written(tmp_path, classes=("background", "a", "b")):
    model, _ = create_dense("hrnet_w18_small", len(classes), "random", seed=2)
    _scramble_batchnorms(model, seed=2)
    card = dense_card("toy-seg", "hrnet_w18_small", list(classes), (64, 64), (0.5,) * 3, (0.25,) * 3)
    return model, write_dense(model, tmp_path, card)


def test_a_dense_checkpoint_and_its_card_load_back(tmp_path):
    model, path = _written(tmp_path)
    loaded = load_dense(path, "cpu")
    assert loaded.card["task"] == "segmentation" and loaded.class_names == ("background", "a", "b")
    assert loaded.card["palette"][:2] == [[0, 0, 0], [128, 0, 0]] and loaded.name == "toy-seg"
    assert loaded.data_config["input_size"] == (3, 64, 64)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = model.half().float()(x)  # what ships: fp16 weights
        assert torch.allclose(loaded.model(x), reference, atol=1e-5)


def test_a_card_whose_task_does_not_match_its_checkpoint_is_one_clear_error(tmp_path):
    _, path = _written(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    del card["task"]
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CardError, match="'task' is 'classification \\(absent\\)'.*dense model"):
        load_dense(path)
    classifier = tmp_path / "clf.safetensors"
    save_file(timm.create_model("hrnet_w18_small", pretrained=False, num_classes=3).state_dict(), str(classifier))
    classifier.with_suffix(".json").write_text(json.dumps({**card, "task": "segmentation", "name": "clf"}))
    with pytest.raises(CardError, match="no dense head.*it is a classifier"):
        load_dense(classifier)


@pytest.mark.parametrize("palette", [[[0, 0, 0]], [[0, 0, 0], [1, 2, 3], [256, 0, 0]], "voc"])
def test_a_bad_palette_is_refused(tmp_path, palette):
    _, path = _written(tmp_path)
    card = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**card, "palette": palette}))
    with pytest.raises(CardError, match="'palette' must hold one \\[r, g, b\\]"):
        load_dense(path)


def test_voc_palette_is_pascal_voc_s():
    assert voc_palette(4) == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert voc_palette(21)[15] == [192, 128, 128] and voc_palette(21)[20] == [0, 64, 128]  # person, tvmonitor


def test_no_warning_for_random_weights_asked_for():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        create_dense("hrnet_w18_small", 2, "random")


def test_load_model_reads_a_dense_checkpoint_by_its_card(tmp_path):
    from hrnet_explorer import load_model
    from hrnet_explorer.dense import DenseHRNet

    model, path = _written(tmp_path)
    loaded = load_model("hrnet_w18_small", path, "cpu")
    assert isinstance(loaded.model, DenseHRNet) and loaded.card["task"] == "segmentation"
    assert loaded.class_names == ("background", "a", "b") and loaded.name == "toy-seg"
    with pytest.raises(CardError, match="is for hrnet_w18_small, but variant hrnet_w18 was asked for"):
        load_model("hrnet_w18", path, "cpu")
    path.with_suffix(".json").unlink()
    with pytest.raises(CardError, match="is a dense \\(segmentation\\) model: it needs a model card"):
        load_model("hrnet_w18_small", path, "cpu")


def test_dense_trace_keeps_what_it_is_asked_to():
    model, _ = create_dense("hrnet_w18_small", 3, "random")
    x = torch.randn(2, 3, 64, 64)
    full = dense_trace(model, x)
    outputs = dense_trace(model, x, keep="outputs", dtype=torch.float16)
    assert outputs.names() == full.names()  # every shape is recorded
    assert "head.presum" not in outputs and "stage4.module0.edge1to0" not in outputs
    assert "head.scores" in outputs and outputs["head.hidden"].dtype == torch.float16
    assert torch.allclose(outputs.fusion(4, 0).energy_share, full.fusion(4, 0).energy_share, atol=1e-5)
    summaries = dense_trace(model, x, keep="summaries")
    assert set(summaries.maps) == {"logits"} and set(summaries.summaries["head.hidden"]) == {"mean", "l2"}
    with pytest.raises(InputError, match="keep must be"):
        dense_trace(model, x, keep="edges")

"""Import of mmsegmentation HRNetV2 checkpoints (hrnet_explorer.dense.mmseg), on state dicts built with mmseg's names.

The names below were read from mmsegmentation's source (mmseg/models/backbones/hrnet.py and resnet.py, mmcv's
build_norm_layer and ConvModule, decode_heads/fcn_head.py and decode_head.py, configs/_base_/models/fcn_hr18.py).
"""

from __future__ import annotations

import pytest
import torch

from hrnet_explorer import load_model
from hrnet_explorer.dense import create_dense
from hrnet_explorer.dense.mmseg import from_mmseg, fuse_upsampling, import_mmseg, mmseg_variant, set_fuse_upsampling
from hrnet_explorer.errors import WeightsError

# Keys of an fcn_hr18 checkpoint, as mmsegmentation names them (every kind of module once).
MMSEG_FCN_HR18_KEYS = (
    "backbone.conv1.weight",
    "backbone.bn1.running_var",
    "backbone.conv2.weight",
    "backbone.bn2.weight",
    "backbone.layer1.0.conv3.weight",
    "backbone.layer1.0.bn3.bias",
    "backbone.layer1.0.downsample.0.weight",
    "backbone.layer1.0.downsample.1.running_mean",
    "backbone.layer1.3.conv1.weight",
    "backbone.transition1.0.0.weight",
    "backbone.transition1.1.0.0.weight",
    "backbone.transition2.2.0.1.weight",
    "backbone.transition3.3.0.0.weight",
    "backbone.stage2.0.branches.0.0.conv1.weight",
    "backbone.stage2.0.branches.1.3.bn2.num_batches_tracked",
    "backbone.stage2.0.fuse_layers.0.1.0.weight",
    "backbone.stage2.0.fuse_layers.1.0.0.0.weight",
    "backbone.stage3.3.fuse_layers.2.0.0.0.weight",
    "backbone.stage3.3.fuse_layers.2.0.1.1.running_var",
    "backbone.stage4.2.fuse_layers.0.3.1.weight",
    "decode_head.convs.0.conv.weight",
    "decode_head.convs.0.bn.running_mean",
    "decode_head.conv_seg.weight",
    "decode_head.conv_seg.bias",
)


def _mmseg_state(variant: str = "hrnet_w18", classes: int = 19, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of an mmseg HRNetV2 with random values: timm's backbone names under ``backbone.``, the head's
    under mmseg's FCNHead names (its 1×1 conv has no bias); an auxiliary head, which the import drops."""
    model, _ = create_dense(variant, classes, "random", seed=seed)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.backbone.state_dict().items():
        state[f"backbone.{key}"] = torch.randn(value.shape, generator=g).abs() + 0.5 if "running_var" in key else (
            torch.randn(value.shape, generator=g) * 0.1 if value.is_floating_point() else value
        )  # fmt: skip
    head = model.head
    c = sum(head.channels)
    state["decode_head.convs.0.conv.weight"] = torch.randn(c, c, 1, 1, generator=g) * 0.05
    for k in ("weight", "bias", "running_mean"):
        state[f"decode_head.convs.0.bn.{k}"] = torch.randn(c, generator=g) * 0.1 + (k == "weight")
    state["decode_head.convs.0.bn.running_var"] = torch.rand(c, generator=g) + 0.5
    state["decode_head.convs.0.bn.num_batches_tracked"] = torch.tensor(100)
    state["decode_head.conv_seg.weight"] = torch.randn(classes, c, 1, 1, generator=g) * 0.1
    state["decode_head.conv_seg.bias"] = torch.randn(classes, generator=g)
    state["auxiliary_head.conv_seg.weight"] = torch.randn(classes, 64, 1, 1, generator=g)
    return state


def test_timm_names_the_backbone_as_mmseg_does():
    state = _mmseg_state()
    missing = [k for k in MMSEG_FCN_HR18_KEYS if k not in state]
    assert not missing, missing


def test_an_fcn_hr18_state_dict_lands_where_it_belongs():
    state = _mmseg_state()
    assert mmseg_variant(state) == "hrnet_w18"
    model = from_mmseg(state)
    assert model.variant == "hrnet_w18" and model.num_classes == 19 and fuse_upsampling(model.backbone) == "bilinear"
    assert torch.equal(model.head.conv.weight, state["decode_head.convs.0.conv.weight"])
    assert not model.head.conv.bias.any()  # mmcv's ConvModule has no bias before its norm
    assert torch.equal(model.head.bn.running_var, state["decode_head.convs.0.bn.running_var"])
    assert torch.equal(model.head.classifier.bias, state["decode_head.conv_seg.bias"])
    backbone = model.backbone.state_dict()
    assert torch.equal(
        backbone["stage4.2.fuse_layers.0.3.1.weight"], state["backbone.stage4.2.fuse_layers.0.3.1.weight"]
    )
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        bilinear = model(x)
        set_fuse_upsampling(model.backbone, "nearest")  # timm's fusion: another function
        assert not torch.allclose(model(x), bilinear)


def test_small_variants_are_told_apart_by_width_and_depth():
    assert mmseg_variant(_mmseg_state("hrnet_w18_small_v2", 2)) == "hrnet_w18_small_v2"  # mmseg's hr18s
    assert mmseg_variant(_mmseg_state("hrnet_w18_small", 2)) == "hrnet_w18_small"


def test_an_imported_checkpoint_loads_back_with_its_bilinear_fusion(tmp_path):
    state = _mmseg_state("hrnet_w18_small", 3)
    path = import_mmseg(state, tmp_path, "toy-city", ["road", "car", "sky"], size=(64, 128))
    loaded = load_model("hrnet_w18_small", path, "cpu")
    assert loaded.card["fuse_upsampling"] == "bilinear" and fuse_upsampling(loaded.model.backbone) == "bilinear"
    x = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        reference = from_mmseg({k: v.half().float() if v.is_floating_point() else v for k, v in state.items()})(x)
        assert torch.allclose(loaded.model(x), reference, atol=1e-4)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda s: s.pop("decode_head.conv_seg.weight"), "no decode_head.conv_seg.weight"),
        (lambda s: s.pop("backbone.stage4.2.fuse_layers.0.3.1.weight"), "1 missing"),
        (lambda s: s.update({"decode_head.conv_cat.conv.weight": torch.zeros(1)}), "1 unexpected"),
        (lambda s: s.update({"decode_head.convs.0.conv.weight": torch.zeros(270, 270, 3, 3)}), "1 wrongly shaped"),
        (lambda s: s.pop("backbone.stage2.0.branches.0.0.conv1.weight"), "Not an mmsegmentation HRNet"),
    ],
)
def test_what_does_not_fit_is_one_weights_error(change, match):
    state = _mmseg_state()
    change(state)
    with pytest.raises(WeightsError, match=match):
        from_mmseg(state)

"""HRNetV2 segmentation checkpoints of mmsegmentation (``fcn_hr18``-style) as dense HRNets on timm.

The key names were read from mmsegmentation's source (``mmseg/models/backbones/hrnet.py``,
``mmseg/models/backbones/resnet.py``, ``mmseg/models/decode_heads/fcn_head.py``, ``decode_head.py``;
``configs/_base_/models/fcn_hr18.py``) and mmcv's ``build_norm_layer`` / ``ConvModule``:

- ``backbone.*`` — the same module tree as timm's HRNet up to stage 4: ``conv1``/``bn1``/``conv2``/``bn2`` (mmcv
  names a BatchNorm built with postfix k ``bnk``), ``layer1`` (Bottlenecks: ``conv1..3``, ``bn1..3``,
  ``downsample.0/1``), ``transition{t}.{k}`` (``None`` where timm has ``nn.Identity``: no tensors either way),
  ``stage{s}.{m}.branches.{i}.{b}`` (BasicBlocks) and ``stage{s}.{m}.fuse_layers.{i}.{j}`` (the same Sequentials).
  The names map one to one: the prefix goes.
- ``decode_head.convs.0.conv.weight`` and ``decode_head.convs.0.bn.*`` — ``FCNHead(num_convs=1, kernel_size=1,
  concat_input=False, input_transform="resize_concat")``: one ConvModule, whose conv has no bias (mmcv's
  ``bias="auto"`` drops it before a norm) → :class:`~hrnet_explorer.dense.DenseHead`'s ``conv`` (bias 0) and ``bn``;
  ``decode_head.conv_seg.*`` → its ``classifier``. ``auxiliary_head.*`` (training only) is dropped.

One difference is not in the names but in the function: mmsegmentation's fuse edges from a lower-resolution stream
upsample **bilinearly** (``align_corners=False``), timm's with nearest neighbours. An imported model's fuse edges
are switched to bilinear (:func:`set_fuse_upsampling`), and its card says so (``"fuse_upsampling": "bilinear"``),
so that loading it back builds the same function. Both preprocess alike: mmseg's ``mean=[123.675, 116.28, 103.53]``,
``std=[58.395, 57.12, 57.375]`` on RGB 0–255 are ImageNet's mean and std on 0–1.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import InputError, WeightsError
from ..zoo import VARIANTS
from ..zoo.weights import read_state_dict
from .model import FUSE_UPSAMPLING, DenseHRNet, create_dense, fuse_upsampling, set_fuse_upsampling

__all__ = [
    "FUSE_UPSAMPLING",
    "from_mmseg",
    "fuse_upsampling",
    "import_mmseg",
    "mmseg_variant",
    "set_fuse_upsampling",
]

_HEAD = {
    "decode_head.convs.0.conv.weight": "head.conv.weight",
    **{f"decode_head.convs.0.bn.{k}": f"head.bn.{k}" for k in ("weight", "bias", "running_mean", "running_var")},
    "decode_head.convs.0.bn.num_batches_tracked": "head.bn.num_batches_tracked",
    "decode_head.conv_seg.weight": "head.classifier.weight",
    "decode_head.conv_seg.bias": "head.classifier.bias",
}


def mmseg_variant(state: Mapping[str, torch.Tensor]) -> str:
    """Which of the nine variants an mmseg HRNet backbone is, from its width C (and, for C = 18, its ``layer1``
    blocks); a WeightsError when none matches."""
    try:
        width = state["backbone.stage2.0.branches.0.0.conv1.weight"].shape[0]
    except KeyError:
        raise WeightsError("Not an mmsegmentation HRNet: no backbone.stage2.0.branches.0.0.conv1.weight.") from None
    blocks = len({k.split(".")[2] for k in state if k.startswith("backbone.layer1.")})
    names = [v for v in VARIANTS if VARIANTS[v].width == width]
    if len(names) > 1:  # width 18: hrnet_w18_small_v2 (mmseg's hr18s) has 2 layer1 blocks, hrnet_w18 4
        names = [v for v in names if ("small" in v) == (blocks < 4)]
    if len(names) != 1:
        raise WeightsError(f"No timm HRNet has this backbone (width {width}, {blocks} layer1 blocks).")
    return names[0]


def from_mmseg(checkpoint: str | os.PathLike | Mapping[str, torch.Tensor], variant: str | None = None) -> DenseHRNet:
    """A :class:`DenseHRNet` (eval mode, bilinear fuse upsampling) holding an mmsegmentation HRNetV2 checkpoint
    (``fcn_hr18``-style: HRNet backbone + FCNHead with ``resize_concat``), given as a file or a state dict.

    ``variant``: the timm variant to build (default: found from the backbone's widths). Every backbone tensor must
    be there with its shape, and the head must be one 1×1 ConvModule and ``conv_seg``: anything else is a
    WeightsError naming what does not fit."""
    state = dict(checkpoint) if isinstance(checkpoint, Mapping) else read_state_dict(Path(checkpoint).expanduser())
    variant = variant or mmseg_variant(state)
    weight = state.get("decode_head.conv_seg.weight")
    if weight is None or weight.ndim != 4:
        raise WeightsError("Not an mmsegmentation decode head: no decode_head.conv_seg.weight.")
    model, _ = create_dense(variant, weight.shape[0], "random")
    ours = model.state_dict()
    mapped: dict[str, torch.Tensor] = {"head.conv.bias": torch.zeros_like(ours["head.conv.bias"])}
    unknown = []
    for key, value in state.items():
        if key.startswith("auxiliary_head."):
            continue
        name = key if key.startswith("backbone.") else _HEAD.get(key)  # DenseHRNet's backbone is "backbone" too
        if name is None or name not in ours:
            unknown.append(key)
        else:
            mapped[name] = value
    missing = [k for k in ours if k not in mapped]
    wrong = [k for k in mapped if mapped[k].shape != ours[k].shape]
    if unknown or missing or wrong:
        raise WeightsError(
            f"The checkpoint does not fit a dense {variant} with an fcn_hr-style head (one 1×1 ConvModule, conv_seg): "
            f"{len(missing)} missing, {len(unknown)} unexpected and {len(wrong)} wrongly shaped tensors "
            f"(e.g. {(missing + unknown + wrong)[:3]})."
        )
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in mapped.items()})
    set_fuse_upsampling(model.backbone, "bilinear")
    return model.eval()


def import_mmseg(
    checkpoint: str | os.PathLike | Mapping[str, torch.Tensor],
    out: str | os.PathLike,
    name: str,
    class_names: list[str],
    *,
    variant: str | None = None,
    size: tuple[int, int] = (512, 1024),
    palette: list[list[int]] | None = None,
) -> Path:
    """:func:`from_mmseg`, written as a dense checkpoint ``out/<name>.safetensors`` with its segmentation card
    (``"fuse_upsampling": "bilinear"``; ImageNet's mean and std, as mmseg's configs use): ``load_model`` reads it."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from .card import dense_card, write_dense

    model = from_mmseg(checkpoint, variant)
    if len(class_names) != model.num_classes:
        raise InputError(f"The checkpoint has {model.num_classes} classes; got {len(class_names)} class names.")
    card = dense_card(
        name, model.variant, list(class_names), size, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, palette=palette,
        description=f"HRNetV2 ({model.variant}) imported from an mmsegmentation checkpoint.",
        fuse_upsampling="bilinear",
    )  # fmt: skip
    return write_dense(model, Path(out), card)

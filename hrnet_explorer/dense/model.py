"""HRNetV2 for dense prediction on timm: the four final streams of any of the nine variants + the HRNetV2 head.

The backbone is ``timm.create_model(variant, features_only=True, feature_location="", out_indices=(1, 2, 3, 4))``:
the raw stage-4 streams at strides 4/8/16/32 (C, 2C, 4C, 8C channels), no classification head. The head is
HRNetV2's (Sun et al. 2019, "High-Resolution Representations for Labeling Pixels and Regions"; the
HRNet-Semantic-Segmentation ``last_layer``, mmsegmentation's ``FCNHead`` with ``resize_concat``): every stream
upsampled bilinearly to stride 4, concatenated (15C channels), a 1×1 conv–BN–ReLU of the same width, a 1×1 conv
to the classes; the class scores are upsampled bilinearly to the input.

Backbone weights: timm's ImageNet checkpoint by tag (the hub path, or its local cache offline), a local
classification checkpoint of the variant, or random (seeded). The head starts random (seeded) either way.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from huggingface_hub.errors import LocalEntryNotFoundError
from timm.models.hrnet import HighResolutionNet
from torch import nn

from ..anatomy import fuse_edges, hr_modules
from ..errors import InputError, WeightsError
from ..images import check_input_tensor
from ..zoo import RandomWeightsWarning, WeightsSource, get_variant
from ..zoo.weights import parse_weights, read_state_dict

__all__ = [
    "FUSE_UPSAMPLING",
    "MAX_SIDE",
    "DenseHRNet",
    "DenseHead",
    "check_dense_input",
    "create_dense",
    "fuse_upsampling",
    "set_fuse_upsampling",
    "to_input",
]

STREAM_INDICES = (1, 2, 3, 4)  # timm's feature indices of the four streams (0 is the stride-2 stem map)
MAX_SIDE = 2048  # px per side: 2048×1024 (full Cityscapes) and anything smaller


class DenseHead(nn.Module):
    """HRNetV2's head: upsample every stream to stream 0's size, concatenate, 1×1 conv–BN–ReLU, 1×1 conv.

    The ReLU is not in place: Captum's and the trace's hooks read the pre-activation after it has run."""

    def __init__(self, channels: Sequence[int], num_classes: int):
        super().__init__()
        width = sum(channels)
        self.channels = tuple(int(c) for c in channels)
        self.conv = nn.Conv2d(width, width, 1)
        self.bn = nn.BatchNorm2d(width)
        self.act = nn.ReLU()
        self.classifier = nn.Conv2d(width, num_classes, 1)

    @property
    def num_classes(self) -> int:
        return self.classifier.out_channels

    def upsample(self, streams: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Every stream at stream 0's resolution (bilinear, align_corners=False as in HRNetV2 and mmseg)."""
        size = streams[0].shape[-2:]
        return [s if s.shape[-2:] == size else F.interpolate(s, size, mode="bilinear") for s in streams]

    def parts(self, streams: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """→ (the upsampled streams, the pre-activation BN(conv(concat)), the class scores at stride 4)."""
        ups = self.upsample(streams)
        presum = self.bn(self.conv(torch.cat(ups, 1)))
        return ups, presum, self.classifier(self.act(presum))

    def forward(self, streams: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.parts(streams)[2]


class DenseHRNet(nn.Module):
    """A timm HRNet backbone (features only) + :class:`DenseHead`; ``forward`` → class scores at the input size."""

    def __init__(self, backbone: HighResolutionNet, num_classes: int, variant: str):
        super().__init__()
        self.backbone = backbone
        self.variant = variant
        self.head = DenseHead(backbone.feature_info.channels(), num_classes)

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def streams(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four stage-4 streams (strides 4, 8, 16, 32)."""
        return self.backbone(x)

    def scores(self, streams: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """The head on ``streams``, upsampled to ``size``: the per-pixel class scores (logits)."""
        return to_input(self.head(streams), size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_dense_input(x)
        return self.scores(self.streams(x), tuple(x.shape[-2:]))


def to_input(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Stride-4 class scores (or any per-pixel maps) upsampled bilinearly to the input's ``size``: linear, so a
    sum of parts upsamples to the sum of the upsampled parts."""
    return F.interpolate(scores, size, mode="bilinear")


def check_dense_input(x: torch.Tensor) -> torch.Tensor:
    """A Bx3xHxW float batch with H and W multiples of 32 and at most :data:`MAX_SIDE`; an InputError otherwise."""
    x = check_input_tensor(x)
    h, w = x.shape[-2:]
    if max(h, w) > MAX_SIDE:
        raise InputError(f"Dense inputs are at most {MAX_SIDE} px a side (e.g. 2048×1024); got {h}×{w}.")
    return x


def _backbone(spec: str, seed: int, **kwargs) -> HighResolutionNet:
    with torch.random.fork_rng(devices=[]):  # random weights are a function of (architecture, seed)
        torch.manual_seed(seed)
        return timm.create_model(spec, features_only=True, feature_location="", out_indices=STREAM_INDICES, **kwargs)


def _load_backbone_file(net: HighResolutionNet, path: Path, variant: str) -> None:
    """A classification checkpoint of ``variant`` into the features-only backbone; every backbone tensor must be
    there with its shape (timm's own non-strict load would leave missing ones random without a word)."""
    state = read_state_dict(path)
    ours = net.state_dict()
    missing = [k for k in ours if k not in state]
    wrong = [k for k in ours if k in state and state[k].shape != ours[k].shape]
    if missing or wrong:
        raise WeightsError(
            f"Checkpoint {path} does not fit {variant}'s backbone: {len(missing)} missing and {len(wrong)} wrongly "
            f"shaped tensors (e.g. {(missing + wrong)[:2]}). Is it a checkpoint of another variant?"
        )
    net.load_state_dict({k: state[k] for k in ours})


def create_dense(
    variant: str,
    num_classes: int,
    backbone_weights: str | os.PathLike | None = "default",
    *,
    seed: int = 0,
) -> tuple[DenseHRNet, WeightsSource]:
    """A :class:`DenseHRNet` of ``variant`` with ``num_classes`` outputs, in eval mode, and where its backbone's
    weights came from.

    ``backbone_weights``: "default" (timm's default ImageNet tag), a tag ("ms_in1k", "gluon_in1k", …), a local
    classification checkpoint of the variant, or "random". Offline with the tag not cached: random, with a
    :class:`RandomWeightsWarning`, as :func:`hrnet_explorer.load_model` does. The head is drawn from ``seed``.
    """
    card = get_variant(variant)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}.")
    kind, spec = parse_weights(card, backbone_weights)
    if kind == "hub" and "_ssld." in spec:
        raise WeightsError(f"{spec} belongs to another architecture ({spec.split('.')[0]}); use an in1k tag.")
    if kind == "hub":
        try:
            net = _backbone(spec, seed, pretrained=True)
            source = WeightsSource("hub", f"timm/{spec}", spec)
        except LocalEntryNotFoundError:
            reason = f"timm/{spec} is not in the Hugging Face cache and the hub is unreachable"
            warnings.warn(f"{card.name} backbone: {reason}; using RANDOM weights.", RandomWeightsWarning, stacklevel=2)
            net, source = _backbone(card.name, seed), WeightsSource("random", reason, spec, seed)
    elif kind == "file":
        path = Path(spec).expanduser()
        net = _backbone(card.name, seed)
        _load_backbone_file(net, path, card.name)
        source = WeightsSource("file", str(path.resolve()))
    else:
        net, source = _backbone(card.name, seed), WeightsSource("random", "asked for", None, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)  # the head's own draw: the same whatever the backbone's source
        model = DenseHRNet(net, num_classes, card.name)
    return model.eval(), source


FUSE_UPSAMPLING = ("nearest", "bilinear")  # timm's, mmsegmentation's


def _upsamples(backbone: nn.Module):
    for _, mod in hr_modules(backbone):
        for j, i, edge in fuse_edges(mod):
            if j > i:  # from a lower-resolution stream: conv 1×1, BN, Upsample
                yield edge[-1]


def set_fuse_upsampling(backbone: nn.Module, mode: str) -> None:
    """Make every upsampling fuse edge of ``backbone`` use ``mode`` ("nearest": timm's; "bilinear": mmseg's)."""
    if mode not in FUSE_UPSAMPLING:
        raise InputError(f"fuse upsampling must be one of {', '.join(FUSE_UPSAMPLING)}, not {mode!r}.")
    for up in _upsamples(backbone):
        up.mode, up.align_corners = mode, (None if mode == "nearest" else False)


def fuse_upsampling(backbone: nn.Module) -> str:
    """The mode every upsampling fuse edge of ``backbone`` uses."""
    modes = {up.mode for up in _upsamples(backbone)}
    if len(modes) != 1:
        raise ValueError(f"The fuse edges upsample in {len(modes)} ways ({sorted(modes)}).")
    return modes.pop()

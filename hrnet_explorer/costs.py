"""The card beside the measurement: exact parameter counts and MACs.

MACs are counted with fvcore's ``FlopCountAnalysis`` — the counter behind timm's published GMACs (it
counts one per multiply-accumulate, and also batch norm, upsampling and pooling, ~0.8 % of the
total; torch's ``FlopCounterMode`` counts only convs and matmuls, as 2 FLOPs per MAC).
The card's "FLOPs" column is neither: it is 1.284–1.285 × MACs for every variant — the same factor
appears for resnet18/50 in the same documentation set, so it is an artefact of how that
documentation was generated, not a property of HRNet. :data:`CARD_FLOPS_EXPLANATION` says so
wherever the numbers are shown.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

import timm
import torch

from .zoo import get_variant

__all__ = [
    "CARD_FLOPS_EXPLANATION",
    "MEASURED_224",
    "CostReport",
    "count_params",
    "count_macs",
    "loaded_costs",
    "variant_costs",
]

CARD_FLOPS_EXPLANATION = (
    "The card's 'FLOPs' are ≈1.285 × MACs for every variant (and for ResNets in the same docs): an artefact "
    "of how that documentation was generated. Measured here: MACs (multiply-accumulates) counted by fvcore, "
    "as timm's published GMACs are; 1 MAC = 2 FLOPs in torch's FlopCounterMode convention."
)


def count_params(model: torch.nn.Module) -> int:
    """Every parameter element of ``model`` (buffers such as BatchNorm running statistics not included)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, input_size: int = 224) -> int:
    """Multiply-accumulates of one forward at 1×3×input_size×input_size, counted by fvcore (eval mode)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore imports torch.jit helpers that warn
        from fvcore.nn import FlopCountAnalysis  # imported here: only the costs need it

    param = next(model.parameters())
    x = torch.zeros(1, 3, input_size, input_size, device=param.device, dtype=param.dtype)
    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore's tracer touches torch.jit internals
        return int(analysis.total())


@dataclass(frozen=True)
class CostReport:
    """A variant's measured parameters and MACs (224 px unless asked) beside its model card's numbers.

    ``card_flops_over_macs`` is the card's "FLOPs" divided by the measured MACs (≈1.285: see
    :data:`CARD_FLOPS_EXPLANATION`); ``default_tag`` is timm's default weights, ``card_tag`` the card's.
    """

    variant: str
    params: int
    macs: int
    card_params_m: float
    card_flops: int
    card_flops_over_macs: float
    card_top1: float
    card_top5: float
    default_tag: str
    card_tag: str

    def to_dict(self) -> dict:
        return asdict(self)


# params and MACs at 224 px, as count_params and count_macs measure them (tests/unit/test_zoo.py recounts them):
# kept as data so that listing the variants builds no model.
MEASURED_224: dict[str, tuple[int, int]] = {
    "hrnet_w18_small": (13_187_464, 1_613_429_856),
    "hrnet_w18_small_v2": (15_597_464, 2_616_067_464),
    "hrnet_w18": (21_299_004, 4_317_590_308),
    "hrnet_w30": (37_712_220, 8_150_528_284),
    "hrnet_w32": (41_232_680, 8_967_661_888),
    "hrnet_w40": (57_557_160, 12_745_655_184),
    "hrnet_w44": (67_064_984, 14_940_327_160),
    "hrnet_w48": (77_469_864, 17_338_782_688),
    "hrnet_w64": (128_059_944, 28_970_440_320),
}


@cache
def _measure(name: str, input_size: int, num_classes: int = 1000) -> tuple[int, int]:
    model = timm.create_model(name, pretrained=False, num_classes=num_classes).eval()
    return count_params(model), count_macs(model, input_size)


def variant_costs(variant: str, input_size: int = 224, *, measure: bool = False) -> CostReport:
    """Params and MACs of ``variant`` beside its card: the recorded 224 px counts, or with ``measure=True``
    (or another ``input_size``) counted now on a randomly initialised CPU model (weights change neither)."""
    card = get_variant(variant)
    if measure or input_size != 224:
        params, macs = _measure(card.name, input_size)
    else:
        params, macs = MEASURED_224[card.name]
    return CostReport(
        card.name,
        params,
        macs,
        card.card_params_m,
        card.card_flops,
        card.card_flops / macs,
        card.card_top1,
        card.card_top5,
        card.default_tag,
        card.card_tag,
    )


def loaded_costs(loaded: Any) -> CostReport:
    """The card beside the measurement for a :class:`~hrnet_explorer.zoo.LoadedModel`: a variant's
    (:func:`variant_costs`), or for a checkpoint with its own model card (the lab model, ``--models``), its own
    count — its architecture with its head, measured at 224 px — under its name, with no ImageNet card numbers
    (nan: the base architecture's card describes a 1000-class ImageNet model, not this one)."""
    if loaded.card is None:
        return variant_costs(loaded.variant.name)
    params, macs = _measure(loaded.architecture, 224, loaded.num_classes)
    return CostReport(loaded.name, params, macs, math.nan, 0, math.nan, math.nan, math.nan, "", "")

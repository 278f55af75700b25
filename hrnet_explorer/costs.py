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

import warnings
from dataclasses import asdict, dataclass
from functools import cache

import timm
import torch

from .zoo import get_variant

__all__ = ["CARD_FLOPS_EXPLANATION", "CostReport", "count_params", "count_macs", "variant_costs"]

CARD_FLOPS_EXPLANATION = (
    "The card's 'FLOPs' are ≈1.285 × MACs for every variant (and for ResNets in the same docs): an artefact "
    "of how that documentation was generated. Measured here: MACs (multiply-accumulates) counted by fvcore, "
    "as timm's published GMACs are; 1 MAC = 2 FLOPs in torch's FlopCounterMode convention."
)


def count_params(model: torch.nn.Module) -> int:
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


@cache
def variant_costs(variant: str, input_size: int = 224) -> CostReport:
    """Measured params and MACs of ``variant`` (random init on CPU; weights do not change them)."""
    card = get_variant(variant)
    model = timm.create_model(card.name, pretrained=False).eval()
    macs = count_macs(model, input_size)
    return CostReport(
        card.name,
        count_params(model),
        macs,
        card.card_params_m,
        card.card_flops,
        card.card_flops / macs,
        card.card_top1,
        card.card_top5,
        card.default_tag,
        card.card_tag,
    )

"""The card beside the measurement: exact parameter counts and MACs.

MACs are counted with torch's ``FlopCounterMode``, which reports 2 × MACs (one multiply + one add);
its totals equal fvcore's and timm's published GMACs. The model card's "FLOPs" column is neither:
it is 1.284–1.285 × MACs for every variant — the same factor appears for resnet18/50 in the same
documentation set, so it is an artefact of how that documentation was generated, not a property of
HRNet. :data:`CARD_FLOPS_EXPLANATION` says so wherever the numbers are shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from .zoo import get_variant

__all__ = ["CARD_FLOPS_EXPLANATION", "CostReport", "count_params", "count_macs", "variant_costs"]

CARD_FLOPS_EXPLANATION = (
    "The card's 'FLOPs' are ≈1.285 × MACs for every variant (and for ResNets in the same docs): an artefact "
    "of how that documentation was generated. Measured here: MACs (multiply-accumulates) with torch's "
    "FlopCounterMode, which counts 2 FLOPs per MAC; they equal timm's published GMACs."
)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, input_size: int = 224) -> int:
    """Multiply-accumulates of one forward at 1×3×input_size×input_size."""
    param = next(model.parameters())
    x = torch.zeros(1, 3, input_size, input_size, device=param.device, dtype=param.dtype)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() // 2


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


@lru_cache(maxsize=None)
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

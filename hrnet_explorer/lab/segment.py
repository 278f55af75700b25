"""The dense lab: the lab's images with per-pixel labels, and a dense model's scores under the lab's conditions.

Per-pixel labels come from the evidence mask: class 0 is background, class ``k + 1`` the lab's class ``k``
(:data:`SEG_CLASSES`), on the pixels of its evidence region. What is true by construction carries over from
:mod:`hrnet_explorer.lab.task`: only the region's pixels hold its class; blurring removes the fine classes' gratings
and keeps the coarse classes' shapes; with the evidence removed there is nothing but background to find.

Conditions (:data:`hrnet_explorer.lab.evaluate.CONDITIONS`), each scored against what is true of it: the clean label
map for ``clean``, ``blurred``, ``blurred_in_mask`` and ``background_replaced`` (the region is still where it was;
for blurred fine regions its class is no longer in the pixels, so their IoU should fall); the all-background map
for ``evidence_removed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from ..dense.metrics import BOUNDARY_TOLERANCE, SegmentationScores, score_labels
from ..errors import InputError
from .evaluate import CONDITIONS, condition_batch
from .task import BLUR_SIGMA, CLASSES, FAMILY, LabBatch

__all__ = ["SEG_CLASSES", "SEG_FAMILY", "SegmentEvaluation", "evaluate_segmentation", "label_maps"]

SEG_CLASSES: list[str] = ["background", *CLASSES]
SEG_FAMILY: dict[str, str] = {"background": "background", **FAMILY}


def label_maps(batch: LabBatch) -> torch.Tensor:
    """[B, S, S] int64: 0 off the evidence region, the sample's lab class + 1 on it."""
    return torch.where(batch.masks, batch.labels.view(-1, 1, 1) + 1, 0)


def family_iou(per_class: dict[str, float]) -> dict[str, float]:
    """Mean IoU of each family's classes (fine, coarse, background) among those scored."""
    out = {}
    for fam in ("background", "fine", "coarse"):
        values = [v for name, v in per_class.items() if SEG_FAMILY[name] == fam]
        if values:
            out[fam] = sum(values) / len(values)
    return out


@dataclass(frozen=True)
class SegmentEvaluation:
    """A dense lab model's scores under each condition on the first ``n`` samples of ``split``."""

    n: int
    split: str
    size: int
    blur_sigma: float
    boundary_tolerance: int
    conditions: dict[str, SegmentationScores]

    def family(self, condition: str) -> dict[str, float]:
        return family_iou(self.conditions[condition].per_class)

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "split": self.split,
            "size": self.size,
            "blur_sigma": self.blur_sigma,
            "boundary_tolerance": self.boundary_tolerance,
            "classes": SEG_CLASSES,
            "conditions": {name: {**asdict(s), "family_iou": self.family(name)} for name, s in self.conditions.items()},
        }


@torch.inference_mode()
def evaluate_segmentation(
    model: torch.nn.Module,
    mean: Sequence[float],
    std: Sequence[float],
    n: int = 500,
    *,
    split: str = "test",
    size: int = 224,
    conditions: Sequence[str] = CONDITIONS,
    batch_size: int = 50,
    device: str | torch.device | None = None,
) -> SegmentEvaluation:
    """Label every pixel of the first ``n`` samples of ``split`` under each condition with the dense ``model``
    (eval mode; ``model(x)`` → [B, 11, H, W] scores) and score the label maps (:func:`score_labels`)."""
    if n < 1 or batch_size < 1:
        raise InputError(f"n and batch_size must be ≥ 1, got n={n}, batch_size={batch_size}.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    chunks = [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    results = {}
    for condition in conditions:
        preds, refs = [], []
        for chunk in chunks:
            batch = condition_batch(chunk, condition, split, size, device)
            preds.append(model((batch.images - mean_t) / std_t).argmax(1).cpu())
            ref = label_maps(batch).cpu()
            refs.append(torch.zeros_like(ref) if condition == "evidence_removed" else ref)
        results[condition] = score_labels(torch.cat(preds), torch.cat(refs), SEG_CLASSES)
    return SegmentEvaluation(n, split, size, BLUR_SIGMA, BOUNDARY_TOLERANCE, results)

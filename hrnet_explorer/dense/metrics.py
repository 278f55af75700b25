"""Scores of a predicted label map against a reference one: IoU per class, mIoU, boundary F, interior IoU.

- IoU of class c: |pred = c ∧ ref = c| / |pred = c ∨ ref = c| over all pixels of all images; mIoU: the mean over the
  classes that occur in the reference or the prediction (a class in neither has no IoU).
- Boundary F (Csurka et al. 2013; DAVIS's F): a label map's boundary is the pixels with another label among their 8
  neighbours. Precision: the share of predicted boundary pixels within ``tolerance`` px (Chebyshev) of a reference
  boundary pixel; recall the other way round; F their harmonic mean — per image, then averaged over the images that
  have a boundary in the reference or the prediction.
- Interior IoU: the IoU per class counted only on pixels farther than ``tolerance`` px from every reference boundary:
  what is left when the band around each region's edge is taken out, to compare with boundary F.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..errors import InputError

__all__ = ["BOUNDARY_TOLERANCE", "SegmentationScores", "boundary", "boundary_f", "confusion", "score_labels"]

BOUNDARY_TOLERANCE = 2  # px: the band around each region's edge within which a boundary pixel counts as matched


def _check(pred: torch.Tensor, ref: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != ref.shape or pred.ndim not in (2, 3):
        raise InputError(
            f"Label maps must be [H, W] or [B, H, W] of one shape, got {tuple(pred.shape)} and {tuple(ref.shape)}."
        )
    pred, ref = pred.long(), ref.long()
    if pred.ndim == 2:
        pred, ref = pred[None], ref[None]
    for name, t in (("prediction", pred), ("reference", ref)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise InputError(f"The {name} holds labels outside 0..{num_classes - 1}.")
    return pred, ref


def confusion(
    pred: torch.Tensor, ref: torch.Tensor, num_classes: int, where: torch.Tensor | None = None
) -> torch.Tensor:
    """[num_classes, num_classes] pixel counts, indexed [reference, prediction] (``where``: only those pixels)."""
    pred, ref = _check(pred, ref, num_classes)
    index = ref * num_classes + pred
    if where is not None:
        index = index[where.reshape(index.shape)]
    return torch.bincount(index.reshape(-1), minlength=num_classes * num_classes).view(num_classes, num_classes)


def _iou(counts: torch.Tensor) -> torch.Tensor:
    """IoU per class from a confusion matrix; NaN for a class in neither map."""
    counts = counts.double()
    hit = counts.diagonal()
    union = counts.sum(0) + counts.sum(1) - hit
    return torch.where(union > 0, hit / union.clamp_min(1), torch.nan)


def boundary(labels: torch.Tensor) -> torch.Tensor:
    """[B, H, W] bool: pixels with a different label among their 8 neighbours (edges replicate the border)."""
    x = F.pad(labels[:, None].float(), (1, 1, 1, 1), mode="replicate")
    high = F.max_pool2d(x, 3, stride=1)
    low = -F.max_pool2d(-x, 3, stride=1)
    return (high != low)[:, 0]


def _near(mask: torch.Tensor, tolerance: int) -> torch.Tensor:
    """[B, H, W] bool: within ``tolerance`` px (Chebyshev) of a True pixel of ``mask``."""
    if tolerance == 0:
        return mask
    return F.max_pool2d(mask[:, None].float(), 2 * tolerance + 1, stride=1, padding=tolerance)[:, 0] > 0


def boundary_f(pred: torch.Tensor, ref: torch.Tensor, tolerance: int = BOUNDARY_TOLERANCE) -> torch.Tensor:
    """Boundary F per image ([B], NaN where neither map has a boundary)."""
    if pred.ndim == 2:
        pred, ref = pred[None], ref[None]
    bp, br = boundary(pred), boundary(ref)
    n_p, n_r = bp.sum((1, 2)).double(), br.sum((1, 2)).double()
    precision = (bp & _near(br, tolerance)).sum((1, 2)) / n_p.clamp_min(1)
    recall = (br & _near(bp, tolerance)).sum((1, 2)) / n_r.clamp_min(1)
    f = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    # One map without a boundary and the other with one: F is 0; neither: no boundary to score.
    return torch.where((n_p == 0) & (n_r == 0), torch.nan, f)


@dataclass(frozen=True)
class SegmentationScores:
    """Scores of predicted label maps against reference ones (see the module's docstring)."""

    n: int  # images
    miou: float
    per_class: dict[str, float]  # IoU of every class that occurs (in the reference or the prediction)
    boundary_f: float
    interior_miou: float
    pixel_accuracy: float
    predicted_fraction: dict[str, float]  # share of all pixels predicted as each class

    def to_dict(self) -> dict:
        return asdict(self)


def score_labels(
    pred: torch.Tensor, ref: torch.Tensor, class_names: list[str] | tuple[str, ...], tolerance: int = BOUNDARY_TOLERANCE
) -> SegmentationScores:
    """Every score of ``pred`` against ``ref`` ([B, H, W] or [H, W] class indices into ``class_names``)."""
    n = len(class_names)
    pred, ref = _check(pred, ref, n)
    counts = confusion(pred, ref, n)
    iou = _iou(counts)
    interior = ~_near(boundary(ref), tolerance)
    inner = _iou(confusion(pred, ref, n, interior))
    f = boundary_f(pred, ref, tolerance)
    present = ~torch.isnan(iou)
    share = counts.sum(0).double() / counts.sum().clamp_min(1)
    return SegmentationScores(
        n=pred.shape[0],
        miou=float(iou[present].mean()),
        per_class={class_names[c]: float(iou[c]) for c in range(n) if present[c]},
        boundary_f=float(f[~torch.isnan(f)].mean()) if (~torch.isnan(f)).any() else float("nan"),
        interior_miou=float(inner[~torch.isnan(inner)].mean()) if (~torch.isnan(inner)).any() else float("nan"),
        pixel_accuracy=float(counts.diagonal().sum() / counts.sum().clamp_min(1)),
        predicted_fraction={class_names[c]: float(share[c]) for c in range(n)},
    )

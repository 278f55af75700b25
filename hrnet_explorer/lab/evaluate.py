"""Held-out accuracy of a lab model under interventions whose effect is known by construction.

Conditions (each on the same seeded test samples):

- ``clean``: the images as rendered.
- ``blurred``: the whole image blurred (sigma ``BLUR_SIGMA``): fine-class evidence is gone, coarse is not.
- ``blurred_in_mask``: only the evidence region blurred: the same, with the background untouched.
- ``evidence_removed``: the region redrawn as the clutter beneath it (not a constant fill, which would
  leave a coarse class's outline): nothing is left to classify, so accuracy should be chance.
- ``background_replaced``: the same evidence over new, independent clutter: accuracy should not move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from .task import BLUR_SIGMA, CLASSES, FAMILY, LabBatch, gaussian_blur, render

__all__ = ["CONDITIONS", "Accuracy", "LabEvaluation", "condition_batch", "evaluate", "accuracy_of"]

CONDITIONS = ("clean", "blurred", "blurred_in_mask", "evidence_removed", "background_replaced")


def condition_batch(
    indices: Sequence[int] | range, condition: str, split: str = "test", size: int = 224, device="cpu"
) -> LabBatch:
    """The samples ``indices`` of ``split`` under ``condition`` (one of :data:`CONDITIONS`)."""
    if condition not in CONDITIONS:
        raise ValueError(f"Unknown condition {condition!r}: use one of {', '.join(CONDITIONS)}.")
    if condition == "evidence_removed":
        return render(indices, split, size, device, evidence=False)
    if condition == "background_replaced":
        return render(indices, split, size, device, clutter=1)
    batch = render(indices, split, size, device)
    if condition == "blurred":
        return LabBatch(gaussian_blur(batch.images), batch.labels, batch.masks)
    if condition == "blurred_in_mask":
        images = torch.where(batch.masks.unsqueeze(1), gaussian_blur(batch.images), batch.images)
        return LabBatch(images, batch.labels, batch.masks)
    return batch


@dataclass(frozen=True)
class Accuracy:
    """Accuracy overall, per family and per class, with the number of images behind it."""

    n: int
    overall: float
    family: dict[str, float]
    per_class: dict[str, float]


def accuracy_of(predictions: torch.Tensor, labels: torch.Tensor) -> Accuracy:
    """Accuracy of ``predictions`` against ``labels`` (both 1-D class indices into ``CLASSES``)."""
    predictions, labels = predictions.cpu(), labels.cpu()
    correct = (predictions == labels).float()
    per_class = {name: float(correct[labels == i].mean()) for i, name in enumerate(CLASSES) if (labels == i).any()}
    family = {}
    for fam in ("fine", "coarse"):
        members = torch.tensor([FAMILY[CLASSES[int(label)]] == fam for label in labels])
        if members.any():
            family[fam] = float(correct[members].mean())
    return Accuracy(len(labels), float(correct.mean()), family, per_class)


@dataclass(frozen=True)
class LabEvaluation:
    """Accuracy under each condition on the first ``n`` samples of ``split``."""

    n: int
    split: str
    blur_sigma: float
    conditions: dict[str, Accuracy]

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "split": self.split,
            "blur_sigma": self.blur_sigma,
            "chance": 1 / len(CLASSES),
            "conditions": {name: asdict(acc) for name, acc in self.conditions.items()},
        }


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    mean: Sequence[float],
    std: Sequence[float],
    n: int = 1000,
    *,
    split: str = "test",
    size: int = 224,
    conditions: Sequence[str] = CONDITIONS,
    batch_size: int = 100,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> LabEvaluation:
    """Classify the first ``n`` samples of ``split`` under each condition with ``model`` (eval mode).

    ``mean``/``std`` are the model's input normalisation. The images are rendered on the model's device.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be ≥ 1, got n={n}, batch_size={batch_size}.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    results: dict[str, Accuracy] = {}
    chunks = [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    bar = _progress(len(conditions) * len(chunks), progress)
    for condition in conditions:
        predictions, labels = [], []
        for chunk in chunks:
            batch = condition_batch(chunk, condition, split, size, device)
            logits = model((batch.images - mean_t) / std_t)
            predictions.append(logits.argmax(-1))
            labels.append(batch.labels)
            bar.update()
        results[condition] = accuracy_of(torch.cat(predictions), torch.cat(labels))
    bar.close()
    return LabEvaluation(n, split, BLUR_SIGMA, results)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="lab eval", unit="batch", disable=not enabled, leave=False)

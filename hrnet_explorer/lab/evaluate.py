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

from ..errors import InputError
from ..progress import Progress, Steps
from .task import BLUR_SIGMA, CLASSES, FAMILY, LabBatch, gaussian_blur, render

__all__ = [
    "CONDITIONS",
    "Accuracy",
    "LabEvaluation",
    "StreamKnockouts",
    "accuracy_of",
    "condition_batch",
    "evaluate",
    "stream_knockouts",
]

CONDITIONS = ("clean", "blurred", "blurred_in_mask", "evidence_removed", "background_replaced")


def condition_batch(
    indices: Sequence[int] | range, condition: str, split: str = "test", size: int = 224, device="cpu"
) -> LabBatch:
    """The samples ``indices`` of ``split`` under ``condition`` (one of :data:`CONDITIONS`)."""
    if condition not in CONDITIONS:
        raise InputError(f"Unknown condition {condition!r}: use one of {', '.join(CONDITIONS)}.")
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
    progress: Progress | None = None,
) -> LabEvaluation:
    """Classify the first ``n`` samples of ``split`` under each condition with ``model`` (eval mode).

    ``mean``/``std`` are the model's input normalisation. The images are rendered on the model's device.
    ``progress(done, total)``: batches, over all conditions.
    """
    if n < 1 or batch_size < 1:
        raise InputError(f"n and batch_size must be ≥ 1, got n={n}, batch_size={batch_size}.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    results: dict[str, Accuracy] = {}
    chunks = [range(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    steps = Steps(progress, len(conditions) * len(chunks))
    for condition in conditions:
        predictions, labels = [], []
        for chunk in chunks:
            batch = condition_batch(chunk, condition, split, size, device)
            logits = model((batch.images - mean_t) / std_t)
            predictions.append(logits.argmax(-1))
            labels.append(batch.labels)
            steps.advance()
        results[condition] = accuracy_of(torch.cat(predictions), torch.cat(labels))
    return LabEvaluation(n, split, BLUR_SIGMA, results)


@dataclass(frozen=True)
class StreamKnockouts:
    """The true class's probability after each final stream is knocked out, per class and per family.

    ``self_edge=True``: nothing of stream k reaches the head (:func:`resolution_reliance` with its own path
    removed too); ``False``: stream k only stops feeding the others. ``probability`` is before any knockout;
    ``without[k]`` after removing stream k (means over ``n_per_class`` test images of the class)."""

    n_per_class: int
    split: str
    self_edge: bool
    per_class: dict[str, dict]  # class → {"probability": p, "without": [p without stream 0, 1, 2, 3]}
    family: dict[str, dict]

    def to_dict(self) -> dict:
        return asdict(self)


def stream_knockouts(loaded, n_per_class: int = 20, *, split: str = "test", self_edge: bool = True) -> StreamKnockouts:
    """Knock out each final stream of the lab model ``loaded`` on the first ``n_per_class`` test images of every
    class (samples 0 .. 10 n - 1) and average the true class's probability per class and per family."""
    from ..attribution import resolution_reliance

    if n_per_class < 1:
        raise InputError(f"n_per_class must be ≥ 1, got {n_per_class}.")
    config = loaded.data_config
    size = config["input_size"][-1]
    device = loaded.device
    mean = torch.tensor(config["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(config["std"], device=device).view(1, 3, 1, 1)
    before: dict[str, list[float]] = {c: [] for c in CLASSES}
    after: dict[str, list[list[float]]] = {c: [] for c in CLASSES}
    n = n_per_class * len(CLASSES)
    for first in range(0, n, 50):
        batch = render(range(first, min(first + 50, n)), split, size, device)
        for image, label in zip((batch.images - mean) / std, batch.labels.tolist(), strict=True):
            knocked = resolution_reliance(loaded, image[None], target=label, self_edge=self_edge)
            before[CLASSES[label]].append(knocked[0].prob_before)
            after[CLASSES[label]].append([k.prob_after for k in knocked])

    def summary(names: list[str]) -> dict:
        return {
            "probability": float(torch.tensor([p for c in names for p in before[c]]).mean()),
            "without": torch.tensor([row for c in names for row in after[c]]).mean(0).tolist(),
        }

    family = {f: summary([c for c in CLASSES if FAMILY[c] == f]) for f in ("fine", "coarse")}
    return StreamKnockouts(n_per_class, split, self_edge, {c: summary([c]) for c in CLASSES}, family)

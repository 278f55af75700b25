"""Top-k prediction for one image (or a preprocessed batch), named with the model's own classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .errors import InputError
from .images import ImageInput, to_batch
from .runtime import autocast
from .zoo import LoadedModel, WeightsSource, default_class_names, imagenet_class_names

__all__ = ["ClassScore", "Prediction", "predict", "class_name", "topk_from_logits"]


def class_name(index: int) -> str:
    """The human-readable ImageNet-1k name of class ``index`` (kept for callers of the ImageNet-only API;
    a model's own names are ``LoadedModel.class_name(i)``)."""
    if not 0 <= index < 1000:
        raise InputError(f"ImageNet class index must be in 0..999, got {index}.")
    return imagenet_class_names()[index]


@dataclass(frozen=True)
class ClassScore:
    """One class of a top-k list: its index, its name in the model's class list, softmax probability, logit."""

    index: int
    label: str
    probability: float
    logit: float


@dataclass(frozen=True)
class Prediction:
    """What :func:`predict` returns: the top-k classes of one image, all logits, and how they were computed
    (variant, weights and their origin, device, precision, the input size the network saw)."""

    variant: str
    weights: WeightsSource
    device: str
    precision: str
    input_size: tuple[int, int]
    top: list[ClassScore]
    logits: torch.Tensor  # CPU float32, shape (num_classes,)
    name: str | None = None  # the model's display name (e.g. "lab"); None: the variant's

    @property
    def model_name(self) -> str:
        return self.name or self.variant

    def to_dict(self) -> dict:
        return {
            "model": self.model_name,
            "variant": self.variant,
            "num_classes": self.logits.numel(),
            "weights": {"kind": self.weights.kind, "detail": self.weights.detail, "tag": self.weights.tag},
            "random_weights": self.weights.is_random,
            "device": self.device,
            "precision": self.precision,
            "input_size": list(self.input_size),
            "top": [vars(s) for s in self.top],
        }


def topk_from_logits(logits: torch.Tensor, k: int = 5, class_names: Sequence[str] | None = None) -> list[ClassScore]:
    """The ``k`` best classes of one logit vector (all of them when ``k`` exceeds their number), best first,
    with softmax probabilities. ``class_names``: one per logit (default: ImageNet's for 1000 logits, else
    "class i").

    Ranked by logit, not by probability: for huge logits several probabilities underflow to the same 0.
    """
    logits = logits.detach().float().cpu().reshape(-1)
    n = logits.numel()
    if k < 1:
        raise InputError(f"topk must be at least 1, got {k}.")
    names = default_class_names(n) if class_names is None else class_names
    if len(names) != n:
        raise InputError(f"{len(names)} class names for {n} logits.")
    probs = logits.softmax(-1)
    indices = logits.topk(min(k, n)).indices.tolist()
    return [ClassScore(i, names[i], float(probs[i]), float(logits[i])) for i in indices]


def predict(loaded: LoadedModel, image: ImageInput, topk: int = 5, input_size: int | None = None) -> Prediction:
    """Classify ``image`` (any accepted input, or an already preprocessed 1x3xHxW tensor): the ``topk`` best
    of the model's classes (all of them when it has fewer), with the model's class names."""
    loaded.check_classifier("predict()")
    x = to_batch(image, loaded.data_config, input_size)
    if x.shape[0] != 1:
        raise InputError(f"predict() takes one image; got a batch of {x.shape[0]}.")
    with torch.inference_mode(), autocast(loaded.device, loaded.precision):
        logits = loaded.model(x.to(loaded.device))[0].float().cpu()
    return Prediction(
        loaded.variant.name,
        loaded.weights,
        str(loaded.device),
        loaded.precision,
        (x.shape[-2], x.shape[-1]),
        topk_from_logits(logits, topk, loaded.class_names),
        logits,
        loaded.name,
    )

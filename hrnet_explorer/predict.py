"""Top-k ImageNet prediction for one image (or a preprocessed batch)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from timm.data import ImageNetInfo

from .images import ImageInput, to_batch
from .runtime import autocast
from .zoo import LoadedModel, WeightsSource

__all__ = ["ClassScore", "Prediction", "predict", "class_name", "topk_from_logits"]


@lru_cache(maxsize=1)
def _imagenet() -> ImageNetInfo:
    return ImageNetInfo()


def class_name(index: int) -> str:
    """The human-readable ImageNet-1k name of class ``index`` (timm ships the names)."""
    if not 0 <= index < 1000:
        raise ValueError(f"ImageNet class index must be in 0..999, got {index}.")
    return _imagenet().index_to_description(index)


@dataclass(frozen=True)
class ClassScore:
    index: int
    label: str
    probability: float
    logit: float


@dataclass(frozen=True)
class Prediction:
    variant: str
    weights: WeightsSource
    device: str
    precision: str
    input_size: tuple[int, int]
    top: list[ClassScore]
    logits: torch.Tensor  # CPU float32, shape (1000,)

    def to_dict(self) -> dict:
        return {
            "variant": self.variant,
            "weights": {"kind": self.weights.kind, "detail": self.weights.detail, "tag": self.weights.tag},
            "random_weights": self.weights.is_random,
            "device": self.device,
            "precision": self.precision,
            "input_size": list(self.input_size),
            "top": [vars(s) for s in self.top],
        }


def topk_from_logits(logits: torch.Tensor, k: int = 5) -> list[ClassScore]:
    """The ``k`` best classes of one logit vector, with softmax probabilities."""
    logits = logits.detach().float().cpu().reshape(-1)
    if not 1 <= k <= logits.numel():
        raise ValueError(f"topk must be in 1..{logits.numel()}, got {k}.")
    probs = logits.softmax(-1)
    values, indices = probs.topk(k)
    return [
        ClassScore(int(i), class_name(int(i)), float(p), float(logits[i])) for p, i in zip(values, indices, strict=True)
    ]


def predict(loaded: LoadedModel, image: ImageInput, topk: int = 5, input_size: int | None = None) -> Prediction:
    """Classify ``image`` (any accepted input, or an already preprocessed 1x3xHxW tensor)."""
    x = to_batch(image, loaded.data_config, input_size)
    if x.shape[0] != 1:
        raise ValueError(f"predict() takes one image; got a batch of {x.shape[0]}.")
    with torch.inference_mode(), autocast(loaded.device, loaded.precision):
        logits = loaded.model(x.to(loaded.device))[0].float().cpu()
    return Prediction(
        loaded.variant.name,
        loaded.weights,
        str(loaded.device),
        loaded.precision,
        (x.shape[-2], x.shape[-1]),
        topk_from_logits(logits, topk),
        logits,
    )

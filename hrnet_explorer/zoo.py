"""The nine HRNet ImageNet variants as data, and loading one with its weights.

Weights come from, in this order of preference: a local checkpoint file, timm's own Hugging Face hub
path (``pretrained=True``), or random initialisation — only when asked, or when the hub file is
neither reachable nor cached. Every :class:`LoadedModel` says where its weights came from.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from timm.data import create_transform, resolve_model_data_config

from .runtime import Precision, resolve_device

__all__ = [
    "VARIANTS",
    "VariantCard",
    "WeightsError",
    "WeightsSource",
    "LoadedModel",
    "RandomWeightsWarning",
    "get_variant",
    "weight_tags",
    "load_model",
    "clear_model_cache",
]


@dataclass(frozen=True)
class VariantCard:
    """One row of the model card the product was founded on (see SEED_TABLE.md)."""

    name: str  # timm architecture name, e.g. "hrnet_w18"
    width: int  # C: channels of the high-resolution stream (streams are C, 2C, 4C, 8C)
    card_params_m: float  # parameters in millions, as the card rounds them
    card_flops: int  # the card's "FLOPs" column (≈1.285 × MACs: an artefact, see costs.py)
    card_top1: float  # ImageNet-1k top-1 of the card's weights (timm tag .ms_in1k)
    card_top5: float
    card_file_bytes: int  # size of the card's weight file
    card_weight_file: str  # file name the card lists
    card_tag: str = "ms_in1k"  # the timm tag whose accuracy the card reports

    @property
    def default_tag(self) -> str:
        """The tag timm picks for ``pretrained=True`` with no tag (differs from the card for 3)."""
        return timm.models.get_pretrained_cfg(self.name).tag


def _card(name, width, params, flops, top1, top5, size, file) -> VariantCard:
    return VariantCard(name, width, params, flops, top1, top5, size, file)


VARIANTS: dict[str, VariantCard] = {
    c.name: c
    for c in (
        _card("hrnet_w18_small", 16, 13.19, 2_071_651_488, 72.34, 90.68, 52_934_302, "hrnet_w18_small_v1-f460c6bc.pth"),
        _card(
            "hrnet_w18_small_v2", 18, 15.60, 3_360_023_160, 75.11, 92.41, 62_682_879, "hrnet_w18_small_v2-4c50a8cb.pth"
        ),
        _card("hrnet_w18", 18, 21.30, 5_547_205_500, 76.76, 93.44, 85_718_883, "hrnetv2_w18-8cb57bb9.pth"),
        _card("hrnet_w30", 30, 37.71, 10_474_119_492, 78.21, 94.22, 151_452_218, "hrnetv2_w30-8d7f8dab.pth"),
        _card("hrnet_w32", 32, 41.23, 11_524_528_320, 78.45, 94.19, 165_547_812, "hrnetv2_w32-90d8c5fb.pth"),
        _card("hrnet_w40", 40, 57.56, 16_381_182_192, 78.93, 94.48, 230_899_236, "hrnetv2_w40-7cd397a4.pth"),
        _card("hrnet_w44", 44, 67.06, 19_202_520_264, 78.89, 94.37, 268_957_432, "hrnetv2_w44-c9ac8c18.pth"),
        _card("hrnet_w48", 48, 77.47, 22_285_865_760, 79.32, 94.51, 310_603_710, "hrnetv2_w48-abd2e6ab.pth"),
        _card("hrnet_w64", 64, 128.06, 37_239_321_984, 79.46, 94.65, 513_071_818, "hrnetv2_w64-b47cc881.pth"),
    )
}


class WeightsError(ValueError):
    """A weights request that cannot be satisfied (unknown tag, missing or corrupt file)."""


class RandomWeightsWarning(UserWarning):
    """Raised as a warning whenever a model is built with random weights."""


def get_variant(name: str) -> VariantCard:
    """The card of ``name`` (``hrnet_`` prefix optional), or a ValueError listing the nine."""
    key = name if name.startswith("hrnet_") else f"hrnet_{name}"
    if key not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}. Choose one of: {', '.join(VARIANTS)}.")
    return VARIANTS[key]


def weight_tags(variant: str) -> list[str]:
    """Every pretrained timm name for a variant, e.g. ``hrnet_w18.ms_in1k``, ``hrnet_w18_ssld.paddle_in1k``.

    The ssld weights belong to a sibling architecture (``hrnet_w18_ssld``: no bias in the head convs).
    """
    card = get_variant(variant)
    return sorted(timm.list_pretrained(f"{card.name}.*") + timm.list_pretrained(f"{card.name}_ssld.*"))


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights came from. ``kind`` is "file", "hub" or "random"."""

    kind: str
    detail: str  # the file path, the hub tag (e.g. "timm/hrnet_w18.ms_in1k"), or why random
    tag: str | None = None  # full timm name of the pretrained tag, when there is one

    @property
    def is_random(self) -> bool:
        return self.kind == "random"

    def describe(self) -> str:
        if self.is_random:
            return f"RANDOM weights ({self.detail}): predictions are meaningless."
        return f"{self.kind}: {self.detail}"


@dataclass
class LoadedModel:
    """A timm HRNet in eval mode, with the preprocessing of its weights and their origin."""

    variant: VariantCard
    architecture: str  # timm model name actually built (e.g. hrnet_w18_ssld)
    model: torch.nn.Module
    data_config: dict[str, Any]  # timm's resolved data config: input_size, crop_pct, interpolation, mean, std
    weights: WeightsSource
    device: torch.device
    precision: Precision

    @property
    def transform(self):
        """timm's eval transform for these weights (resize, center crop, normalise)."""
        return create_transform(**self.data_config, is_training=False)


_CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def _parse_weights(card: VariantCard, weights: str | os.PathLike | None) -> tuple[str, str | None]:
    """Classify a weights request as ("random", None), ("hub", "arch.tag") or ("file", path)."""
    if weights is None or str(weights) in ("default", "pretrained"):
        return "hub", f"{card.name}.{card.default_tag}"
    text = str(weights)
    if text == "random":
        return "random", None
    tags = weight_tags(card.name)
    for full in tags:
        short = full.split(".", 1)[1]
        if text in (full, short) or (text == "ssld" and "_ssld." in full):
            return "hub", full
    if isinstance(weights, os.PathLike) or os.sep in text or text.endswith(_CHECKPOINT_SUFFIXES) or Path(text).exists():
        return "file", text
    raise WeightsError(
        f"Unknown weights {text!r} for {card.name}. Use 'default', 'random', a checkpoint path, or one of: "
        + ", ".join(t.split(".", 1)[1] if t.startswith(card.name + ".") else t for t in tags)
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"Checkpoint file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            # weights_only: a checkpoint is data, never code to run.
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any decoding failure means the file is not a usable checkpoint
        raise WeightsError(f"Could not read checkpoint {path}: {type(exc).__name__}: {exc}") from exc
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"Checkpoint {path} does not hold a state dict of tensors.")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _build(card: VariantCard, kind: str, spec: str | None) -> tuple[str, torch.nn.Module, WeightsSource]:
    if kind == "hub":
        arch, tag = spec.split(".", 1)
        try:
            model = timm.create_model(spec, pretrained=True)
            return arch, model, WeightsSource("hub", f"timm/{spec}", spec)
        except LocalEntryNotFoundError:
            # Offline (or hub unreachable) and the file is not in the Hugging Face cache.
            reason = f"timm/{spec} is not in the Hugging Face cache and the hub is unreachable"
            warnings.warn(f"{card.name}: {reason}; using RANDOM weights.", RandomWeightsWarning, stacklevel=3)
            model = timm.create_model(spec, pretrained=False)
            return arch, model, WeightsSource("random", reason, spec)
    if kind == "random":
        warnings.warn(f"{card.name}: RANDOM weights, as asked.", RandomWeightsWarning, stacklevel=3)
        spec = f"{card.name}.{card.card_tag}"  # preprocessing of the card's weights
        return card.name, timm.create_model(spec, pretrained=False), WeightsSource("random", "asked for", None)
    path = Path(spec).expanduser()
    state = _read_state_dict(path)
    # A checkpoint without head-conv biases is an ssld one (its own architecture in timm).
    arch = f"{card.name}_ssld" if "final_layer.0.bias" not in state and "final_layer.0.weight" in state else card.name
    model = timm.create_model(f"{arch}.{'paddle_in1k' if arch.endswith('_ssld') else card.card_tag}", pretrained=False)
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    wrong_shape = [k for k in ours if k in state and state[k].shape != ours[k].shape]
    if missing or unexpected or wrong_shape:
        raise WeightsError(
            f"Checkpoint {path} does not fit {arch}: {len(missing)} missing, {len(unexpected)} unexpected and "
            f"{len(wrong_shape)} wrongly shaped tensors (e.g. {(missing + unexpected + wrong_shape)[:2]}). "
            "Is it a checkpoint of another variant?"
        )
    model.load_state_dict(state)
    return arch, model, WeightsSource("file", str(path.resolve()), None)


_CACHE: OrderedDict[tuple, LoadedModel] = OrderedDict()
_CACHE_LOCK = threading.Lock()
MODEL_CACHE_SIZE = int(os.environ.get("HRNET_EXPLORER_MODEL_CACHE", "2"))  # w64 alone is 0.5 GB


def load_model(
    variant: str,
    weights: str | os.PathLike | None = "default",
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    *,
    cache: bool = True,
) -> LoadedModel:
    """Build ``variant`` with ``weights`` on ``device`` (default: CUDA if available, else CPU).

    ``weights``: "default" (timm's default tag, from the Hugging Face hub or its cache), a tag
    ("ms_in1k", "gluon_in1k", "ms_aug_in1k", "ssld"/"paddle_in1k" or a full timm name), a local
    checkpoint (.safetensors, or .pth read with ``weights_only=True``), or "random".
    ``precision``: "fp32", or "bf16" for autocast at inference (the weights stay fp32).
    Loaded models are kept in a small LRU cache (``MODEL_CACHE_SIZE``) unless ``cache=False``.
    """
    card = get_variant(variant)
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', not {precision!r}.")
    dev = resolve_device(device)
    kind, spec = _parse_weights(card, weights)
    key = (card.name, kind, spec, str(dev), precision)
    with _CACHE_LOCK:
        if cache and key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        arch, model, source = _build(card, kind, spec)
        model.eval().to(dev)
        loaded = LoadedModel(card, arch, model, resolve_model_data_config(model), source, dev, precision)
        if cache and MODEL_CACHE_SIZE > 0:
            _CACHE[key] = loaded
            while len(_CACHE) > MODEL_CACHE_SIZE:
                _CACHE.popitem(last=False)
    return loaded


def clear_model_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()

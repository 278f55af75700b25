"""Where a model's weights come from — a local checkpoint, timm's hub path (or its cache), or a seeded random
draw — and building the timm model with them."""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError

from ..errors import CardError, WeightsError
from . import variants
from .cards import card_data_config, read_card
from .variants import (
    LAB,
    LAB_SEG,
    VARIANTS,
    VariantCard,
    base_variant,
    default_class_names,
    get_variant,
    imagenet_class_names,
    weight_tags,
)


class RandomWeightsWarning(UserWarning):
    """Raised as a warning whenever a model is built with random weights."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights came from. ``kind`` is "file", "hub" or "random"."""

    kind: str
    detail: str  # the file path, the hub tag (e.g. "timm/hrnet_w18.ms_in1k"), or why random
    tag: str | None = None  # full timm name of the pretrained tag, when there is one
    seed: int | None = None  # random weights: the seed they were drawn from (same seed, same weights)

    @property
    def is_random(self) -> bool:
        return self.kind == "random"

    def describe(self) -> str:
        if self.is_random:
            return f"RANDOM weights ({self.detail}, seed {self.seed}): predictions are meaningless."
        return f"{self.kind}: {self.detail}"

    def shown(self, model: str) -> str:
        """:meth:`describe` for what leaves this machine (reports, downloads): a checkpoint named by its ``model``'s
        name, never by its path here (:func:`public_detail`); a hub tag and random weights as they are."""
        return f"file: {public_detail('file', self.detail, model)}" if self.kind == "file" else self.describe()

    def to_public_dict(self, model: str) -> dict:
        """The weights as plain data for what leaves this machine: ``detail`` as :func:`public_detail` gives it."""
        detail = public_detail(self.kind, self.detail, model)
        return {"kind": self.kind, "detail": detail, "tag": self.tag, "random": self.is_random}


def public_detail(kind: str, detail: str, model: str) -> str:
    """A :class:`WeightsSource`'s ``detail`` as pages and files that leave this machine show it: a checkpoint by
    its ``model``'s name (its path here says nothing to anyone else and tells them about this machine)."""
    return f"the checkpoint of {model}" if kind == "file" else detail


_CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


def parse_weights(card: VariantCard, weights: str | os.PathLike | None) -> tuple[str, str | None]:
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


def shipped_checkpoint(name: str) -> Path | None:
    """The checkpoint of a model shipped with the package under ``name`` — the lab model (``lab``) and the dense
    lab model (``lab-seg``), each with its card beside it — or None for any other name. Read from the folders
    as they are now (tests point them elsewhere)."""
    folders = {LAB: variants.LAB_DIR, LAB_SEG: variants.LAB_SEG_DIR}
    return folders[name] / f"{name}.safetensors" if name in folders else None


def _request(variant: str, weights: str | os.PathLike | None) -> tuple[VariantCard | None, str, str | None]:
    """→ (the variant asked for, or None for a shipped model; kind; spec) — see :func:`parse_weights`."""
    path = shipped_checkpoint(variant)
    if path is None:
        card = get_variant(variant)
        return (card, *parse_weights(card, weights))
    what = "dense lab" if variant == LAB_SEG else "lab"
    if weights not in (None, "default"):
        raise WeightsError(f"The {what} model has one set of weights, 'default'; got {str(weights)!r}.")
    if not path.is_file():
        raise WeightsError(
            f"The {what} model is missing: no {path} (it ships with its card {path.stem}.json in {path.parent})."
        )
    return None, "file", str(path)
    if variant != LAB:
        card = get_variant(variant)
        return (card, *parse_weights(card, weights))
    if weights not in (None, "default"):
        raise WeightsError(f"The lab model has one set of weights, 'default'; got {str(weights)!r}.")
    path = variants.LAB_DIR / "lab.safetensors"
    if not path.is_file():
        raise WeightsError(
            f"The lab model is missing: no {path} (it ships with its card lab.json in {variants.LAB_DIR})."
        )
    return None, "file", str(path)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
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
        # One line: torch's message for a refused pickle runs to six lines of advice that does not apply here.
        if isinstance(exc, pickle.UnpicklingError):
            reason = "not a PyTorch checkpoint, or it holds pickled objects that weights_only=True refuses"
        else:
            reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:160]}"
        raise WeightsError(f"Could not read checkpoint {path}: {reason}") from exc
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"Checkpoint {path} does not hold a state dict of tensors.")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _create(name: str, seed: int, **kwargs: Any) -> torch.nn.Module:
    """``timm.create_model`` with its random init drawn from ``seed``; the global RNG is left as it was.

    So random weights are a function of (architecture, seed): a model that left the cache comes back as
    the same network (the app explains the network it predicted with), and loading never shifts a
    caller's random stream.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return timm.create_model(name, **kwargs)


@dataclass(frozen=True)
class _Built:
    architecture: str
    model: torch.nn.Module
    source: WeightsSource
    class_names: tuple[str, ...]
    name: str
    data_config: dict[str, Any] | None = None  # None: timm's config of the model built
    card: dict[str, Any] | None = None


def _build_hub(card: VariantCard, spec: str, seed: int) -> _Built:
    arch = spec.split(".", 1)[0]
    names = imagenet_class_names()
    try:
        model = _create(spec, seed, pretrained=True)
        return _Built(arch, model, WeightsSource("hub", f"timm/{spec}", spec), names, card.name)
    except LocalEntryNotFoundError:
        # Offline (or hub unreachable) and the file is not in the Hugging Face cache.
        reason = f"timm/{spec} is not in the Hugging Face cache and the hub is unreachable"
        warnings.warn(f"{card.name}: {reason}; using RANDOM weights.", RandomWeightsWarning, stacklevel=4)
        model = _create(spec, seed, pretrained=False)
        return _Built(arch, model, WeightsSource("random", reason, spec, seed), names, card.name)


def _build_random(card: VariantCard, seed: int) -> _Built:
    warnings.warn(f"{card.name}: RANDOM weights, as asked.", RandomWeightsWarning, stacklevel=4)
    model = _create(f"{card.name}.{card.card_tag}", seed, pretrained=False)  # preprocessing of the card's weights
    return _Built(card.name, model, WeightsSource("random", "asked for", None, seed), imagenet_class_names(), card.name)


def _checkpoint_card(asked: VariantCard | None, path: Path) -> tuple[dict[str, Any] | None, Path]:
    """The card beside checkpoint ``path`` (or None), read and checked against the variant ``asked`` for; and
    where it is. A shipped model (``asked`` None) must have one."""
    card_path = path.with_suffix(".json")
    card = read_card(card_path) if card_path.is_file() or asked is None else None
    if card is not None and asked is not None and base_variant(card["architecture"]) != asked.name:
        raise CardError(
            f"Model card {card_path} is for {card['architecture']}, but variant {asked.name} was asked for: "
            f"load it as variant {base_variant(card['architecture'])}."
        )
    return card, card_path


def _build_file(
    asked: VariantCard | None, path: Path, card: dict[str, Any] | None, card_path: Path, seed: int
) -> _Built:
    """A classifier's checkpoint, with its card (see :func:`_checkpoint_card`) if there is one."""
    state = read_state_dict(path)
    head = state.get("classifier.weight")
    if head is None and "head.classifier.weight" in state:
        raise CardError(
            f"Checkpoint {path} is a dense (segmentation) model: it needs a model card {card_path} beside it "
            'that says "task": "segmentation".'
        )
    if head is None or head.ndim != 2:
        raise WeightsError(f"Checkpoint {path} has no classifier head (classifier.weight): not an HRNet classifier.")
    n = head.shape[0]
    if card is not None:
        if card["num_classes"] != n:
            raise CardError(
                f"Model card {card_path} says num_classes {card['num_classes']}, but checkpoint {path} has a "
                f"{n}-class head (classifier.weight {list(head.shape)})."
            )
        arch = card["architecture"]
        fits = f"{arch}, the architecture its card {card_path} names"
    else:
        # A checkpoint without head-conv biases is an ssld one (its own architecture in timm).
        ssld = "final_layer.0.bias" not in state and "final_layer.0.weight" in state
        arch = fits = f"{asked.name}_ssld" if ssld else asked.name
    tag = "paddle_in1k" if arch.endswith("_ssld") else VARIANTS[base_variant(arch)].card_tag
    model = _create(f"{arch}.{tag}", seed, pretrained=False, num_classes=n)
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    wrong_shape = [k for k in ours if k in state and state[k].shape != ours[k].shape]
    if missing or unexpected or wrong_shape:
        raise (WeightsError if card is None else CardError)(
            f"Checkpoint {path} does not fit {fits}: {len(missing)} missing, {len(unexpected)} unexpected and "
            f"{len(wrong_shape)} wrongly shaped tensors (e.g. {(missing + unexpected + wrong_shape)[:2]}). "
            "Is it a checkpoint of another variant?"
        )
    model.load_state_dict(state)
    source = WeightsSource("file", str(path.resolve()), None)
    if card is None:
        return _Built(arch, model, source, default_class_names(n), path.stem)
    names = tuple(card["class_names"])
    return _Built(arch, model, source, names, card.get("name", path.stem), card_data_config(card), card)


def _file_stamp(path: Path) -> tuple[tuple[int, int] | None, ...]:
    """(size, mtime) of a checkpoint and its card: a retrained or edited model is not served from the cache."""
    stamps = []
    for p in (path, path.with_suffix(".json")):
        try:
            st = p.stat()
            stamps.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return tuple(stamps)

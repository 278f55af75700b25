"""The nine HRNet ImageNet variants as data, and loading one with its weights and class names.

Weights come from, in this order of preference: a local checkpoint file, timm's own Hugging Face hub
path (``pretrained=True``), or random initialisation — only when asked, or when the hub file is
neither reachable nor cached. Every :class:`LoadedModel` says where its weights came from.

A checkpoint may have any number of classes. A model card beside it (``NAME.json`` next to
``NAME.safetensors``, format :data:`CARD_FORMAT`) names its architecture, classes and preprocessing;
``load_model("lab")`` loads the card-described model shipped in :data:`LAB_DIR`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from timm.data import ImageNetInfo, create_transform, resolve_model_data_config

from .errors import CardError, InputError, WeightsError
from .runtime import Precision, resolve_device

__all__ = [
    "VARIANTS",
    "ASSETS",
    "LAB",
    "LAB_DIR",
    "CARD_FORMAT",
    "VariantCard",
    "WeightsError",
    "CardError",
    "WeightsSource",
    "LoadedModel",
    "ModelFile",
    "RandomWeightsWarning",
    "get_variant",
    "weight_tags",
    "imagenet_class_names",
    "read_card",
    "read_labels",
    "default_class_names",
    "model_files",
    "load_model",
    "clear_model_cache",
]

LAB = "lab"  # load_model(LAB): the model trained on the lab task, shipped as a checkpoint and its card
# Package data (in the wheel too): the example images, their sources and licences, and the lab model.
ASSETS = Path(__file__).resolve().parent / "assets"
LAB_DIR = ASSETS / "lab"  # lab.safetensors + its card lab.json
CARD_FORMAT = "hrnet-explorer-card/1"


@dataclass(frozen=True)
class VariantCard:
    """One row of the model card the product was founded on: timm's HRNet card numbers for this variant."""

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


class RandomWeightsWarning(UserWarning):
    """Raised as a warning whenever a model is built with random weights."""


def get_variant(name: str) -> VariantCard:
    """The card of ``name`` (``hrnet_`` prefix optional), or a ValueError listing the nine."""
    key = name if name.startswith("hrnet_") else f"hrnet_{name}"
    if key not in VARIANTS:
        raise InputError(f"Unknown variant {name!r}. Choose one of: {', '.join(VARIANTS)}.")
    return VARIANTS[key]


def weight_tags(variant: str) -> list[str]:
    """Every pretrained timm name for a variant, e.g. ``hrnet_w18.ms_in1k``, ``hrnet_w18_ssld.paddle_in1k``.

    The ssld weights belong to a sibling architecture (``hrnet_w18_ssld``: no bias in the head convs).
    """
    card = get_variant(variant)
    return sorted(timm.list_pretrained(f"{card.name}.*") + timm.list_pretrained(f"{card.name}_ssld.*"))


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names by index (timm ships them; read once, ~20 ms)."""
    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(1000))


def default_class_names(num_classes: int) -> tuple[str, ...]:
    """Names for a head without a card or labels: ImageNet's for 1000 classes, else "class 0".."class N-1"."""
    if num_classes == 1000:
        return imagenet_class_names()
    return tuple(f"class {i}" for i in range(num_classes))


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


@dataclass
class LoadedModel:
    """A timm HRNet in eval mode, with the preprocessing of its weights, their origin and its class names."""

    variant: VariantCard  # for a checkpoint with a card: the variant of the card's architecture
    architecture: str  # timm model name actually built (e.g. hrnet_w18_ssld)
    model: torch.nn.Module
    data_config: dict[str, Any]  # input_size, crop_pct, crop_mode, interpolation, mean, std: timm's or the card's
    weights: WeightsSource
    device: torch.device
    precision: Precision
    class_names: tuple[str, ...]  # one per output of the head, in index order
    name: str  # display name: the variant ("hrnet_w18"), or a checkpoint's card name or file stem ("lab")
    card: dict[str, Any] | None = None  # the model card read beside the checkpoint, as written

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_name(self, index: int) -> str:
        """The name of class ``index``; a ValueError outside 0..num_classes-1."""
        i = int(index)
        if i != index or not 0 <= i < self.num_classes:
            raise InputError(f"{self.name} has classes 0..{self.num_classes - 1}; got {index!r}.")
        return self.class_names[i]

    @property
    def transform(self):
        """timm's eval transform for these weights (resize, center crop, normalise)."""
        return create_transform(**self.data_config, is_training=False)


# ------------------------------------------------------------------------------------ cards and labels

# timm's eval transform accepts these (transforms.str_to_interp_mode, transforms_imagenet_eval).
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
_CROP_MODES = ("center", "squash", "border")


@lru_cache(maxsize=1)
def _architectures() -> tuple[str, ...]:
    """What a card may name: the nine variants and timm's ssld siblings of them."""
    ssld = [n for n in timm.list_models("hrnet_*_ssld") if n.removesuffix("_ssld") in VARIANTS]
    return (*VARIANTS, *ssld)


def _base_variant(architecture: str) -> str:
    return architecture.removesuffix("_ssld")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _names_problem(names: Sequence[str]) -> str | None:
    """Why ``names`` cannot name classes (empty, blank or repeated), or None."""
    if not names:
        return "holds no names"
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            return f"class {i} has no name ({name!r})"
        if name in seen:
            return f"names {name!r} twice (classes {seen[name]} and {i}); names must be unique"
        seen[name] = i
    return None


def _check_preprocessing(pre: Any, bad) -> None:
    if not isinstance(pre, dict):
        raise bad("preprocessing", "must be an object")
    for key in ("input_size", "mean", "std", "interpolation", "crop_pct"):
        if key not in pre:
            raise bad(f"preprocessing.{key}", "is missing")
    size = pre["input_size"]
    if not (
        isinstance(size, list)
        and len(size) == 3
        and all(_is_int(v) for v in size)
        and size[0] == 3
        and all(v >= 32 and v % 32 == 0 for v in size[1:])
    ):
        raise bad("preprocessing.input_size", f"must be [3, H, W] with H and W multiples of 32, not {size!r}")
    for key in ("mean", "std"):
        values = pre[key]
        if not (isinstance(values, list) and len(values) == 3 and all(_is_number(v) for v in values)):
            raise bad(f"preprocessing.{key}", f"must be three finite numbers (R, G, B), not {values!r}")
    if any(v <= 0 for v in pre["std"]):
        raise bad("preprocessing.std", f"must be positive, not {pre['std']!r}")
    if pre["interpolation"] not in _INTERPOLATIONS:
        choices = ", ".join(_INTERPOLATIONS)
        raise bad("preprocessing.interpolation", f"must be one of {choices}, not {pre['interpolation']!r}")
    if not (_is_number(pre["crop_pct"]) and 0 < pre["crop_pct"] <= 1):
        raise bad("preprocessing.crop_pct", f"must be a number in (0, 1], not {pre['crop_pct']!r}")
    if pre.get("crop_mode", "center") not in _CROP_MODES:
        raise bad("preprocessing.crop_mode", f"must be one of {', '.join(_CROP_MODES)}, not {pre['crop_mode']!r}")


def _check_card(card: Any, path: Path) -> None:
    def bad(field: str, problem: str) -> CardError:
        return CardError(f"Model card {path}: field {field!r} {problem}.")

    if not isinstance(card, dict):
        raise CardError(f"Model card {path} must hold a JSON object, not a {type(card).__name__}.")
    for key in ("format", "architecture", "num_classes", "class_names", "preprocessing"):
        if key not in card:
            raise bad(key, "is missing")
    if card["format"] != CARD_FORMAT:
        raise bad("format", f"must be {CARD_FORMAT!r}, not {card['format']!r}")
    if "name" in card and not (isinstance(card["name"], str) and card["name"].strip()):
        raise bad("name", f"must be a non-empty string, not {card['name']!r}")
    if card["architecture"] not in _architectures():
        raise bad("architecture", f"must be one of {', '.join(_architectures())}, not {card['architecture']!r}")
    n, names = card["num_classes"], card["class_names"]
    if not (_is_int(n) and n >= 1):
        raise bad("num_classes", f"must be a positive integer, not {n!r}")
    if not (isinstance(names, list) and all(isinstance(v, str) for v in names)):
        raise bad("class_names", "must be a list of strings")
    if len(names) != n:
        raise bad("class_names", f"has {len(names)} names, but num_classes is {n}")
    problem = _names_problem(names)
    if problem:
        raise bad("class_names", problem)
    _check_preprocessing(card["preprocessing"], bad)
    if "description" in card and not isinstance(card["description"], str):
        raise bad("description", "must be a string")
    if "training" in card and not isinstance(card["training"], dict):
        raise bad("training", "must be an object")


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a model card (format :data:`CARD_FORMAT`); returned as written, unknown keys kept."""
    path = Path(path)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"Could not read model card {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CardError(f"Model card {path} is not valid JSON: {exc}") from exc
    _check_card(card, path)
    return card


def _card_data_config(card: dict[str, Any]) -> dict[str, Any]:
    """The card's preprocessing as a timm data config (what create_transform takes)."""
    pre = card["preprocessing"]
    return {
        "input_size": tuple(pre["input_size"]),
        "interpolation": pre["interpolation"],
        "mean": tuple(float(v) for v in pre["mean"]),
        "std": tuple(float(v) for v in pre["std"]),
        "crop_pct": float(pre["crop_pct"]),
        "crop_mode": pre.get("crop_mode", "center"),
    }


def _labels_origin(labels: Sequence[str] | str | os.PathLike) -> str:
    return f"Labels file {labels}" if isinstance(labels, (str, os.PathLike)) else "labels="


def read_labels(labels: Sequence[str] | str | os.PathLike) -> tuple[str, ...]:
    """Class names from a list, or from a text file holding one name per line (trailing blank lines ignored)."""
    if isinstance(labels, (str, os.PathLike)):
        try:
            text = Path(labels).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WeightsError(f"Could not read labels file {labels}: {exc}") from exc
        names = tuple(line.strip() for line in text.rstrip().splitlines())
    else:
        names = tuple(labels)
    problem = _names_problem(names)
    if problem:
        raise WeightsError(f"{_labels_origin(labels)} {problem}.")
    return names


# ------------------------------------------------------------------------------------------- building

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


def _request(variant: str, weights: str | os.PathLike | None) -> tuple[VariantCard | None, str, str | None]:
    """→ (the variant asked for, or None for the lab model; kind; spec) — see :func:`_parse_weights`."""
    if variant != LAB:
        card = get_variant(variant)
        return (card, *_parse_weights(card, weights))
    if weights not in (None, "default"):
        raise WeightsError(f"The lab model has one set of weights, 'default'; got {str(weights)!r}.")
    path = LAB_DIR / "lab.safetensors"
    if not path.is_file():
        raise WeightsError(f"The lab model is missing: no {path} (it ships with its card lab.json in {LAB_DIR}).")
    return None, "file", str(path)


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


def _build_file(asked: VariantCard | None, path: Path, seed: int) -> _Built:
    """A checkpoint, with the card beside it if there is one (the lab model, ``asked`` None, needs one)."""
    card_path = path.with_suffix(".json")
    card = read_card(card_path) if card_path.is_file() or asked is None else None
    if card is not None and asked is not None and _base_variant(card["architecture"]) != asked.name:
        raise CardError(
            f"Model card {card_path} is for {card['architecture']}, but variant {asked.name} was asked for: "
            f"load it as variant {_base_variant(card['architecture'])}."
        )
    state = _read_state_dict(path)
    head = state.get("classifier.weight")
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
    tag = "paddle_in1k" if arch.endswith("_ssld") else VARIANTS[_base_variant(arch)].card_tag
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
    return _Built(arch, model, source, names, card.get("name", path.stem), _card_data_config(card), card)


def _build(asked: VariantCard | None, kind: str, spec: str | None, seed: int) -> _Built:
    if kind == "hub":
        return _build_hub(asked, spec, seed)
    if kind == "random":
        return _build_random(asked, seed)
    return _build_file(asked, Path(spec).expanduser(), seed)


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


_CACHE: OrderedDict[tuple, LoadedModel] = OrderedDict()
_CACHE_LOCK = threading.Lock()
MODEL_CACHE_SIZE = int(os.environ.get("HRNET_EXPLORER_MODEL_CACHE", "2"))  # w64 alone is 0.5 GB


def load_model(
    variant: str,
    weights: str | os.PathLike | None = "default",
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    *,
    labels: Sequence[str] | str | os.PathLike | None = None,
    seed: int = 0,
    cache: bool = True,
) -> LoadedModel:
    """Build ``variant`` with ``weights`` on ``device`` (default: CUDA if available, else CPU).

    ``variant``: one of the nine (``hrnet_`` prefix optional), or ``"lab"``: the model shipped in
    :data:`LAB_DIR` (``lab.safetensors`` and its card ``lab.json``; weights "default" only).
    ``weights``: "default" (timm's default tag, from the Hugging Face hub or its cache), a tag
    ("ms_in1k", "gluon_in1k", "ms_aug_in1k", "ssld"/"paddle_in1k" or a full timm name), a local
    checkpoint (.safetensors, or .pth read with ``weights_only=True``), or "random".
    A checkpoint's head may have any number of classes. A model card beside it (``NAME.json``, see
    :func:`read_card`) gives its architecture (which must be ``variant``'s), class names and
    preprocessing; without one, the names are ``labels`` (a list, or a text file with one name per line),
    ImageNet's for 1000 classes, else "class 0".."class N-1", and the preprocessing is timm's for the variant.
    ``seed``: random weights are drawn from it (the same seed gives the same weights; the global RNG is
    untouched). ``precision``: "fp32", or "bf16" for autocast at inference (the weights stay fp32).
    Loaded models are kept in a small LRU cache (``MODEL_CACHE_SIZE``) unless ``cache=False``.
    """
    if precision not in ("fp32", "bf16"):
        raise InputError(f"precision must be 'fp32' or 'bf16', not {precision!r}.")
    dev = resolve_device(device)
    asked, kind, spec = _request(variant, weights)
    names = None if labels is None else read_labels(labels)
    stamp = _file_stamp(Path(spec).expanduser()) if kind == "file" else None
    key = (asked.name if asked else LAB, kind, spec, stamp, names, seed, str(dev), precision)
    with _CACHE_LOCK:
        if cache and key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        built = _build(asked, kind, spec, seed)
        if names is not None:
            if built.card is not None:
                raise WeightsError(f"{built.name} has a model card that names its classes; leave out the labels.")
            if len(names) != len(built.class_names):
                raise WeightsError(
                    f"{_labels_origin(labels)} has {len(names)} names, but {built.name} has "
                    f"{len(built.class_names)} classes (one name per class, in index order)."
                )
        model = built.model.eval().to(dev)
        loaded = LoadedModel(
            variant=asked or VARIANTS[_base_variant(built.architecture)],
            architecture=built.architecture,
            model=model,
            data_config=built.data_config or resolve_model_data_config(model),
            weights=built.source,
            device=dev,
            precision=precision,
            class_names=names or built.class_names,
            name=built.name,
            card=built.card,
        )
        if cache and MODEL_CACHE_SIZE > 0:
            _CACHE[key] = loaded
            while len(_CACHE) > MODEL_CACHE_SIZE:
                _CACHE.popitem(last=False)
    return loaded


def clear_model_cache() -> None:
    with _CACHE_LOCK:
        _CACHE.clear()


# ------------------------------------------------------------------------------ checkpoints with cards


@dataclass(frozen=True)
class ModelFile:
    """A checkpoint with its model card beside it, listed under a name (the app's own models)."""

    name: str
    checkpoint: Path
    card: dict[str, Any]

    @property
    def variant(self) -> str:
        """The variant of the card's architecture (for an ssld architecture, its base variant)."""
        return _base_variant(self.card["architecture"])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.card["class_names"])

    def load(self, device: str | torch.device | None = None, precision: Precision = "fp32") -> LoadedModel:
        return load_model(self.variant, self.checkpoint, device, precision)


def _model_file(checkpoint: Path) -> ModelFile:
    card = read_card(checkpoint.with_suffix(".json"))
    return ModelFile(card.get("name", checkpoint.stem), checkpoint, card)


def model_files(folder: str | os.PathLike | None = None) -> dict[str, ModelFile]:
    """Checkpoints with a card, by name: the lab model (when :data:`LAB_DIR` holds it), then every
    ``*.safetensors`` / ``*.pth`` in ``folder`` that has a ``.json`` card beside it (others are skipped).

    A name is the card's ``name`` (default: the file stem). Two files under one name, or a name of one of
    the nine variants, is a WeightsError naming the files; every card is checked here, once.
    """
    found = []
    lab = LAB_DIR / "lab.safetensors"
    if lab.is_file():
        found.append(dataclasses.replace(_model_file(lab), name=LAB))
    if folder is not None:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise WeightsError(f"Models folder not found: {root}")
        for path in sorted(root.iterdir()):
            if path.suffix in (".safetensors", ".pth") and path.is_file() and path.with_suffix(".json").is_file():
                found.append(_model_file(path))
    models: dict[str, ModelFile] = {}
    for m in found:
        if m.name in VARIANTS or f"hrnet_{m.name}" in VARIANTS:
            raise WeightsError(f"{m.checkpoint}: its card's name {m.name!r} is a variant's; give it another name.")
        other = models.get(m.name)
        # The same card twice (``--models`` naming LAB_DIR) is one model; two cards under one name are not.
        if other is not None and not other.checkpoint.with_suffix(".json").samefile(m.checkpoint.with_suffix(".json")):
            raise WeightsError(
                f"Two models are named {m.name!r}: {other.checkpoint} and {m.checkpoint}. Give one card another name."
            )
        models.setdefault(m.name, m)
    return models

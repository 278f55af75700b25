"""Model cards: the JSON beside a checkpoint (``NAME.json`` next to ``NAME.safetensors``) that names its
architecture, classes and preprocessing, checked field by field; and class names from a labels file.

The checks here are those of every card (format, architecture, classes, preprocessing); fields they do not
know are kept as written, so a task's own fields (``"task": "segmentation"``, a palette) are checked by the
code of that task on the card :func:`read_card` returns.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import CardError, WeightsError
from .variants import architectures

CARD_FORMAT = "hrnet-explorer-card/1"

# timm's eval transform accepts these (transforms.str_to_interp_mode, transforms_imagenet_eval).
_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
_CROP_MODES = ("center", "squash", "border")


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
    if card["architecture"] not in architectures():
        raise bad("architecture", f"must be one of {', '.join(architectures())}, not {card['architecture']!r}")
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


HEAD = "classifier.weight"  # a classifier's head: num_classes × features


def _header_shapes(path: Path) -> dict[str, list[int]]:
    """Every tensor's shape in a ``.safetensors`` file, from its JSON header alone (8 bytes of length, then it)."""
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        if not 2 <= length <= 100 * 2**20:
            raise ValueError(f"a header of {length} bytes")
        header = json.loads(fh.read(length))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def _pth_shapes(path: Path) -> dict[str, list[int]]:
    """Every tensor's shape in a ``.pth`` state dict, read onto the meta device (no data, no code run)."""
    state = torch.load(path, map_location="meta", weights_only=True)
    for key in ("state_dict", "model", "state_dict_ema"):  # the wrappers the loader unwraps
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ValueError("no state dict")
    return {str(k).removeprefix("module."): list(v.shape) for k, v in state.items() if hasattr(v, "shape")}


def check_card_head(card: dict[str, Any], checkpoint: str | os.PathLike) -> None:
    """A CardError unless the classifier head of ``checkpoint`` has the ``num_classes`` its card says; the head's
    shape is read from the file (safetensors' header, or a ``.pth`` read onto the meta device), no model is built.
    A card that names a task (``"task": "segmentation"``) is left to that task's code, which knows its head."""
    path = Path(checkpoint)
    if "task" in card:
        return
    try:
        shapes = _header_shapes(path) if path.suffix == ".safetensors" else _pth_shapes(path)
    except Exception as exc:  # any failure to read it means the file is not a usable checkpoint
        reason = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:160]}"
        raise CardError(f"Could not read the head of checkpoint {path}: {reason}") from exc
    head = shapes.get(HEAD)
    if head is None or len(head) != 2:
        raise CardError(f"Checkpoint {path} has no classifier head ({HEAD}): not an HRNet classifier.")
    if head[0] != card["num_classes"]:
        raise CardError(
            f"Model card {path.with_suffix('.json')} says num_classes {card['num_classes']}, but checkpoint "
            f"{path.name} has a {head[0]}-class head ({HEAD} {head})."
        )


def card_data_config(card: dict[str, Any]) -> dict[str, Any]:
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

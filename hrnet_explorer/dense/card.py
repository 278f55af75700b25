"""Dense checkpoints and their model cards: ``"task": "segmentation"``, class names, a palette.

A dense checkpoint is a :class:`~hrnet_explorer.dense.DenseHRNet` state dict (``backbone.*`` and ``head.*``) with a
card beside it in the zoo's format (:data:`hrnet_explorer.zoo.CARD_FORMAT`, checked by
:func:`hrnet_explorer.zoo.read_card`) plus ``task`` (``"segmentation"``) and ``palette`` (one ``[r, g, b]`` per
class, 0–255, as a Pascal VOC mask's palette), and optionally ``fuse_upsampling`` ("nearest", timm's and the
default; "bilinear" for an mmsegmentation import, :mod:`.mmseg`). The architecture is the backbone's variant. A
card whose task does not match its checkpoint (a segmentation card beside a classifier, or a classification card
beside a dense checkpoint) is a :class:`~hrnet_explorer.errors.CardError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import CardError, InputError
from ..runtime import Precision, resolve_device
from ..zoo import CARD_FORMAT, VARIANTS, LoadedModel, WeightsSource, read_card
from ..zoo.cards import card_data_config
from ..zoo.weights import read_state_dict
from .model import FUSE_UPSAMPLING, DenseHRNet, create_dense, set_fuse_upsampling

__all__ = [
    "DENSE_HEAD_KEY",
    "SEGMENTATION",
    "check_dense_card",
    "dense_card",
    "load_dense",
    "read_dense",
    "voc_palette",
    "write_dense",
]

SEGMENTATION = "segmentation"
DENSE_HEAD_KEY = "head.classifier.weight"  # what makes a state dict a dense one


def voc_palette(n: int) -> list[list[int]]:
    """The first ``n`` colours of Pascal VOC's palette (class 0 black; the bits of the index spread over R, G, B)."""
    palette = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette.append([r, g, b])
    return palette


def dense_card(
    name: str,
    architecture: str,
    class_names: list[str],
    size: tuple[int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    *,
    palette: list[list[int]] | None = None,
    description: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """A segmentation card (``extra``: more fields, e.g. ``training``); ``size`` is (H, W)."""
    return {
        "format": CARD_FORMAT,
        "task": SEGMENTATION,
        "name": name,
        "architecture": architecture,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "palette": palette or voc_palette(len(class_names)),
        "preprocessing": {
            "input_size": [3, int(size[0]), int(size[1])],
            "mean": list(mean),
            "std": list(std),
            "interpolation": "bicubic",
            "crop_pct": 1.0,
            "crop_mode": "squash",
        },
        "description": description,
        **extra,
    }


def check_dense_card(card: dict[str, Any], path: Path) -> None:
    """The segmentation fields of a card already checked by :func:`~hrnet_explorer.zoo.read_card`."""
    if card.get("task") != SEGMENTATION:
        raise CardError(
            f"Model card {path}: field 'task' is {card.get('task', 'classification (absent)')!r}, but its checkpoint "
            f'is a dense model ({DENSE_HEAD_KEY}): a dense card says "task": "{SEGMENTATION}".'
        )
    if card.get("fuse_upsampling", "nearest") not in FUSE_UPSAMPLING:
        raise CardError(
            f"Model card {path}: field 'fuse_upsampling' must be one of {', '.join(FUSE_UPSAMPLING)}, "
            f"not {card['fuse_upsampling']!r}."
        )
    palette = card.get("palette")
    ok = isinstance(palette, list) and len(palette) == card["num_classes"]
    ok = ok and all(
        isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in palette
    )
    if not ok:
        raise CardError(
            f"Model card {path}: field 'palette' must hold one [r, g, b] (integers 0–255) per class "
            f"({card['num_classes']}), not {palette!r}."
        )


def read_dense(path: Path, card: dict[str, Any], card_path: Path, seed: int = 0) -> tuple[DenseHRNet, WeightsSource]:
    """The dense model of checkpoint ``path`` as its (already read) ``card`` describes it."""
    state = read_state_dict(path)
    if DENSE_HEAD_KEY not in state:
        raise CardError(
            f'Model card {card_path} says "task": "{SEGMENTATION}", but checkpoint {path} has no dense head '
            f"({DENSE_HEAD_KEY}): it is a classifier; give it a classification card (no 'task')."
        )
    check_dense_card(card, card_path)
    model, _ = create_dense(card["architecture"], card["num_classes"], "random", seed=seed)
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    wrong = [k for k in ours if k in state and state[k].shape != ours[k].shape]
    if missing or unexpected or wrong:
        raise CardError(
            f"Checkpoint {path} does not fit a dense {card['architecture']} with {card['num_classes']} classes, as its "
            f"card {card_path} says: {len(missing)} missing, {len(unexpected)} unexpected and {len(wrong)} wrongly "
            f"shaped tensors (e.g. {(missing + unexpected + wrong)[:2]})."
        )
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    set_fuse_upsampling(model.backbone, card.get("fuse_upsampling", "nearest"))  # "bilinear": an mmseg import
    return model.eval(), WeightsSource("file", str(path.resolve()))


def write_dense(model: DenseHRNet, out: Path, card: dict[str, Any]) -> Path:
    """``out/<card name>.safetensors`` (fp16) and its card ``.json``; returns the checkpoint's path."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{card['name']}.safetensors"
    state = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return path


def load_dense(
    path: str | os.PathLike, device: str | torch.device | None = None, precision: Precision = "fp32", *, seed: int = 0
) -> LoadedModel:
    """A dense checkpoint with its card beside it (``NAME.json``), as a :class:`~hrnet_explorer.LoadedModel` whose
    ``model`` is a :class:`DenseHRNet` in eval mode on ``device`` and whose ``card`` says ``"task": "segmentation"``."""
    if precision not in ("fp32", "bf16"):
        raise InputError(f"precision must be 'fp32' or 'bf16', not {precision!r}.")
    path = Path(path).expanduser()
    card_path = path.with_suffix(".json")
    if not card_path.is_file():
        raise CardError(f"A dense checkpoint needs its model card beside it: no {card_path}.")
    card = read_card(card_path)
    if card["architecture"] not in VARIANTS:
        raise CardError(f"Model card {card_path}: a dense model's architecture is one of {', '.join(VARIANTS)}.")
    model, source = read_dense(path, card, card_path, seed)
    dev = resolve_device(device)
    return LoadedModel(
        variant=VARIANTS[card["architecture"]],
        architecture=card["architecture"],
        model=model.to(dev),
        data_config=card_data_config(card),
        weights=source,
        device=dev,
        precision=precision,
        class_names=tuple(card["class_names"]),
        name=card.get("name", path.stem),
        card=card,
    )

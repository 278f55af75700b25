"""``load_model``: a variant (or a carded checkpoint, or the lab model) built with its weights, on its device,
with its preprocessing and class names, kept in a small LRU cache."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from timm.data import create_transform, resolve_model_data_config

from ..errors import CardError, InputError, WeightsError
from ..runtime import Precision, resolve_device
from .cards import _labels_origin, card_data_config, read_labels
from .variants import VARIANTS, VariantCard, base_variant
from .weights import (
    WeightsSource,
    _build_file,
    _build_hub,
    _build_random,
    _Built,
    _checkpoint_card,
    _file_stamp,
    _request,
)

# A card's "task" → how its checkpoint is built: (checkpoint, card, card path, seed) → (model, where its weights
# came from). The zoo builds classifiers (no "task"); a task's package sits on a higher floor and builds on the zoo,
# so it plugs its builder in here (hrnet_explorer/__init__.py wires the dense models') instead of being imported.
TaskBuilder = Callable[[Path, dict[str, Any], Path, int], tuple[torch.nn.Module, WeightsSource]]
TASK_BUILDERS: dict[str, TaskBuilder] = {}


def register_task(task: str, build: TaskBuilder) -> None:
    """Build the checkpoints whose card says ``"task": task`` with ``build``."""
    TASK_BUILDERS[task] = build


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

    @property
    def task(self) -> str | None:
        """The task its card names (``"segmentation"`` for a dense model); None for a classifier."""
        return (self.card or {}).get("task")

    def check_classifier(self, what: str) -> LoadedModel:
        """This model, if it is a classifier; else one InputError saying that ``what`` takes classifiers."""
        if self.task is not None:
            dense = self.task == "segmentation"
            hint = " Its explorer is hrnet_explorer.dense (CLI: hrnet-explorer segment)." if dense else ""
            raise InputError(f"{what} takes a classifier; {self.name} is a {self.task} model (its card's task).{hint}")
        return self

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


def _build(asked: VariantCard | None, kind: str, spec: str | None, seed: int) -> _Built:
    """What :func:`_request` asked for; a checkpoint whose card names a task, by that task's builder."""
    if kind == "hub":
        return _build_hub(asked, spec, seed)
    if kind == "random":
        return _build_random(asked, seed)
    path = Path(spec).expanduser()
    card, card_path = _checkpoint_card(asked, path)
    if card is None or "task" not in card:
        return _build_file(asked, path, card, card_path, seed)
    build = TASK_BUILDERS.get(card["task"])
    if build is None:
        tasks = ", ".join(sorted(TASK_BUILDERS)) or "none"
        raise CardError(f"Model card {card_path}: field 'task' is {card['task']!r}; the tasks built here: {tasks}.")
    model, source = build(path, card, card_path, seed)
    names, name = tuple(card["class_names"]), card.get("name", path.stem)
    return _Built(card["architecture"], model, source, names, name, card_data_config(card), card)


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

    ``variant``: one of the nine (``hrnet_`` prefix optional), or a model shipped with the package, each a
    checkpoint with its card beside it and weights "default" only: ``"lab"`` (:data:`LAB_DIR`) and the dense
    ``"lab-seg"`` (:data:`LAB_SEG_DIR`; its card says ``"task": "segmentation"``).
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
    key = (asked.name if asked else variant, kind, spec, stamp, names, seed, str(dev), precision)
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
            variant=asked or VARIANTS[base_variant(built.architecture)],
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

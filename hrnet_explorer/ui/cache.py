"""The model and analysis cache behind the app: one image through one model, computed once and read by every tab.

The expensive part — load, preprocess, one traced forward — is done once per (image bytes, model, weights, input
size, device) and kept in a small LRU (:class:`TraceCache`) as an :class:`Analysis`. A "model" is one of the nine
variants, or the name of a checkpoint with a model card (the lab model, ``app.py --models DIR``): the browser only
ever sends names, never paths. No gradio here.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from .. import attribution
from ..analyses import module_fusion
from ..errors import ImageError, InputError, WeightsError
from ..fusion import FusionStats
from ..graphs import graph_trace
from ..images import display_crop, preprocess, read_image
from ..predict import Prediction, topk_from_logits
from ..runtime import resolve_device
from ..trace import Trace, trace
from ..zoo import (
    VARIANTS,
    LoadedModel,
    RandomWeightsWarning,
    get_variant,
    imagenet_class_names,
    load_model,
    model_files,
)
from ..zoo.cards import check_card_head
from .choices import check_weights, module_names, parse_input_size, weight_choices
from .gpu import ZERO_GPU, device_label, gpu

__all__ = ["Analysis", "TraceCache", "Workbench", "image_digest"]

TRACE_CACHE_SIZE = int(os.environ.get("HRNET_EXPLORER_TRACE_CACHE", "4"))
TRACE_CACHE_MB = int(os.environ.get("HRNET_EXPLORER_TRACE_CACHE_MB", "2048"))


def _no_progress(*args, **kwargs) -> None:
    return None


@dataclass(frozen=True)
class Analysis:
    """One image through one model: everything the tabs show is read from here (shared by every request for it,
    so frozen)."""

    key: tuple
    loaded: LoadedModel
    inputs: torch.Tensor  # the preprocessed 1x3xHxW batch (CPU)
    crop: Image.Image  # what the network sees, before normalisation (for overlays)
    trace: Trace  # keep="all", stored on the CPU
    prediction: Prediction
    forward_ms: float  # the traced forward pass (hooks included), on ``loaded.device``
    nbytes: int
    fusion: dict[str, FusionStats]  # every module's fusion statistics, by name in forward order (for the figures)

    @property
    def target(self) -> int:
        return self.prediction.top[0].index

    @property
    def input_size(self) -> int | None:
        """The input size asked for (None: the weights' own)."""
        return self.key[3]


class TraceCache:
    """A small LRU of :class:`Analysis`, bounded by count and by the bytes of the traced tensors.

    The lock is held while computing, so two requests for the same key compute it once.
    """

    def __init__(self, size: int = TRACE_CACHE_SIZE, max_mb: int = TRACE_CACHE_MB):
        self.size, self.max_bytes = max(1, size), max_mb * 2**20
        self._items: OrderedDict[tuple, Analysis] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: tuple) -> bool:
        return key in self._items

    def get(self, key: tuple, compute: Callable[[], Analysis]) -> tuple[Analysis, bool]:
        """The cached analysis of ``key`` (hit: True), or ``compute()`` stored and returned (hit: False)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key], True
            value = compute()
            self.misses += 1
            self._items[key] = value
            while len(self._items) > self.size or (
                len(self._items) > 1 and sum(a.nbytes for a in self._items.values()) > self.max_bytes
            ):
                self._items.popitem(last=False)
            return value, False

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def image_digest(image: str | bytes) -> str:
    """SHA-256 of the uploaded file's bytes: the same picture uploaded twice hits the cache."""
    if isinstance(image, (bytes, bytearray)):
        return hashlib.sha256(image).hexdigest()
    if not os.path.isfile(image):
        raise ImageError(f"No such image file: {os.path.basename(str(image))!r}. Upload it again.")
    digest = hashlib.sha256()
    with open(image, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Workbench:
    """A device, the models offered, the trace cache: loads, traces and explains for the endpoints."""

    def __init__(
        self,
        device: str | torch.device | None = None,
        *,
        cache_size: int = TRACE_CACHE_SIZE,
        topk: int = 5,
        models: str | os.PathLike | None = None,
    ):
        """``models``: a folder of checkpoints with model cards, offered beside the nine variants under their
        cards' names (with the lab model, when it is there); a bad card, a card whose num_classes is not its
        checkpoint's head, or a name used twice fails here."""
        self.models = model_files(models)
        for m in self.models.values():  # a card that does not fit its checkpoint's head fails here, not at Analyze
            check_card_head(m.card, m.checkpoint)
        self.device = resolve_device(device)
        self.cache = TraceCache(cache_size)
        self.topk = topk
        self.device_text = device_label(self.device)
        self.best_ms: dict[tuple, float] = {}  # (variant, weights, input size) → fastest traced forward
        self.runs: dict[tuple, int] = {}  # (variant, weights, input size) → traced forwards timed (cache misses)
        # ZeroGPU runs spaces.GPU functions in a forked worker and pickles their arguments and results, so
        # they take and return plain CPU data (names, tensors, dataclasses) and load the model themselves
        # (from zoo's cache). Without ZeroGPU these are the plain methods.
        self._traced_forward = gpu(self._traced_forward_impl)
        self._explain = gpu(self._explain_impl, duration=120)

    # ----- the models offered: the nine variants, then checkpoints with cards (by name)

    def model_choices(self) -> list[str]:
        # A card with a task (a dense model) has the Pixels tab of its own (ui.dense), not the classifier views.
        return [*VARIANTS, *(n for n, m in self.models.items() if "task" not in m.card)]

    def model_name(self, name: str) -> str:
        """The canonical name of a model choice (a variant's full name, or a carded checkpoint's name)."""
        if isinstance(name, str) and name in self.models:
            if "task" in self.models[name].card:
                raise InputError(f"{name} is a {self.models[name].card['task']} model: open it in the Pixels tab.")
            return name
        try:
            return get_variant(str(name)).name  # API callers may send anything: None is an unknown model too
        except InputError:
            raise InputError(f"Unknown model {name!r}. Choose one of: {', '.join(self.model_choices())}.") from None

    def weight_choices(self, name: str) -> list[str]:
        name = self.model_name(name)
        return ["default"] if name in self.models else weight_choices(name)

    def check_weights(self, name: str, weights: str | None) -> str:
        """``weights`` if ``name`` has them by that name (a carded checkpoint has only "default")."""
        name = self.model_name(name)
        if name not in self.models:
            return check_weights(name, weights)
        if weights not in (None, "", "default"):
            raise WeightsError(f"{name} has one set of weights, 'default'; got {weights!r}.")
        return "default"

    def module_names(self, name: str) -> list[str]:
        name = self.model_name(name)
        return module_names(self.models[name].variant if name in self.models else name)

    def class_names(self, name: str) -> tuple[str, ...]:
        name = self.model_name(name)
        return self.models[name].class_names if name in self.models else imagenet_class_names()

    # ----- model work

    def load(self, name: str, weights: str) -> LoadedModel:
        name, weights = self.model_name(name), self.check_weights(name, weights)
        if name in self.models:
            return self.models[name].load(self.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)  # shown as the banner instead
            return load_model(name, weights, self.device)

    def _traced_forward_impl(self, variant: str, weights: str, x: torch.Tensor) -> tuple[Trace, float]:
        """One traced forward of ``x``: the Trace (stored on the CPU) and its milliseconds."""
        loaded = self.load(variant, weights)
        start = time.perf_counter()
        if loaded.device.type == "cuda" and not ZERO_GPU:
            # A fast trace replayed from a CUDA graph kept per shape (ZeroGPU lends a GPU per request: no graphs).
            result = graph_trace(loaded, x, store="cpu")
        else:
            result = trace(loaded, x, keep="all", store="cpu")
        if loaded.device.type == "cuda":
            torch.cuda.synchronize(loaded.device)
        return result, 1000 * (time.perf_counter() - start)

    def _explain_impl(self, name: str, variant: str, weights: str, x: torch.Tensor, options: dict):
        """``hrnet_explorer.attribution.<name>(model, x, **options)``: its results are CPU dataclasses."""
        return getattr(attribution, name)(self.load(variant, weights), x, **options)

    def _compute_analysis(self, key: tuple, image: str | bytes, variant: str, weights: str, size: int | None):
        loaded = self.load(variant, weights)
        picture = read_image(image)
        x = preprocess(picture, loaded.data_config, size)
        crop = display_crop(picture, loaded.data_config, size)
        result, forward_ms = self._traced_forward(variant, weights, x)
        logits = result.logits[0].float().cpu()
        prediction = Prediction(
            loaded.variant.name,
            loaded.weights,
            str(loaded.device),
            loaded.precision,
            result.input_size,
            topk_from_logits(logits, self.topk, loaded.class_names),
            logits,
            loaded.name,
        )
        nbytes = sum(t.numel() * t.element_size() for t in result.maps.values())
        return Analysis(key, loaded, x, crop, result, prediction, forward_ms, nbytes, module_fusion(result))

    def explain(self, a: Analysis, name: str, **options):
        """Run attribution function ``name`` on the analysed image (on the GPU under ZeroGPU)."""
        return self._explain(name, a.key[1], a.key[2], a.inputs, options)

    def analysis(
        self, image: str | bytes | None, variant: str, weights: str, input_size: Any, progress=_no_progress
    ) -> tuple[Analysis, bool]:
        """The (cached) analysis of ``image`` under the model choice; (analysis, was it cached)."""
        if image is None or image == "":
            raise InputError("Upload an image first (or pick one of the examples).")
        name, weights = self.model_name(variant), weights or "default"
        size = parse_input_size(input_size)
        key = (image_digest(image), name, weights, size, str(self.device))
        if key not in self.cache:
            progress(0.1, desc=f"Loading {name} and tracing every stream")
        model_key = key[1:]

        def compute():
            self.runs[model_key] = self.runs.get(model_key, 0) + 1
            return self._compute_analysis(key, image, name, weights, size)

        result = self.cache.get(key, compute)
        self.best_ms[model_key] = min(self.best_ms.get(model_key, float("inf")), result[0].forward_ms)
        return result

    def latency_ms(self, a: Analysis) -> float:
        """The fastest traced forward seen for this model and input size (the first call includes warm-up)."""
        return self.best_ms.get(a.key[1:], a.forward_ms)

    def latency_text(self, a: Analysis) -> str:
        """The fastest traced forward, and whether it is a cold first run (warm-up included) or the best of several."""
        runs = self.runs.get(a.key[1:], 1)
        kind = "cold: one run, warm-up included" if runs <= 1 else f"warm: the fastest of {runs} runs"
        return f"{self.latency_ms(a):.0f} ms ({kind})"

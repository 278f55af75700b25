"""The app's callbacks: thin functions over the core API, one per endpoint.

Every endpoint takes the image and the model choice (variant, weights, input size) first, so that each one
can be called on its own through the API. A "variant" is one of the nine, or the name of a checkpoint with a
model card (the lab model, ``app.py --models DIR``): the browser only ever sends names, never paths. The
expensive part — load, preprocess, one traced forward — is done once per (image bytes, model, weights, input
size, device) and kept in a small LRU
(:class:`TraceCache`); every tab reads the same :class:`Analysis`. User mistakes become ``gr.Error``
messages; anything else is a bug and propagates.
"""

from __future__ import annotations

import functools
import hashlib
import html
import os
import re
import shutil
import tempfile
import threading
import time
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import gradio as gr
import timm
import torch
from PIL import Image

from ..costs import variant_costs
from ..figures import (
    COMPACT_WIDTH,
    attribution_figure,
    compare_figure,
    decomposition_figure,
    faithfulness_figure,
    fusion_matrices_figure,
    gradcam_figure,
    knockout_figure,
    lanes_figure,
    module_maps_figure,
    randomisation_figure,
    sankey_figure,
    stream_shares_figure,
    topk_figure,
    variants_figure,
)
from ..fusion import MEASURES, decompose, fusion_flows
from ..graphs import graph_trace
from ..images import ImageError, display_crop, preprocess, read_image
from ..predict import Prediction, topk_from_logits
from ..runtime import resolve_device
from ..trace import Trace, module_refs, trace
from ..zoo import (
    VARIANTS,
    LoadedModel,
    RandomWeightsWarning,
    WeightsError,
    get_variant,
    imagenet_class_names,
    load_model,
    model_files,
    weight_tags,
)
from .gpu import ZERO_GPU, device_label, gpu

__all__ = [
    "Analysis",
    "Explorer",
    "TraceCache",
    "TOP1",
    "DEFAULT_SIZE",
    "EVERY_MODULE",
    "INPUT_SIZES",
    "check_weights",
    "class_choices",
    "module_names",
    "parse_module",
    "parse_target",
    "weight_choices",
]

TOP1 = "top-1 prediction"
DEFAULT_SIZE = "default"
INPUT_SIZES = (160, 192, 224, 256, 288, 320, 384, 448)
EVERY_MODULE = "every module"
TRACE_CACHE_SIZE = int(os.environ.get("HRNET_EXPLORER_TRACE_CACHE", "4"))
TRACE_CACHE_MB = int(os.environ.get("HRNET_EXPLORER_TRACE_CACHE_MB", "2048"))
BANNER_STYLE = (
    "background:#fff4e5;border:2px solid #d55e00;color:#5a2a00;padding:10px 14px;border-radius:8px;"
    "font-size:15px;margin:4px 0"
)
PROGRESS = gr.Progress()  # the default that tells Gradio to pass a progress tracker
USER_ERRORS = (ImageError, WeightsError, ValueError, KeyError, IndexError)
REPORTS_KEPT = int(os.environ.get("HRNET_EXPLORER_REPORTS_KEPT", "4"))


# --------------------------------------------------------------------------------------------- choices


def weight_choices(variant: str) -> list[str]:
    """'default', every pretrained tag of ``variant`` (short where it is the variant's own), 'random'."""
    card = get_variant(variant)
    tags = [t.split(".", 1)[1] if t.startswith(card.name + ".") else t for t in weight_tags(card.name)]
    return ["default", *tags, "random"]


def check_weights(variant: str, weights: str | None) -> str:
    """``weights`` if it names weights of ``variant`` (a :func:`weight_choices` entry or a full timm tag).

    The app loads weights by name only, never from a path on the server: the Weights box takes custom
    values, and API callers can send any string (load_model would read it as a checkpoint file).
    """
    card = get_variant(variant)
    name = weights or "default"
    if name not in weight_choices(card.name) and name not in weight_tags(card.name):
        raise WeightsError(
            f"Unknown weights {name!r} for {card.name}. Choose one of: {', '.join(weight_choices(card.name))}."
        )
    return name


@functools.cache
def module_names(variant: str) -> list[str]:
    """``stage{s}.module{m}`` of every HighResolutionModule of ``variant``, without building it if timm's
    config table has it."""
    card = get_variant(variant)
    cfg = getattr(timm.models.hrnet, "cfg_cls", {}).get(card.name)
    if cfg is not None:
        return [f"stage{s}.module{m}" for s in (2, 3, 4) for m in range(cfg[f"stage{s}"]["num_modules"])]
    return [r.name for r in module_refs(timm.create_model(card.name, pretrained=False))]


@lru_cache(maxsize=16)
def class_choices(class_names: tuple[str, ...]) -> list[str]:
    """The class picker's entries for a model: the top-1, then "i: name" for every class."""
    return [TOP1] + [f"{i}: {name}" for i, name in enumerate(class_names)]


def parse_target(value: Any, num_classes: int) -> int | None:
    """``TOP1``/empty → None; "207: golden retriever", "207" or 207 → 207 (a class of a ``num_classes`` model)."""
    if value is None or value == "" or value == TOP1:
        return None
    text = str(value).split(":", 1)[0].strip()
    try:
        index = int(text)
    except ValueError:
        raise ValueError(
            f"Class to explain: expected a class index 0..{num_classes - 1} or '{TOP1}', got {value!r}."
        ) from None
    if not 0 <= index < num_classes:
        raise ValueError(f"Class to explain: this model's classes are 0..{num_classes - 1}, got {index}.")
    return index


def parse_module(value: str) -> tuple[int, int]:
    """ "stage4.module0" → (4, 0)."""
    try:
        stage, module = str(value).split(".")
        return int(stage.removeprefix("stage")), int(module.removeprefix("module"))
    except ValueError:
        raise ValueError(f"Expected a module name like 'stage4.module0', got {value!r}.") from None


def parse_input_size(value: Any) -> int | None:
    """The app's input size: 'default' (the weights' own) or a multiple of 32 up to the largest of INPUT_SIZES,
    as a number or a string (API callers send either); anything else is a ValueError (no 4096 px forward)."""
    if value in (None, "", DEFAULT_SIZE, 0, "0"):
        return None
    try:
        size = int(str(value).strip().removesuffix("px").strip())
    except (TypeError, ValueError):
        size = None
    if size is None or size % 32 or not 32 <= size <= max(INPUT_SIZES):
        raise ValueError(
            f"Input size must be a multiple of 32 from 32 to {max(INPUT_SIZES)} px (the menu offers "
            f"{', '.join(map(str, INPUT_SIZES))}) or '{DEFAULT_SIZE}'; got {value!r}."
        )
    return size


def parse_stream(value: Any, what: str = "stream") -> int:
    try:
        return int(str(value).removeprefix("stream").strip())
    except ValueError:
        raise ValueError(f"Expected a {what} number 0..3, got {value!r}.") from None


# -------------------------------------------------------------------------------------------- the cache


def random_note(a: Any) -> str:
    """A Markdown warning line above every analysis text while the model's weights are random; '' otherwise."""
    w = a.loaded.weights
    if not w.is_random:
        return ""
    return (
        f"⚠️ **RANDOM weights** ({w.detail}): {a.loaded.name} is untrained, so this result is meaningless: it "
        "shows the machinery, not a trained network.\n\n"
    )


@dataclass
class Analysis:
    """One image through one model: everything the tabs show is read from here."""

    key: tuple
    loaded: LoadedModel
    inputs: torch.Tensor  # the preprocessed 1x3xHxW batch (CPU)
    crop: Image.Image  # what the network sees, before normalisation (for overlays)
    trace: Trace  # keep="all", stored on the CPU
    prediction: Prediction
    forward_ms: float  # the traced forward pass (hooks included), on ``loaded.device``
    nbytes: int

    @property
    def target(self) -> int:
        return self.prediction.top[0].index


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


def user_errors(fn: Callable) -> Callable:
    """Turn the core's user-facing errors into ``gr.Error`` (shown in the UI, returned to API clients)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise gr.Error(  # the UI renders the message as HTML, and it may quote what the user typed
                html.escape(str(message), quote=False),
                title=type(exc).__name__.replace("Error", " error").strip(),
                print_exception=False,
            ) from exc

    return wrapper


def compact(plot_width: Any) -> bool:
    """Whether the figures go to a narrow screen: ``plot_width`` is the width in px of the browser's figure column
    (the page's script sends it with every request), 0 or None when unknown (API callers): wide figures."""
    try:
        width = float(plot_width or 0)
    except (TypeError, ValueError):
        return False
    return 0 < width < COMPACT_WIDTH


def _no_progress(*args, **kwargs) -> None:
    return None


_SHORT_NAMES = {"ig": "IG", "saliency": "Saliency", "smoothgrad": "SmoothGrad", "gradshap": "GradientSHAP"}


def batch_progress(progress, what: str):
    """An attribution's ``progress(done, total)`` (batches) shown on the app's progress bar: the real fraction,
    described as "IG: batch 3/8". None under ZeroGPU, where the attribution runs in a process of its own (and
    on a GPU, in a moment)."""
    from .gpu import ZERO_GPU

    if ZERO_GPU:
        return None
    return lambda done, total: progress(done / total, desc=f"{what}: batch {done}/{total}")


LAB_EXAMPLE = re.compile(r"lab_(\d{1,6})_[\w-]+\.png$")


def lab_evidence(image: Any, a: Analysis) -> torch.Tensor | None:
    """The evidence mask of a lab example image (``lab_NNNN_CLASS.png``, from ``assets/``) explained by a lab
    model: only when the image is exactly ``lab.sample(NNNN)`` at the model's input (else None)."""
    from ..lab import CLASSES, sample

    match = LAB_EXAMPLE.search(os.path.basename(image)) if isinstance(image, str) else None
    if match is None or list(a.loaded.class_names) != CLASSES:
        return None
    truth = sample(int(match.group(1)), "test")
    x = preprocess(truth.image, a.loaded.data_config, a.key[3])
    if x.shape != a.inputs.shape or not torch.equal(x, a.inputs.to(x.device)):
        return None
    return torch.from_numpy(truth.mask)


def trust_table(rows: Sequence[Any], with_mask: bool) -> str:
    """The Trust view's method × score table (Markdown)."""

    def num(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    head = ["method", "deletion AUC ↓", "insertion AUC ↑", "similarity when randomised ↓"]
    if with_mask:
        head += ["mass in mask ↑", "rank accuracy ↑", "pointing game"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        f = r.faithfulness
        cells = [
            "random map (reference)" if r.method == "random" else r.method,
            num(f.deletion.auc),
            num(f.insertion.auc),
            num(r.randomisation_similarity),
        ]
        if with_mask:
            cells += [num(r.mass_in_mask), num(r.rank_accuracy), "✔" if r.pointing_game else "✘"]
        lines.append("| " + " | ".join(cells) + " |")
    first = rows[0]
    f = first.faithfulness
    note = (
        f"**{first.label}** (class {first.target}) · p = {f.probability:.3f}, after deleting every pixel "
        f"({f.baseline}) {f.baseline_probability:.3f} · {f.steps} steps · AUCs of p / p(input) over the fraction "
        "of pixels · randomised: Spearman of |map| to the original once every layer is re-initialised"
    )
    if with_mask:
        note += f" · evidence mask of this lab image: {first.mask_fraction:.1%} of the pixels (a random map's mass)"
    return note + "\n\n" + "\n".join(lines)


# ------------------------------------------------------------------------------------------- explorer


class Explorer:
    """The state behind one app: a device, the trace cache, and one method per endpoint."""

    def __init__(
        self,
        device: str | torch.device | None = None,
        *,
        cache_size: int = TRACE_CACHE_SIZE,
        topk: int = 5,
        models: str | os.PathLike | None = None,
    ):
        """``models``: a folder of checkpoints with model cards, offered beside the nine variants under their
        cards' names (with the lab model, when it is there); a bad card or a name used twice fails here."""
        self.models = model_files(models)
        self.device = resolve_device(device)
        self.cache = TraceCache(cache_size)
        self.topk = topk
        self.device_text = device_label(self.device)
        self.best_ms: dict[tuple, float] = {}  # (variant, weights, input size) → fastest traced forward
        self.runs: dict[tuple, int] = {}  # (variant, weights, input size) → traced forwards timed (cache misses)
        self.reports: list[str] = []  # folders of the latest one-image reports, oldest first
        self._reports_lock = threading.Lock()
        # ZeroGPU runs spaces.GPU functions in a forked worker and pickles their arguments and results, so
        # they take and return plain CPU data (names, tensors, dataclasses) and load the model themselves
        # (from zoo's cache). Without ZeroGPU these are the plain methods.
        self._traced_forward = gpu(self._traced_forward_impl)
        self._explain = gpu(self._explain_impl, duration=120)

    # ----- the models offered: the nine variants, then checkpoints with cards (by name)

    def model_choices(self) -> list[str]:
        return [*VARIANTS, *self.models]

    def model_name(self, name: str) -> str:
        """The canonical name of a model choice (a variant's full name, or a carded checkpoint's name)."""
        if name in self.models:
            return name
        try:
            return get_variant(name).name
        except ValueError:
            raise ValueError(f"Unknown model {name!r}. Choose one of: {', '.join(self.model_choices())}.") from None

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
        return getattr(self._attribution(), name)(self.load(variant, weights), x, **options)

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
        return Analysis(key, loaded, x, crop, result, prediction, forward_ms, nbytes)

    def explain(self, a: Analysis, name: str, **options):
        """Run attribution function ``name`` on the analysed image (on the GPU under ZeroGPU)."""
        return self._explain(name, a.key[1], a.key[2], a.inputs, options)

    def analysis(
        self, image: str | bytes | None, variant: str, weights: str, input_size: Any, progress=_no_progress
    ) -> tuple[Analysis, bool]:
        """The (cached) analysis of ``image`` under the model choice; (analysis, was it cached)."""
        if image is None or image == "":
            raise gr.Error(
                "Upload an image first (or pick one of the examples).", title="No image", print_exception=False
            )
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

    # ----- text

    @staticmethod
    def banner(a: Analysis):
        """A loud HTML banner while the weights are random; hidden otherwise."""
        w = a.loaded.weights
        if not w.is_random:
            return gr.update(value="", visible=False)
        return gr.update(
            value=(
                f'<div role="alert" style="{BANNER_STYLE}">⚠️ <b>Random weights.</b> '
                f"{html.escape(a.loaded.name)} is running with RANDOM weights ({html.escape(w.detail)}). "
                "Every prediction, map, share and attribution below is meaningless: it shows the machinery, not "
                "a trained network. Choose weights that are available, or run where the Hugging Face hub is "
                "reachable.</div>"
            ),
            visible=True,
        )

    def summary(self, a: Analysis, cached: bool) -> str:
        cfg, m = a.loaded.data_config, a.loaded
        h, w = a.prediction.input_size
        top = a.prediction.top[0]
        model = f"**{m.name}**" + (f" ({m.architecture}, {m.num_classes} classes)" if m.card is not None else "")
        return (
            f"{model} · weights: {m.weights.describe()} · device: {self.device_text}\n\n"
            f"Input {h}×{w} px ({cfg.get('interpolation')} resize, crop {cfg.get('crop_pct')}) · "
            + (
                f"this trace was reused from the cache (no new forward; tracing it took {a.forward_ms:.0f} ms)"
                if cached
                else f"traced forward {a.forward_ms:.0f} ms"
            )
            + f", fastest so far {self.latency_text(a)} · {len(a.trace.maps)} maps kept "
            f"({a.nbytes / 2**20:.1f} MiB)\n\n"
            f"Top-1: **{top.label}** (class {top.index}, {top.probability:.1%})"
        )

    # ----- endpoints

    @user_errors
    def analyze(self, image, variant, weights, input_size, measure="energy_share", plot_width=0, progress=PROGRESS):
        """Predict tab + Fusion overview: banner, summary, top-k, card vs measured, fusion matrices, Sankey."""
        a, cached = self.analysis(image, variant, weights, input_size, progress)
        progress(0.7, desc="Counting parameters and MACs (once per variant)")
        costs = variant_costs(a.loaded.variant.name)
        progress(0.9, desc="Drawing")
        return (
            self.banner(a),
            self.summary(a, cached),
            topk_figure(a.prediction, compact=compact(plot_width)),
            variants_figure(
                [costs], {costs.variant: self.latency_ms(a)}, device=self.device_text, compact=compact(plot_width)
            ),
            *self._fusion_figures(a, measure, plot_width),
        )

    @staticmethod
    def _fusion_figures(a: Analysis, measure: str, plot_width: Any = 0):
        if measure not in MEASURES:
            raise ValueError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
        small = compact(plot_width)
        return (
            fusion_matrices_figure(a.trace, measure, compact=small),
            sankey_figure(fusion_flows(a.trace, measure), measure, compact=small),
        )

    @user_errors
    def fusion(self, image, variant, weights, input_size, measure="energy_share", plot_width=0, progress=PROGRESS):
        """Fusion tab: every module's share matrix and the Sankey of the whole network."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        return self._fusion_figures(a, measure, plot_width)

    @user_errors
    def streams(
        self,
        image,
        variant,
        weights,
        input_size,
        reduction="l2",
        module="stage4.module0",
        plot_width=0,
        progress=PROGRESS,
    ):
        """Streams tab: the network as lanes, and one module stream by stream."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        stage, index = parse_module(module)
        progress(0.8, desc="Reducing channels")
        small = compact(plot_width)
        return (
            lanes_figure(a.trace, reduction, compact=small),
            module_maps_figure(a.trace, stage, index, reduction, compact=small),
        )

    @user_errors
    def decompose(
        self, image, variant, weights, input_size, module="stage4.module0", target=0, plot_width=0, progress=PROGRESS
    ):
        """Fusion tab: the fused map of one target stream taken apart into its sources."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        stage, index = parse_module(module)
        dec = decompose(a.trace, stage, index, parse_stream(target))
        rows = "\n".join(
            f"| {j} | {dec.energy_share[0, j]:.4f} | {dec.agreement[0, j]:+.4f} | {dec.relu_share[0, j]:+.4f} |"
            for j in dec.sources
        )
        text = (
            f"**{dec.module} → stream {dec.target}**: fused = ReLU(Σ_j edge j→{dec.target}); max |reconstruction "
            f"error| = {dec.max_error:.2e}\n\n| source | energy share | agreement | ReLU share |\n|---|---|---|---|\n"
            + rows
        )
        return decomposition_figure(dec, "mean", compact=compact(plot_width)), text

    # attribution endpoints: hrnet_explorer.attribution is imported when first used

    @staticmethod
    def _attribution():
        try:
            from .. import attribution
        except ImportError as exc:  # pragma: no cover - only while the module is missing
            raise gr.Error(f"Attribution is not available in this build ({exc}).") from exc
        return attribution

    @user_errors
    def attribute(
        self, image, variant, weights, input_size, method="saliency", target=TOP1, plot_width=0, progress=PROGRESS
    ):
        """Attribution tab: one pixel method, overlaid on the image the network sees."""
        attr = self._attribution()
        if method not in attr.PIXEL_METHODS:
            raise ValueError(f"Unknown attribution method {method!r}; choose one of {', '.join(attr.PIXEL_METHODS)}.")
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        cls = parse_target(target, a.loaded.num_classes)
        cls = a.target if cls is None else cls
        steps = batch_progress(progress, f"{_SHORT_NAMES.get(method, method.title())}, class {cls}")
        if steps is None:
            progress(0.4, desc=f"{method}: attributing class {cls} to pixels")
        result = self.explain(a, "attribute_pixels", method=method, target=cls, progress=steps)
        delta = "" if result.delta is None else f" · convergence δ = {result.delta:.3e}"
        settings = ", ".join(f"{k}={v}" for k, v in result.settings.items())
        text = (
            f"**{method}** for class {cls} ({result.label}){delta} · {getattr(result, 'seconds', 0.0):.2f} s · "
            f"{settings}"
        )
        figure = attribution_figure(a.crop, result, weights=a.loaded.weights, compact=compact(plot_width))
        return figure, random_note(a) + text

    @user_errors
    def gradcam(
        self,
        image,
        variant,
        weights,
        input_size,
        module="stage4.module0",
        target=TOP1,
        shared_scale=False,
        plot_width=0,
        progress=PROGRESS,
    ):
        """Attribution tab: Grad-CAM of every stream of one module, each on its own colour scale or on one."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        stage, index = parse_module(module)
        cls = parse_target(target, a.loaded.num_classes)
        cls = a.target if cls is None else cls
        progress(0.4, desc="Grad-CAM per stream")
        cam = self.explain(a, "gradcam_streams", target=cls, stage=stage, module=index)
        return gradcam_figure(
            a.crop, cam, shared_scale=bool(shared_scale), weights=a.loaded.weights, compact=compact(plot_width)
        )

    @user_errors
    def trust(
        self,
        image,
        variant,
        weights,
        input_size,
        target=TOP1,
        methods=("saliency",),
        steps=20,
        baseline="blur",
        randomisation=True,
        plot_width=0,
        progress=PROGRESS,
    ):
        """Attribution tab, Trust view: score pixel methods (deletion/insertion, the randomisation test, and the
        evidence mask of a lab example image) beside a random map."""
        attr = self._attribution()
        methods = list(dict.fromkeys(methods or []))
        if not methods:
            raise ValueError("Pick at least one method to score.")
        unknown = [m for m in methods if m not in attr.PIXEL_METHODS]
        if unknown:
            raise ValueError(
                f"Unknown method(s) {', '.join(map(str, unknown))}; choose from {', '.join(attr.PIXEL_METHODS)}."
            )
        steps = int(steps)
        if not 2 <= steps <= 100:
            raise ValueError(f"Deletion/insertion steps must be 2..100, got {steps}.")
        if baseline not in ("blur", "zeros", "mean"):
            raise ValueError(f"Deleted pixels become 'blur', 'zeros' or 'mean', not {baseline!r}.")
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        cls = parse_target(target, a.loaded.num_classes)
        cls = a.target if cls is None else cls
        mask = lab_evidence(image, a)
        rows = []
        for k, method in enumerate([*methods, attr.RANDOM_MAP]):
            progress(0.15 + 0.8 * k / (len(methods) + 1), desc=f"Scoring {method} ({k + 1}/{len(methods) + 1})")
            rows.append(
                self.explain(
                    a,
                    "score_attribution",
                    method=method,
                    target=cls,
                    mask=mask,
                    steps=steps,
                    baseline=baseline,
                    randomisation=bool(randomisation) and method != attr.RANDOM_MAP,
                )
            )
        curves = faithfulness_figure(rows, compact=compact(plot_width))
        tested = [r for r in rows if r.randomisation is not None]
        return (
            random_note(a) + trust_table(rows, mask is not None),
            curves,
            randomisation_figure(tested, compact=compact(plot_width)) if tested else None,
        )

    @user_errors
    def stream_shares(
        self, image, variant, weights, input_size, target=TOP1, n_steps=16, plot_width=0, progress=PROGRESS
    ):
        """Attribution tab: each final stream's share of the target logit."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        cls = parse_target(target, a.loaded.num_classes)
        cls = a.target if cls is None else cls
        steps = int(n_steps)
        if not 2 <= steps <= 256:
            raise ValueError(f"Integration steps must be 2..256, got {steps}.")
        batches = batch_progress(progress, f"Stream shares, {steps} steps")
        if batches is None:
            progress(0.4, desc=f"Integrating over the streams ({steps} steps)")
        shares = self.explain(a, "stream_shares", target=cls, n_steps=steps, progress=batches)
        return stream_shares_figure(shares, weights=a.loaded.weights, compact=compact(plot_width))

    @user_errors
    def knockout(
        self,
        image,
        variant,
        weights,
        input_size,
        kind="stream",
        stream=0,
        source=0,
        target_stream=0,
        module=EVERY_MODULE,
        target=TOP1,
        plot_width=0,
        progress=PROGRESS,
    ):
        """Knockout tab: silence one stream or one fuse edge and see the target class change."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        cls = parse_target(target, a.loaded.num_classes)
        cls = a.target if cls is None else cls
        where: dict[str, Any] = {}
        if module and module != EVERY_MODULE:
            where["stage"], where["module"] = parse_module(module)
        if kind == "stream":
            where["stream"] = parse_stream(stream)
        elif kind == "edge":
            where["edge"] = (parse_stream(source, "source stream"), parse_stream(target_stream, "target stream"))
        else:
            raise ValueError(f"Knock out a 'stream' or an 'edge', not {kind!r}.")
        progress(0.5, desc="Knocking out")
        result = self.explain(a, "knockout", target=cls, topk=self.topk, **where)
        figure = knockout_figure([result], weights=a.loaded.weights, compact=compact(plot_width))
        return figure, random_note(a) + self._knockout_text([result])

    @user_errors
    def reliance(self, image, variant, weights, input_size, target=TOP1, plot_width=0, progress=PROGRESS):
        """Knockout tab: knock out each stream in turn (how much the class relies on each resolution)."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        cls = parse_target(target, a.loaded.num_classes)
        cls = a.target if cls is None else cls
        # One knockout per stream (what resolution_reliance does), so that progress reports real steps.
        n = a.trace.modules[-1].num_streams
        results = []
        for k in range(n):
            progress((k + 1) / (n + 1), desc=f"Knocking out stream {k} everywhere ({k + 1}/{n})")
            results.append(self.explain(a, "knockout", target=cls, stream=k, topk=self.topk))
        figure = knockout_figure(results, weights=a.loaded.weights, compact=compact(plot_width))
        return figure, random_note(a) + self._knockout_text(results)

    @user_errors
    def report(self, image, variant, weights, input_size, progress=PROGRESS):
        """Predict tab: every figure for this image in one HTML file that opens offline, and its trace (a zip of
        the safetensors and the JSON manifest), for two download buttons. The last REPORTS_KEPT reports stay on
        disk; older ones are deleted."""
        from ..report_html import image_report

        a, _ = self.analysis(image, variant, weights, input_size, progress)
        folder = tempfile.mkdtemp(prefix="hrnet-explorer-report-")
        with self._reports_lock:
            self.reports.append(folder)
            while len(self.reports) > REPORTS_KEPT:
                shutil.rmtree(self.reports.pop(0), ignore_errors=True)
        out = os.path.join(folder, f"hrnet-explorer-{a.loaded.name}.html")
        paths = image_report(
            image,
            out=out,
            loaded=a.loaded,
            input_size=a.key[3],
            progress=lambda done, total: progress(done / total, desc=f"Report: step {done}/{total}"),
        )
        bundle = os.path.join(folder, f"hrnet-explorer-{a.loaded.name}-trace.zip")
        with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as zf:  # float32 maps hardly compress
            for key in ("safetensors", "json"):
                zf.write(paths[key], paths[key].name)
        return gr.update(value=str(paths["html"]), visible=True), gr.update(value=bundle, visible=True)

    @staticmethod
    def _knockout_text(results: Sequence[Any]) -> str:
        head = "| knocked out | logit before → after | probability before → after | top-1 after |\n|---|---|---|---|\n"
        rows = "\n".join(
            f"| {r.description} | {r.logit_before:.4f} → {r.logit_after:.4f} ({r.logit_delta:+.4f}) | "
            f"{r.prob_before:.2%} → {r.prob_after:.2%} | "
            + (f"{r.top_after[0].label} ({r.top_after[0].probability:.1%})" if r.top_after else "—")
            + " |"
            for r in results
        )
        return head + rows

    @user_errors
    def compare(self, image, variants, weights="default", input_size=DEFAULT_SIZE, plot_width=0, progress=PROGRESS):
        """Compare tab: two or more models (variants, carded checkpoints) side by side on one image."""
        picked = [self.model_name(v) for v in (variants or [])]
        names = list(dict.fromkeys(picked))  # a variant picked twice is compared once
        if len(names) < 2:
            twice = f" ({names[0]} was picked {len(picked)} times)" if len(picked) > 1 else ""
            raise ValueError(f"Pick at least two different variants to compare{twice}.")
        analyses = []
        for k, name in enumerate(names):
            progress(k / (len(names) + 1), desc=f"{name} ({k + 1}/{len(names)})")
            analyses.append(self.analysis(image, name, weights, input_size)[0])
        progress(len(names) / (len(names) + 1), desc="Counting parameters and MACs")
        latencies = {a.loaded.name: self.latency_ms(a) for a in analyses}
        # Card vs measured is per architecture; a carded checkpoint shows its variant's bars, timed only
        # where the variant itself ran.
        costs = [variant_costs(v) for v in dict.fromkeys(a.loaded.variant.name for a in analyses)]
        variant_latencies = {a.loaded.name: self.latency_ms(a) for a in analyses if a.loaded.name in VARIANTS}
        lines = "\n".join(
            f"| {a.loaded.name} | {a.loaded.weights.kind}{' ⚠️' if a.loaded.weights.is_random else ''} | "
            f"{a.prediction.top[0].label} ({a.prediction.top[0].probability:.1%}) | {self.latency_text(a)} |"
            for a in analyses
        )
        text = "| model | weights | top-1 | fastest traced forward |\n|---|---|---|---|\n" + lines
        return (
            compare_figure([a.prediction for a in analyses], latencies, compact=compact(plot_width)),
            variants_figure(costs, variant_latencies, device=self.device_text, compact=compact(plot_width)),
            text,
        )

    @staticmethod
    def check_upload(image):
        """On upload: a file that is not an image we can read is removed at once, with the reason in a toast,
        instead of sitting there as a broken thumbnail until Analyze."""
        if image is None or image == "":
            return gr.skip()
        try:
            read_image(image)
        except (ImageError, OSError, ValueError) as exc:
            gr.Warning(html.escape(str(exc), quote=False), title="Not an image")
            return None
        return gr.skip()

    @staticmethod
    def knockout_controls(kind="stream", module=EVERY_MODULE, stream="0", source="1", target_stream="0"):
        """Knockout tab: offer only the streams the chosen module has (stage s has s streams; every module: the
        four of stage 4), and only the pickers of the chosen kind (stream, or edge source and target)."""
        try:
            n = 4 if not module or module == EVERY_MODULE else min(4, parse_module(module)[0])
        except ValueError:
            n = 4
        streams = [str(k) for k in range(n)]

        def picker(value, fallback, active):
            value = str(value) if str(value) in streams else fallback
            return gr.update(choices=streams, value=value, interactive=active)

        return (
            picker(stream, streams[0], kind == "stream"),
            picker(source, streams[min(1, n - 1)], kind == "edge"),
            picker(target_stream, streams[0], kind == "edge"),
        )

    @user_errors
    def variant_options(self, variant):
        """When the model changes: its weights, its modules for the module pickers, its classes for the class
        picker."""
        mods = self.module_names(variant)
        last = mods[-1]
        return (
            gr.update(choices=self.weight_choices(variant), value="default"),
            gr.update(choices=mods, value=last),
            gr.update(choices=mods, value=last),
            gr.update(choices=mods, value=last),
            gr.update(choices=[EVERY_MODULE, *mods], value=EVERY_MODULE),
            gr.update(choices=class_choices(self.class_names(variant)), value=TOP1),
        )

"""Attribution with Captum: pixel methods, per-stream Grad-CAM and shares, stream and edge knockouts.

One shape for every explainer: ``f(loaded, inputs, target=None, ...)`` → a frozen dataclass of CPU
float32 tensors. ``inputs`` is a preprocessed 1x3xHxW tensor or any image :mod:`.images` accepts;
``target`` is a class index of the model (``None``: its top-1 class); results carry the model's class
names (``loaded.class_names``), so ``.label`` and ``to_dict()`` name the class.

- :func:`attribute_pixels` — Integrated Gradients, Saliency, SmoothGrad (NoiseTunnel over
  Saliency), GradientShap and Occlusion, each returning Captum's raw attribution and a 2-D heatmap.
- :func:`gradcam_streams` — Grad-CAM on every resolution stream of one HighResolutionModule.
- :func:`stream_shares` — each final stream's share of the target logit (Layer Integrated Gradients
  at the stage-4 output), with its completeness error.
- :func:`knockout`, :func:`resolution_reliance` — zero fuse edges, report what changes.

How the HRNet pitfalls are handled (../shared/HRNET_IN_TIMM.md):

- **The caller's model is never touched.** Every method runs on a private copy, built once per model
  and cached (weakly keyed on the model, rebuilt when its parameters are replaced or changed):
  ``exact`` is a ``copy.deepcopy`` with every ReLU ``inplace=False``, parameters frozen
  (``requires_grad=False``), no hooks; its logits are bitwise those of the original. ``fast``
  (input-gradient methods and Occlusion, unless ``fast=False``) is the exact copy with every
  BatchNorm folded into its convolution (``torch.fx`` fusion) in channels_last layout: the same
  function up to fp32 rounding (~1e-6 relative), about 30% faster on CPU. Hooks (Grad-CAM,
  knockouts) go on the exact copy only, and every use of the exact copy holds its lock, so
  concurrent callers (the app) never see each other's hooks; a ``predict()`` or ``trace()`` on the
  original model is never affected.
- **The shared ``fuse_act``.** It is one ReLU called once per output stream, so Captum's layer
  methods would only see its last call. Per-stream methods hook the ``HighResolutionModule`` itself
  instead: it is called once per forward and returns the list of all fused streams (Captum 0.9
  accepts list outputs), so one pass gives every stream.
- **Layer IG on the final streams** runs Captum's ``IntegratedGradients`` on the network's head with
  the four stage-4 outputs as its inputs. That is exactly what ``LayerIntegratedGradients`` on the
  stage-4 output computes, without re-running the whole body at every step (and Captum's layer IG
  cannot scatter into a layer that returns a list).
- **Eval mode, gradients.** A model in training mode is refused (BatchNorm would update); methods
  that need gradients refuse to run under ``torch.no_grad()`` / ``torch.inference_mode()``.
  Occlusion and knockouts only run forwards and work anywhere. Attribution always runs in fp32.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from captum.attr import (
    GradientShap,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from timm.models.hrnet import HighResolutionNet
from torch import nn

from .graphs import GraphedForward
from .images import ImageInput, to_batch
from .predict import ClassScore, topk_from_logits
from .trace import ModuleRef, _check_hrnet, hooks_installed, module_refs
from .zoo import LoadedModel, imagenet_class_names

__all__ = [
    "PIXEL_METHODS",
    "BASELINES",
    "PixelAttribution",
    "StreamGradCAM",
    "StreamShares",
    "KnockoutResult",
    "attribute_pixels",
    "gradcam_streams",
    "stream_shares",
    "knockout",
    "resolution_reliance",
    "default_internal_batch_size",
    "clear_attribution_cache",
]

PIXEL_METHODS = ("ig", "saliency", "smoothgrad", "gradshap", "occlusion")
BASELINES = ("zeros", "black", "white", "blur")  # "zeros" is the dataset-mean image (0 after normalisation)
GRADIENT_FREE = ("occlusion",)

# Pixel budget per forward/backward chunk, in 224×224 images: measured on the 2-core CPU (8 and 16
# are equally fast for w18_small, bigger chunks only cost memory); on CUDA, all steps at once.
_CPU_CHUNK_IMAGES = 8
_CUDA_CHUNK_IMAGES = 64
_REF_PIXELS = 224 * 224


def default_internal_batch_size(device: torch.device | str, n: int, image_hw: tuple[int, int] = (224, 224)) -> int:
    """How many of ``n`` interpolation steps / samples to run per forward-backward pass on ``device``."""
    budget = _CUDA_CHUNK_IMAGES if torch.device(device).type == "cuda" else _CPU_CHUNK_IMAGES
    per_chunk = max(1, int(budget * _REF_PIXELS / (image_hw[0] * image_hw[1])))
    return max(1, min(n, per_chunk))


# --------------------------------------------------------------------------------------------------
# Private copies of the caller's model
# --------------------------------------------------------------------------------------------------


@dataclass
class _Copies:
    fingerprint: tuple
    exact: HighResolutionNet  # deepcopy, ReLUs not in-place, frozen parameters, bitwise-equal logits
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while hooks are on `exact`
    fast: nn.Module | None = None  # BN folded, channels_last; built on first use
    graphed: dict = field(default_factory=dict)  # (shapes) → GraphedForward of `fast` (CUDA graphs for IG)
    fast_error: str | None = None  # why `fast` could not be built (then `exact` is used)


_COPIES: weakref.WeakKeyDictionary[nn.Module, _Copies] = weakref.WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # inference tensors (a model built under inference_mode) have no version counter
        return -1


def _fingerprint(net: nn.Module) -> tuple:
    """Changes when a parameter or buffer is replaced, moved, or modified in place (load_state_dict).

    Writes through ``.data`` bypass the version counter: call :func:`clear_attribution_cache` after those.
    """
    return tuple((t.data_ptr(), _version(t), t.dtype, str(t.device)) for t in (*net.parameters(), *net.buffers()))


_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def _clear_hooks(module: nn.Module) -> None:
    """A deepcopy copies the caller's hooks too; the private copy must run without them."""
    for m in module.modules():
        for name in _HOOK_DICTS:
            hooks = getattr(m, name, None)
            if hooks:
                hooks.clear()


def _copies(net: HighResolutionNet) -> _Copies:
    fp = _fingerprint(net)
    with _COPIES_LOCK:
        hit = _COPIES.get(net)
        if hit is not None and hit.fingerprint == fp:
            return hit
        # Never build under the caller's inference_mode: inference-tensor weights cannot be saved for backward.
        with torch.inference_mode(False), torch.no_grad():
            exact = copy.deepcopy(net)
        _clear_hooks(exact)
        for m in exact.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
        exact.requires_grad_(False).eval()
        entry = _Copies(fp, exact)
        _COPIES[net] = entry
        return entry


def _fast_model(entry: _Copies) -> nn.Module:
    """The exact copy with BatchNorm folded into the convolutions, channels_last (built once)."""
    with _COPIES_LOCK:
        if entry.fast is None and entry.fast_error is None:
            try:
                from torch.fx.experimental.optimization import fuse

                with torch.inference_mode(False), torch.no_grad():
                    fast = fuse(copy.deepcopy(entry.exact), inplace=True).to(memory_format=torch.channels_last)
                entry.fast = fast.requires_grad_(False).eval()
            except Exception as exc:  # torch.fx could not trace this model: fall back, and say so
                entry.fast_error = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"Could not fold BatchNorm for fast attribution ({entry.fast_error}); using the exact copy.",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return entry.fast if entry.fast is not None else entry.exact


def clear_attribution_cache() -> None:
    """Drop every private model copy (they also go when their model is garbage-collected)."""
    with _COPIES_LOCK:
        _COPIES.clear()


# --------------------------------------------------------------------------------------------------
# Inputs, targets, baselines
# --------------------------------------------------------------------------------------------------


def _require_grad(what: str) -> None:
    if torch.is_inference_mode_enabled() or not torch.is_grad_enabled():
        raise RuntimeError(
            f"{what} needs gradients, but it was called under torch.no_grad() or torch.inference_mode(). "
            "Call it outside those blocks (it never updates the model)."
        )


def _prepare(loaded: LoadedModel, inputs: torch.Tensor | ImageInput, input_size: int | None):
    """→ (caller's net, its private copies, a fresh fp32 1x3xHxW tensor on the model's device)."""
    if not isinstance(loaded, LoadedModel):
        raise TypeError(f"Expected a LoadedModel (from hrnet_explorer.load_model), got {type(loaded).__name__}.")
    net = _check_hrnet(loaded.model)
    if net.training:
        raise ValueError(
            "The model is in training mode (BatchNorm would update its statistics); call model.eval() first."
        )
    x = to_batch(inputs, loaded.data_config, input_size)
    if x.shape[0] != 1:
        raise ValueError(f"Attribution explains one image at a time; got a batch of {x.shape[0]}.")
    param = next(net.parameters())
    # clone(): a fresh tensor, never an inference tensor nor the caller's (Captum sets requires_grad).
    x = x.detach().to(param.device, torch.float32).clone()
    return net, _copies(net), x


def _check_target(target: int | None, num_classes: int) -> int | None:
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, int):
        try:
            target = int(target)  # numpy / 0-dim tensor integers
        except (TypeError, ValueError):
            raise TypeError(f"target must be a class index (int) or None, got {type(target).__name__}.") from None
    if not 0 <= target < num_classes:
        raise ValueError(f"target must be a class index in 0..{num_classes - 1}, got {target}.")
    return target


def _baseline(kind: str | torch.Tensor | float, x: torch.Tensor, loaded: LoadedModel) -> torch.Tensor:
    """A baseline image in the model's normalised input space, shaped like ``x``."""
    if isinstance(kind, torch.Tensor):
        b = kind.to(x.device, torch.float32)
        if b.ndim == 3:
            b = b.unsqueeze(0)
        if b.shape[1:] != x.shape[1:]:
            raise ValueError(f"A baseline tensor must have the input's shape {tuple(x.shape)}, got {tuple(b.shape)}.")
        return b.clone()
    if isinstance(kind, (int, float)) and not isinstance(kind, bool):
        return torch.full_like(x, float(kind))
    if kind == "zeros":
        return torch.zeros_like(x)
    mean = torch.tensor(loaded.data_config["mean"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(loaded.data_config["std"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    if kind == "black":
        return ((0.0 - mean) / std).expand_as(x).clone()
    if kind == "white":
        return ((1.0 - mean) / std).expand_as(x).clone()
    if kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        sigma = max(x.shape[-2:]) / 16
        k = 2 * math.ceil(3 * sigma) + 1
        return gaussian_blur(x, [k, k], [sigma, sigma])
    raise ValueError(f"Unknown baseline {kind!r}; use one of {', '.join(BASELINES)}, a number or a tensor.")


def _baseline_name(kind: Any) -> str | float | list:
    if isinstance(kind, torch.Tensor):
        return f"tensor{list(kind.shape)}"
    if isinstance(kind, (list, tuple)):
        return [_baseline_name(k) for k in kind]
    return kind


def _layout(x: torch.Tensor) -> torch.memory_format:
    return torch.contiguous_format if x.is_contiguous() else torch.channels_last


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).float()


def _label(target: int, class_names: Sequence[str]) -> str:
    return class_names[target] if 0 <= target < len(class_names) else f"class {target}"


def _names_field():
    """The model's class names on a result (not in its repr: there may be 1000). A result built by hand
    without them reads ImageNet's, as results did before models had names of their own."""
    return field(default_factory=imagenet_class_names, repr=False, compare=False)


def _top1_unless(target: int | None, model: nn.Module, x: torch.Tensor) -> int:
    """``target``, or the model's top-1 class for ``x`` when it is None (one forward)."""
    return target if target is not None else int(_logits(model, x)[0].argmax())


# --------------------------------------------------------------------------------------------------
# Pixel attribution
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PixelAttribution:
    """One pixel-space attribution, ready for an overlay on the model's input crop."""

    method: str  # one of PIXEL_METHODS
    target: int  # class index explained
    attributions: torch.Tensor  # Captum's raw output, CPU float32 [1, 3, H, W] (normalised-input space)
    heatmap: torch.Tensor  # CPU float32 [H, W]: ``attributions`` reduced over channels (settings["reduction"])
    delta: float | None  # convergence delta: IG: Σ attributions − (f(x) − f(baseline)); GradientShap:
    # the mean of Captum's per-sample deltas (→ 0 as n_samples grows); other methods: None
    settings: dict  # every setting actually used (steps, internal_batch_size, baseline, reduction, model, ...)
    logit: float | None = None  # f(x) for the target (IG, GradientShap)
    baseline_logit: float | None = None  # f(baseline) for the target (IG)
    seconds: float = 0.0  # wall time of the attribution
    class_names: tuple[str, ...] = _names_field()

    @property
    def label(self) -> str:
        return _label(self.target, self.class_names)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "target": self.target,
            "label": self.label,
            "delta": self.delta,
            "logit": self.logit,
            "baseline_logit": self.baseline_logit,
            "attribution_sum": float(self.attributions.double().sum()),
            "heatmap_range": [float(self.heatmap.min()), float(self.heatmap.max())],
            "input_size": list(self.heatmap.shape),
            "settings": self.settings,
            "seconds": self.seconds,
        }


_REDUCTIONS = ("sum", "mean", "abs_sum", "max_abs")
_DEFAULT_REDUCTION = {
    "ig": "sum",
    "gradshap": "sum",
    "occlusion": "mean",
    "saliency": "max_abs",
    "smoothgrad": "max_abs",
}


def _reduce(attr: torch.Tensor, how: str) -> torch.Tensor:
    if how == "sum":
        return attr[0].sum(0)
    if how == "mean":
        return attr[0].mean(0)
    if how == "abs_sum":
        return attr[0].abs().sum(0)
    return attr[0].abs().amax(0)


_OPTIONS = {
    "ig": {"n_steps": 32, "internal_batch_size": None, "baseline": "zeros", "integration": "gausslegendre"},
    "saliency": {"abs": True},
    "smoothgrad": {"nt_samples": 16, "nt_samples_batch_size": None, "noise_level": 0.15, "abs": False, "seed": 0},
    "gradshap": {
        "n_samples": 16,
        "internal_batch_size": None,
        "baseline": ("zeros", "black", "white"),
        "stdevs": 0.0,
        "seed": 0,
    },
    "occlusion": {"window": None, "stride": None, "baseline": "zeros", "perturbations_per_eval": None},
}
_COMMON = {"fast": True, "reduction": None, "input_size": None, "graphs": None, "precision": "fp32"}


def attribute_pixels(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    method: str = "ig",
    target: int | None = None,
    **options,
) -> PixelAttribution:
    """Attribute the ``target`` logit (default: the top-1 class) to the input pixels with Captum.

    ``method`` and its options (all optional; ``settings`` reports what was used):

    - ``"ig"`` — IntegratedGradients: ``n_steps=32``, ``internal_batch_size`` (default: chosen for
      the device, see :func:`default_internal_batch_size`), ``baseline="zeros"`` (one of
      :data:`BASELINES`, a number or a tensor), ``integration="gausslegendre"`` (Captum's
      ``method``: or "riemann_trapezoid", ...). ``delta`` = Σ attributions − (f(x) − f(baseline)).
    - ``"saliency"`` — Saliency, |∂f/∂x| (``abs=True``).
    - ``"smoothgrad"`` — NoiseTunnel(Saliency), smoothgrad: ``nt_samples=16``,
      ``nt_samples_batch_size`` (device default), ``noise_level=0.15`` (σ as a fraction of the
      input's value range, as in Smilkov et al.), ``abs=False`` (average signed gradients), ``seed=0``.
    - ``"gradshap"`` — GradientShap: ``n_samples=16`` (run ``internal_batch_size`` at a time),
      ``baseline=("zeros", "black", "white")`` (the baseline distribution: names, numbers or a
      Kx3xHxW tensor), ``stdevs=0.0``, ``seed=0``.
    - ``"occlusion"`` — Occlusion: ``window`` patches (all channels; an int or an (h, w) pair)
      moved by ``stride`` and replaced by ``baseline="zeros"``. Default: windows of H/4 × W/4
      moved by H/8, W/8 — a 7×7 grid, 49 forwards at any size (56/28 px at 224);
      ``window=32, stride=16`` gives finer maps at 169 forwards. ``perturbations_per_eval``
      (device default).

    Common options: ``fast=True`` (the BN-folded channels_last copy; ``False``: the exact copy),
    ``reduction`` for the heatmap — "sum" over channels for ig/gradshap (the map then sums to the
    total attribution), "mean" for occlusion (each pixel: the average logit drop when a window over
    it is occluded), "max_abs" for saliency/smoothgrad (Simonyan et al.); or "abs_sum" —
    ``input_size`` (crop size when ``inputs`` is an image), and ``graphs`` (IG only; default: on
    CUDA with ``fast=True``): replay IG's forwards and backward from CUDA graphs, captured once per
    shape — see :class:`~hrnet_explorer.graphs.GraphedForward`; with graphs, ``precision="bf16"``
    runs them under bf16 autocast (faster; a larger convergence delta, reported as always).
    """
    if method not in PIXEL_METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of: {', '.join(PIXEL_METHODS)}.")
    valid = {**_OPTIONS[method], **_COMMON}
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"Unknown option(s) {', '.join(unknown)} for method {method!r}; valid: {', '.join(valid)}.")
    opts = {**valid, **options}
    reduction = opts.pop("reduction") or _DEFAULT_REDUCTION[method]
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Unknown reduction {reduction!r}; choose one of: {', '.join(_REDUCTIONS)}.")
    if method not in GRADIENT_FREE:
        _require_grad(f"attribute_pixels(method={method!r})")
    net, entry, x = _prepare(loaded, inputs, opts.pop("input_size"))
    target = _check_target(target, net.num_classes)
    fast = bool(opts.pop("fast"))
    model = _fast_model(entry) if fast else entry.exact
    if model is not entry.exact:
        x = x.contiguous(memory_format=torch.channels_last)
    graphs, precision = opts.pop("graphs"), opts.pop("precision")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', not {precision!r}.")
    if graphs is None:
        graphs = method == "ig" and x.is_cuda and model is not entry.exact
    if graphs and method != "ig":
        raise ValueError(f"graphs=True is implemented for method='ig' only, not {method!r}.")
    if precision == "bf16" and not graphs:
        raise ValueError("precision='bf16' is available for IG with CUDA graphs (on a GPU) only.")
    if graphs:
        model = _graphed_for_ig(entry, model, x, opts, precision)
    start = time.perf_counter()
    # The exact copy is shared with the hook-based methods, and graphs with their static buffers:
    # hold the lock. The fast copy never has hooks.
    with entry.lock if model is entry.exact or graphs else contextlib.nullcontext():
        attr, target, delta, logit, base_logit, used = _PIXEL_IMPL[method](model, x, target, loaded, **opts)
    attr = attr.detach().float().cpu().contiguous()
    settings = {
        **used,
        "reduction": reduction,
        "model": ("fast (BatchNorm folded, channels_last)" if model is not entry.exact else "exact copy")
        + (", CUDA graphs" if graphs else ""),
        "device": str(x.device),
        "precision": precision,
        "input_size": [x.shape[-2], x.shape[-1]],
    }
    return PixelAttribution(
        class_names=loaded.class_names,
        method=method,
        target=target,
        attributions=attr,
        heatmap=_reduce(attr, reduction).contiguous(),
        delta=delta,
        settings=settings,
        logit=logit,
        baseline_logit=base_logit,
        seconds=time.perf_counter() - start,
    )


def _graphed_for_ig(entry: _Copies, model: nn.Module, x: torch.Tensor, opts: dict, precision: str) -> GraphedForward:
    """IG's two graphable calls as CUDA graphs: the batch-2 forward of [x, baseline] (no grad), and
    forward + backward of a chunk of ``internal_batch_size`` scaled inputs. Without graphs, both are
    launch-bound on a GPU (HRNet runs hundreds of small kernels). Captured once per shape (~1 s)."""
    if not x.is_cuda:
        raise ValueError("graphs=True needs a CUDA device (CUDA graphs); leave it unset on CPU.")
    if model is entry.exact:
        raise ValueError("graphs=True runs on the fast copy; it cannot be combined with fast=False.")
    ibs = opts["internal_batch_size"] or default_internal_batch_size(x.device, opts["n_steps"], x.shape[-2:])
    opts["internal_batch_size"] = ibs
    key = (tuple(x.shape), ibs, precision)
    with _COPIES_LOCK:
        if key not in entry.graphed:
            entry.graphed[key] = GraphedForward(
                model, grad_shapes=((ibs, *x.shape[1:]),), no_grad_shapes=((2, *x.shape[1:]),), precision=precision
            )
        return entry.graphed[key]


def _ig(model, x, target, loaded, *, n_steps, internal_batch_size, baseline, integration):
    if n_steps < 1:
        raise ValueError(f"n_steps must be ≥ 1, got {n_steps}.")
    b = _baseline(baseline, x, loaded).contiguous(memory_format=_layout(x))
    if b.shape[0] != 1:
        raise ValueError("Integrated Gradients takes one baseline image.")
    # One batched forward gives the top-1 target and both ends of the path: Captum's convergence
    # delta (Σ attributions − (f(x) − f(baseline))) without its two extra forwards.
    logits = _logits(model, torch.cat([x, b]))
    target = int(logits[0].argmax()) if target is None else target
    ibs = internal_batch_size or default_internal_batch_size(x.device, n_steps, x.shape[-2:])
    attr = IntegratedGradients(model).attribute(
        x, baselines=b, target=target, n_steps=n_steps, method=integration, internal_batch_size=ibs
    )
    fx, fb = float(logits[0, target]), float(logits[1, target])
    delta = float(attr.double().sum()) - (fx - fb)
    used = {
        "n_steps": n_steps,
        "internal_batch_size": ibs,
        "integration": integration,
        "baseline": _baseline_name(baseline),
    }
    return attr, target, delta, fx, fb, used


def _saliency(model, x, target, loaded, *, abs):
    target = _top1_unless(target, model, x)
    attr = Saliency(model).attribute(x.clone().requires_grad_(), target=target, abs=abs)
    return attr, target, None, None, None, {"abs": abs}


def _smoothgrad(model, x, target, loaded, *, nt_samples, nt_samples_batch_size, noise_level, abs, seed):
    target = _top1_unless(target, model, x)
    sigma = float(noise_level) * float(x.max() - x.min())
    nbs = nt_samples_batch_size or default_internal_batch_size(x.device, nt_samples, x.shape[-2:])
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        attr = NoiseTunnel(Saliency(model)).attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=nt_samples,
            nt_samples_batch_size=nbs,
            stdevs=sigma,
            target=target,
            abs=abs,
        )
    used = {
        "nt_samples": nt_samples,
        "nt_samples_batch_size": nbs,
        "noise_level": noise_level,
        "stdevs": sigma,
        "abs": abs,
        "seed": seed,
    }
    return attr, target, None, None, None, used


def _gradshap(model, x, target, loaded, *, n_samples, internal_batch_size, baseline, stdevs, seed):
    if n_samples < 1:
        raise ValueError(f"n_samples must be ≥ 1, got {n_samples}.")
    kinds = list(baseline) if isinstance(baseline, (list, tuple)) else [baseline]
    dist = torch.cat([_baseline(k, x, loaded) for k in kinds]).contiguous(memory_format=_layout(x))
    logits = _logits(model, x)  # f(x), reported with the attribution
    target = int(logits[0].argmax()) if target is None else target
    # Captum's GradientShap runs all samples in one batch; the estimate is their mean, so running it
    # in chunks (one call per chunk, one RNG stream) and weighting each chunk by its size is the same.
    ibs = internal_batch_size or default_internal_batch_size(x.device, n_samples, x.shape[-2:])
    total, deltas, done = None, [], 0
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        while done < n_samples:
            k = min(ibs, n_samples - done)
            attr, delta = GradientShap(model).attribute(
                x, baselines=dist, n_samples=k, stdevs=stdevs, target=target, return_convergence_delta=True
            )
            total = attr * k if total is None else total + attr * k
            deltas.append(delta)
            done += k
    used = {
        "n_samples": n_samples,
        "internal_batch_size": ibs,
        "baseline": _baseline_name(baseline),
        "n_baselines": dist.shape[0],
        "stdevs": stdevs,
        "seed": seed,
    }
    return total / n_samples, target, float(torch.cat(deltas).mean()), float(logits[0, target]), None, used


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"Occlusion {name} must be a positive int or an (h, w) pair, got {value!r}.")
    return pair


def _occlusion_geometry(h: int, w: int, window, stride) -> tuple[tuple[int, int], tuple[int, int]]:
    """Default: windows a quarter of the image high and wide, moved by an eighth: a 7×7 grid of 49
    forwards at any size (H and W are multiples of 32, so every pixel is covered)."""
    stride = (h // 8, w // 8) if stride is None else _pair(stride, "stride")
    window = (2 * stride[0], 2 * stride[1]) if window is None else _pair(window, "window")
    if window[0] > h or window[1] > w:
        raise ValueError(f"The occlusion window {window} is larger than the {h}×{w} input.")
    return window, stride


def _occlusion(model, x, target, loaded, *, window, stride, baseline, perturbations_per_eval):
    window, stride = _occlusion_geometry(x.shape[-2], x.shape[-1], window, stride)
    target = _top1_unless(target, model, x)
    b = _baseline(baseline, x, loaded)
    n = ((x.shape[-2] - window[0]) // stride[0] + 1) * ((x.shape[-1] - window[1]) // stride[1] + 1)
    ppe = perturbations_per_eval or default_internal_batch_size(x.device, n, x.shape[-2:])
    with torch.no_grad():
        attr = Occlusion(model).attribute(
            x,
            sliding_window_shapes=(3, *window),
            strides=(3, *stride),
            baselines=b,
            target=target,
            perturbations_per_eval=ppe,
        )
    used = {
        "window": list(window),
        "stride": list(stride),
        "baseline": _baseline_name(baseline),
        "evaluations": n,
        "perturbations_per_eval": ppe,
    }
    return attr, target, None, None, None, used


_PIXEL_IMPL = {
    "ig": _ig,
    "saliency": _saliency,
    "smoothgrad": _smoothgrad,
    "gradshap": _gradshap,
    "occlusion": _occlusion,
}


# --------------------------------------------------------------------------------------------------
# Per-stream methods
# --------------------------------------------------------------------------------------------------


def _resolve_module(net: HighResolutionNet, stage: int, module: int) -> tuple[ModuleRef, nn.Module]:
    refs = [r for r in module_refs(net) if r.stage == stage]
    if not refs:
        raise ValueError(f"No stage {stage!r}: HRNet's fusing stages are 2, 3 and 4.")
    if not isinstance(module, int) or not -len(refs) <= module < len(refs):
        raise ValueError(
            f"Stage {stage} has {len(refs)} module(s) ({', '.join(r.name for r in refs)}); "
            f"module must be in {-len(refs)}..{len(refs) - 1}, got {module!r}."
        )
    ref = refs[module]
    return ref, getattr(net, f"stage{stage}")[ref.index]


@dataclass(frozen=True)
class StreamGradCAM:
    """Grad-CAM of each resolution stream (fused outputs) of one HighResolutionModule."""

    target: int
    stage: int
    module: int  # index within the stage (resolved: never negative)
    maps: list[torch.Tensor]  # one per stream, CPU float32 [H, W] at input resolution (bilinear), ReLU'd
    raw: list[torch.Tensor]  # one per stream at the stream's resolution [h_k, w_k], ReLU'd
    # Maps are not normalised: their magnitudes compare across streams (same target, same module).
    class_names: tuple[str, ...] = _names_field()

    @property
    def name(self) -> str:
        return f"stage{self.stage}.module{self.module}"

    @property
    def label(self) -> str:
        return _label(self.target, self.class_names)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "label": self.label,
            "module": self.name,
            "streams": [
                {
                    "stream": k,
                    "resolution": list(r.shape),
                    "max": float(r.max()),
                    "mean": float(r.mean()),
                    "peak_at_input": _peak(m),
                }
                for k, (r, m) in enumerate(zip(self.raw, self.maps, strict=True))
            ],
        }


def _peak(m: torch.Tensor) -> list[int]:
    i = int(m.argmax())
    return [i // m.shape[-1], i % m.shape[-1]]


def gradcam_streams(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    target: int | None = None,
    stage: int = 4,
    module: int = -1,
    *,
    input_size: int | None = None,
) -> StreamGradCAM:
    """Captum's LayerGradCam on every fused stream of ``stage``'s ``module`` (default: the last one).

    The layer hooked is the HighResolutionModule (its output is the list of fused streams, one call
    per forward), never the shared ``fuse_act``; one forward and one backward give all streams. Each
    stream's map is ReLU(Σ_c mean(∂y/∂A_c) · A_c) at its own resolution, upsampled bilinearly.
    """
    _require_grad("gradcam_streams()")
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    exact = entry.exact
    ref, layer = _resolve_module(exact, stage, module)
    with entry.lock:
        target = _top1_unless(target, exact, x)
        cams = LayerGradCam(exact, layer).attribute(x, target=target, relu_attributions=True)
    cams = cams if isinstance(cams, (tuple, list)) else (cams,)
    size = (x.shape[-2], x.shape[-1])
    maps = [
        LayerAttribution.interpolate(c.detach(), size, interpolate_mode="bilinear")[0, 0].float().cpu() for c in cams
    ]
    raw = [c.detach()[0, 0].float().cpu() for c in cams]
    return StreamGradCAM(target, stage, ref.index, maps, raw, class_names=loaded.class_names)


def _body(net: HighResolutionNet, x: torch.Tensor) -> list[torch.Tensor]:
    """The stem and stages 2–4 of timm's forward_features: the final streams (stage 4, last module)."""
    x = net.act2(net.bn2(net.conv2(net.act1(net.bn1(net.conv1(x))))))
    return list(net.stages(x))


def _head(net: HighResolutionNet, *streams: torch.Tensor) -> torch.Tensor:
    """The rest of timm's forward_features (incre/downsamp/final_layer) and forward_head."""
    y = net.incre_modules[0](streams[0])
    for i in range(1, len(net.incre_modules)):
        y = net.incre_modules[i](streams[i]) + net.downsamp_modules[i - 1].forward(y)  # timm calls .forward too
    return net.forward_head(net.final_layer(y))


@dataclass(frozen=True)
class StreamShares:
    """Each final stream's share of the target logit (Layer Integrated Gradients at the stage-4 output)."""

    target: int
    shares: torch.Tensor  # [N] CPU float32: Σ of stream k's attribution; Σ_k shares ≈ logit − baseline_logit
    logit: float  # f(x)
    baseline_logit: float  # f(baseline)
    delta: float  # completeness error: sum(shares) − (logit − baseline_logit)
    n_steps: int
    baseline: str = "zeros"
    internal_batch_size: int = 0
    attributions: tuple[torch.Tensor, ...] = ()  # per stream, CPU float32 [C_k, h_k, w_k]
    class_names: tuple[str, ...] = _names_field()

    @property
    def label(self) -> str:
        return _label(self.target, self.class_names)

    @property
    def relative_delta(self) -> float:
        """|delta| / |logit − baseline_logit|: the completeness error relative to what is explained."""
        return abs(self.delta) / max(abs(self.logit - self.baseline_logit), 1e-12)

    @property
    def fractions(self) -> torch.Tensor:
        """shares / (logit − baseline_logit): fractions of the explained logit change (can be negative)."""
        return self.shares / (self.logit - self.baseline_logit)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "label": self.label,
            "shares": self.shares.tolist(),
            "fractions": self.fractions.tolist(),
            "logit": self.logit,
            "baseline_logit": self.baseline_logit,
            "delta": self.delta,
            "relative_delta": self.relative_delta,
            "n_steps": self.n_steps,
            "baseline": self.baseline,
        }


def stream_shares(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    target: int | None = None,
    n_steps: int = 32,
    baseline: str = "zeros",
    *,
    internal_batch_size: int | None = None,
    integration: str = "gausslegendre",
    input_size: int | None = None,
) -> StreamShares:
    """Layer Integrated Gradients of the ``target`` logit over the final streams (stage 4, last module).

    The body runs once on the input and once on the baseline image (``baseline``: one of
    :data:`BASELINES`); Captum's IntegratedGradients then integrates the head's gradient along the
    straight path between the two sets of stage-4 outputs. Completeness: Σ shares = f(x) −
    f(baseline) up to ``delta``.
    """
    _require_grad("stream_shares()")
    if n_steps < 1:
        raise ValueError(f"n_steps must be ≥ 1, got {n_steps}.")
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    exact = entry.exact
    b = _baseline(baseline, x, loaded)
    ibs = internal_batch_size or default_internal_batch_size(x.device, n_steps, x.shape[-2:])

    def head(*s: torch.Tensor) -> torch.Tensor:
        return _head(exact, *s)

    with entry.lock:  # no hooks of its own, but knockouts may hook the exact copy meanwhile
        with torch.no_grad():
            streams = _body(exact, torch.cat([x, b]))
            logits = _head(exact, *streams).float()
        target = int(logits[0].argmax()) if target is None else target
        s_x = tuple(s[:1].contiguous() for s in streams)
        s_b = tuple(s[1:].contiguous() for s in streams)
        attrs = IntegratedGradients(head).attribute(
            s_x, baselines=s_b, target=target, n_steps=n_steps, method=integration, internal_batch_size=ibs
        )
    sums = torch.stack([a.double().sum() for a in attrs])
    fx, fb = float(logits[0, target]), float(logits[1, target])
    return StreamShares(
        target=target,
        shares=sums.float().cpu(),
        logit=fx,
        baseline_logit=fb,
        delta=float(sums.sum()) - (fx - fb),
        n_steps=n_steps,
        baseline=_baseline_name(baseline),
        internal_batch_size=ibs,
        attributions=tuple(a.detach()[0].float().cpu() for a in attrs),
        class_names=loaded.class_names,
    )


# --------------------------------------------------------------------------------------------------
# Knockouts
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnockoutResult:
    """What zeroing some fuse edges does to the target's logit and probability, and the new top-k."""

    target: int
    description: str  # e.g. "stream 2 removed everywhere", "edge 3→0 removed in stage4.module2"
    logit_before: float
    logit_after: float
    prob_before: float
    prob_after: float
    top_after: list[ClassScore]
    top_before: list[ClassScore] = field(default_factory=list)
    stream: int | None = None
    edge: tuple[int, int] | None = None  # (source, target)
    modules: tuple[str, ...] = ()  # modules where edges were zeroed
    edges_removed: int = 0  # number of fuse edges zeroed in all
    class_names: tuple[str, ...] = _names_field()

    @property
    def label(self) -> str:
        return _label(self.target, self.class_names)

    @property
    def logit_delta(self) -> float:
        return self.logit_after - self.logit_before

    @property
    def prob_delta(self) -> float:
        return self.prob_after - self.prob_before

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "label": self.label,
            "description": self.description,
            "stream": self.stream,
            "edge": list(self.edge) if self.edge else None,
            "modules": list(self.modules),
            "edges_removed": self.edges_removed,
            "logit_before": self.logit_before,
            "logit_after": self.logit_after,
            "logit_delta": self.logit_delta,
            "prob_before": self.prob_before,
            "prob_after": self.prob_after,
            "prob_delta": self.prob_delta,
            "top_after": [vars(s) for s in self.top_after],
        }


def _select_modules(net: HighResolutionNet, stage: int | None, module: int | None) -> tuple[list[ModuleRef], str]:
    refs = module_refs(net)
    if stage is None:
        if module is not None:
            raise ValueError("module= needs stage= too (e.g. stage=4, module=0); leave both out for every module.")
        return refs, "everywhere"
    if stage not in (2, 3, 4):
        raise ValueError(f"No stage {stage!r}: HRNet's fusing stages are 2, 3 and 4.")
    if module is None:
        chosen = [r for r in refs if r.stage == stage]
        return chosen, (f"in {chosen[0].name}" if len(chosen) == 1 else f"in stage {stage} (all {len(chosen)} modules)")
    ref, _ = _resolve_module(net, stage, module)
    return [ref], f"in {ref.name}"


def _edges_to_zero(
    net: HighResolutionNet,
    stream: int | None,
    edge: tuple[int, int] | None,
    stage: int | None,
    module: int | None,
    self_edge: bool,
) -> tuple[list[tuple[ModuleRef, int, int]], str, tuple[str, ...]]:
    """→ ([(module, source, target)], description, module names)."""
    if stream is not None and edge is not None:
        raise ValueError("Knock out a stream or an edge, not both.")
    refs, where = _select_modules(net, stage, module)
    if stream is None and edge is None:
        return [], "nothing removed", ()
    everywhere = stage is None
    if stream is not None:
        if isinstance(stream, bool) or not isinstance(stream, int) or stream < 0:
            raise ValueError(f"stream must be a stream index ≥ 0, got {stream!r}.")
        needed, what = stream, f"stream {stream}"
    else:
        if (
            not isinstance(edge, (tuple, list))
            or len(edge) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in edge)
        ):
            raise ValueError(f"edge must be a (source, target) pair of stream indices, got {edge!r}.")
        needed, what = max(edge), f"edge {edge[0]}→{edge[1]}"
    usable = [r for r in refs if needed < r.num_streams]
    if not usable or (not everywhere and len(usable) != len(refs)):
        have = sorted({r.num_streams for r in refs})
        raise ValueError(
            f"No {what} {where}: the module(s) there have {'/'.join(map(str, have))} streams (0..{max(have) - 1}). "
            "Streams: stage 2 has 0–1, stage 3 has 0–2, stage 4 has 0–3."
        )
    edges = []
    for r in usable:
        if stream is not None:
            edges += [(r, stream, i) for i in range(r.num_streams) if i != stream or self_edge]
        else:
            edges.append((r, edge[0], edge[1]))
    removed = "removed" if stream is None or not self_edge else "removed (its own path too)"
    return edges, f"{what} {removed} {where}", tuple(r.name for r in usable)


def _zero_output(module, args, output):
    return torch.zeros_like(output)


def _knockout_logits(entry: _Copies, x: torch.Tensor, edges: list[tuple[ModuleRef, int, int]]) -> torch.Tensor:
    net = entry.exact
    hooks = [(getattr(net, f"stage{r.stage}")[r.index].fuse_layers[i][j], "forward", _zero_output) for r, j, i in edges]
    with entry.lock, hooks_installed(hooks), torch.inference_mode():
        return net(x)[0].float().cpu()


def _knockout_result(
    loaded: LoadedModel, target, logits_before, logits_after, description, topk, **extra
) -> KnockoutResult:
    p_before, p_after = logits_before.softmax(-1), logits_after.softmax(-1)
    names = loaded.class_names
    return KnockoutResult(
        target=target,
        description=description,
        logit_before=float(logits_before[target]),
        logit_after=float(logits_after[target]),
        prob_before=float(p_before[target]),
        prob_after=float(p_after[target]),
        top_after=topk_from_logits(logits_after, topk, names),
        top_before=topk_from_logits(logits_before, topk, names),
        class_names=names,
        **extra,
    )


def knockout(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    *,
    stream: int | None = None,
    edge: tuple[int, int] | None = None,
    stage: int | None = None,
    module: int | None = None,
    target: int | None = None,
    topk: int = 5,
    self_edge: bool = False,
    input_size: int | None = None,
) -> KnockoutResult:
    """Zero fuse edges and report the change in the ``target`` class (default: the top-1 before).

    ``stream=k``: every edge leaving stream k into another stream (k→i, i ≠ k; with
    ``self_edge=True`` also k→k, the stream's own continuation). ``edge=(source, target)``: that one
    edge. Where: ``stage``/``module`` (``module`` may be negative; ``stage`` alone: all its modules;
    neither: every module that has the streams). Neither ``stream`` nor ``edge``: nothing is
    removed, and the logits are exactly the original ones. Runs on the private exact copy: the
    caller's model is never hooked.
    """
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    edges, description, names = _edges_to_zero(entry.exact, stream, edge, stage, module, self_edge)
    before = _knockout_logits(entry, x, [])
    target = int(before.argmax()) if target is None else target
    after = _knockout_logits(entry, x, edges)  # no edges: the same hook-free forward again
    return _knockout_result(
        loaded,
        target,
        before,
        after,
        description,
        topk,
        stream=stream,
        edge=tuple(edge) if edge else None,
        modules=names,
        edges_removed=len(edges),
    )


def resolution_reliance(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    target: int | None = None,
    *,
    topk: int = 5,
    self_edge: bool = False,
    input_size: int | None = None,
) -> list[KnockoutResult]:
    """For each final stream k (0 = highest resolution), the result of knocking it out everywhere.

    ``result[k].logit_delta`` is the target's logit change when stream k stops feeding the other
    streams in every module (``self_edge=True``: its own path too).
    """
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    before = _knockout_logits(entry, x, [])
    target = int(before.argmax()) if target is None else target
    results = []
    for k in range(module_refs(entry.exact)[-1].num_streams):
        edges, description, names = _edges_to_zero(entry.exact, k, None, None, None, self_edge)
        after = _knockout_logits(entry, x, edges)
        results.append(
            _knockout_result(
                loaded, target, before, after, description, topk, stream=k, modules=names, edges_removed=len(edges)
            )
        )
    return results

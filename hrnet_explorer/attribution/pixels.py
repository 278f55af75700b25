"""Pixel attribution with Captum: Integrated Gradients, Saliency, SmoothGrad, GradientShap, Occlusion."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel, Occlusion, Saliency

from ..copies import PrivateCopy, private_copy
from ..errors import InputError
from ..graphs import GraphedIG
from ..images import ImageInput
from ..progress import Progress, Steps
from ..zoo import LoadedModel
from ._captum import integration_points
from ._core import (
    _baseline,
    _baseline_name,
    _check_target,
    _layout,
    _logits,
    _names_field,
    _prepare,
    _require_grad,
    _TargetLabel,
    _top1_unless,
    default_internal_batch_size,
)

__all__ = ["PIXEL_METHODS", "GRADIENT_FREE", "PixelAttribution", "attribute_pixels"]

PIXEL_METHODS = ("ig", "saliency", "smoothgrad", "gradshap", "occlusion")
GRADIENT_FREE = ("occlusion",)


@dataclass(frozen=True)
class PixelAttribution(_TargetLabel):
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
    *,
    progress: Progress | None = None,
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
    shape on the fast copy with channel widths padded to multiples of 8 (same function, faster kernels) — see
    :class:`~hrnet_explorer.graphs.GraphedIG`; with graphs, ``precision="bf16"``
    runs them under bf16 autocast (faster; a larger convergence delta, reported as always).

    ``progress``: called as ``progress(done, total)`` with the batches (forwards of the model, each with its
    backward for the gradient methods) done of the ``total`` this attribution runs — ``(0, total)`` first,
    then each step to ``(total, total)``: IG runs 1 + ⌈n_steps / internal_batch_size⌉ (one when replayed from
    CUDA graphs), Saliency 1, SmoothGrad ⌈nt_samples / nt_samples_batch_size⌉, GradientShap 1 + ⌈n_samples /
    internal_batch_size⌉ chunks, Occlusion 1 + ⌈windows / perturbations_per_eval⌉; each adds one forward
    for the top-1 class when ``target`` is None (IG and GradientShap find it in their first forward). The
    result does not depend on it.
    """
    if method not in PIXEL_METHODS:
        raise InputError(f"Unknown method {method!r}; choose one of: {', '.join(PIXEL_METHODS)}.")
    valid = {**_OPTIONS[method], **_COMMON}
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise InputError(f"Unknown option(s) {', '.join(unknown)} for method {method!r}; valid: {', '.join(valid)}.")
    opts = {**valid, **options}
    reduction = opts.pop("reduction") or _DEFAULT_REDUCTION[method]
    if reduction not in _REDUCTIONS:
        raise InputError(f"Unknown reduction {reduction!r}; choose one of: {', '.join(_REDUCTIONS)}.")
    if method not in GRADIENT_FREE:
        _require_grad(f"attribute_pixels(method={method!r})")
    net, exact, x = _prepare(loaded, inputs, opts.pop("input_size"))
    target = _check_target(target, net.num_classes)
    fast = bool(opts.pop("fast"))
    run = private_copy(net, "folded") if fast else exact
    if fast:
        x = x.contiguous(memory_format=torch.channels_last)
    graphs, precision = opts.pop("graphs"), opts.pop("precision")
    if precision not in ("fp32", "bf16"):
        raise InputError(f"precision must be 'fp32' or 'bf16', not {precision!r}.")
    if graphs is None:
        graphs = method == "ig" and x.is_cuda and fast
    if graphs and method != "ig":
        raise InputError(f"graphs=True is implemented for method='ig' only, not {method!r}.")
    if precision == "bf16" and not graphs:
        raise InputError("precision='bf16' is available for IG with CUDA graphs (on a GPU) only.")
    model = run.net
    if graphs:
        if not x.is_cuda:
            raise InputError("graphs=True needs a CUDA device (CUDA graphs); leave it unset on CPU.")
        if not fast:
            raise InputError("graphs=True runs on the fast copy; it cannot be combined with fast=False.")
        run = private_copy(net, "padded")
        model = _graphed_for_ig(run, x, opts, precision)
    start = time.perf_counter()
    # Copies are shared (hooks of other callers, a graph's static buffers): hold the lock while running one.
    with run.lock:
        attr, target, delta, logit, base_logit, used = _PIXEL_IMPL[method](
            model, x, target, loaded, progress=progress, **opts
        )
    attr = attr.detach().float().cpu().contiguous()
    settings = {
        **used,
        "reduction": reduction,
        "model": ("fast (BatchNorm folded, channels_last)" if fast else "exact copy")
        + (", CUDA graphs" if graphs else "")
        + (", channels padded to multiples of 8" if graphs and run.kind == "padded" else ""),
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


def _graphed_for_ig(padded: PrivateCopy, x: torch.Tensor, opts: dict, precision: str) -> GraphedIG:
    """The whole of IG as one CUDA graph (:class:`~hrnet_explorer.graphs.GraphedIG`): the batch-2 forward of
    [x, baseline], every chunk's forward and backward and the weighted sum, with nothing read back between
    them. Without graphs IG is launch-bound on a GPU (HRNet runs hundreds of small kernels), and each read-back
    (the top-1 target, f(x), f(b)) leaves the GPU idle while Python catches up. Captured once per shape (~1 s),
    on the folded copy with its channel widths padded to multiples of 8 (``padded``, kept in its ``derived``: the last
    four shapes and settings)."""
    n_steps, integration = opts["n_steps"], opts["integration"]
    if n_steps < 1:
        raise InputError(f"n_steps must be ≥ 1, got {n_steps}.")
    ibs = opts["internal_batch_size"] or default_internal_batch_size(x.device, n_steps, x.shape[-2:])
    opts["internal_batch_size"] = ibs

    def capture() -> GraphedIG:
        alphas, weights = integration_points(integration, n_steps)
        return GraphedIG(padded.net, tuple(x.shape), alphas, weights, ibs, precision, _layout(x))

    with padded.lock:
        return padded.cached("graphed_ig", (tuple(x.shape), n_steps, integration, ibs, precision), capture)


def _ig(model, x, target, loaded, *, n_steps, internal_batch_size, baseline, integration, progress=None):
    if n_steps < 1:
        raise InputError(f"n_steps must be ≥ 1, got {n_steps}.")
    b = _baseline(baseline, x, loaded).contiguous(memory_format=_layout(x))
    if b.shape[0] != 1:
        raise InputError("Integrated Gradients takes one baseline image.")
    ibs = internal_batch_size or default_internal_batch_size(x.device, n_steps, x.shape[-2:])
    if isinstance(model, GraphedIG):
        steps = Steps(progress, 1)  # one replay
        attr, target, fx, fb, total = model(x, b, target)
    else:
        steps = Steps(progress, 1 + math.ceil(n_steps / ibs))  # Captum: one forward-backward per chunk
        forward = steps.counted(model)
        # One batched forward gives the top-1 target and both ends of the path: Captum's convergence
        # delta (Σ attributions − (f(x) − f(baseline))) without its two extra forwards.
        logits = _logits(forward, torch.cat([x, b]))
        target = int(logits[0].argmax()) if target is None else target
        attr = IntegratedGradients(forward).attribute(
            x, baselines=b, target=target, n_steps=n_steps, method=integration, internal_batch_size=ibs
        )
        fx, fb, total = float(logits[0, target]), float(logits[1, target]), float(attr.double().sum())
    steps.finish()
    delta = total - (fx - fb)
    used = {
        "n_steps": n_steps,
        "internal_batch_size": ibs,
        "integration": integration,
        "baseline": _baseline_name(baseline),
    }
    return attr, target, delta, fx, fb, used


def _saliency(model, x, target, loaded, *, abs, progress=None):
    steps = Steps(progress, 1 + (target is None))
    forward = steps.counted(model)
    target = _top1_unless(target, forward, x)
    attr = Saliency(forward).attribute(x.clone().requires_grad_(), target=target, abs=abs)
    steps.finish()
    return attr, target, None, None, None, {"abs": abs}


def _smoothgrad(model, x, target, loaded, *, nt_samples, nt_samples_batch_size, noise_level, abs, seed, progress=None):
    nbs = nt_samples_batch_size or default_internal_batch_size(x.device, nt_samples, x.shape[-2:])
    # NoiseTunnel: one forward-backward per batch of nt_samples_batch_size noisy copies
    steps = Steps(progress, (target is None) + math.ceil(nt_samples / min(nt_samples, nbs)))
    forward = steps.counted(model)
    target = _top1_unless(target, forward, x)
    sigma = float(noise_level) * float(x.max() - x.min())
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        attr = NoiseTunnel(Saliency(forward)).attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=nt_samples,
            nt_samples_batch_size=nbs,
            stdevs=sigma,
            target=target,
            abs=abs,
        )
    steps.finish()
    used = {
        "nt_samples": nt_samples,
        "nt_samples_batch_size": nbs,
        "noise_level": noise_level,
        "stdevs": sigma,
        "abs": abs,
        "seed": seed,
    }
    return attr, target, None, None, None, used


def _gradshap(model, x, target, loaded, *, n_samples, internal_batch_size, baseline, stdevs, seed, progress=None):
    if n_samples < 1:
        raise InputError(f"n_samples must be ≥ 1, got {n_samples}.")
    kinds = list(baseline) if isinstance(baseline, (list, tuple)) else [baseline]
    dist = torch.cat([_baseline(k, x, loaded) for k in kinds]).contiguous(memory_format=_layout(x))
    # Captum's GradientShap runs all samples in one batch; the estimate is their mean, so running it
    # in chunks (one call per chunk, one RNG stream) and weighting each chunk by its size is the same.
    ibs = internal_batch_size or default_internal_batch_size(x.device, n_samples, x.shape[-2:])
    steps = Steps(progress, 1 + math.ceil(n_samples / ibs))  # f(x), then the chunks (counted here)
    logits = _logits(model, x)  # f(x), reported with the attribution
    target = int(logits[0].argmax()) if target is None else target
    steps.advance()
    total, deltas, done = None, [], 0
    # Captum draws GradientShap's baselines and path points from numpy's global RNG: seed it too (and
    # restore it after), or `seed` would not make the result reproducible.
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            np.random.seed(seed)
            while done < n_samples:
                k = min(ibs, n_samples - done)
                attr, delta = GradientShap(model).attribute(
                    x, baselines=dist, n_samples=k, stdevs=stdevs, target=target, return_convergence_delta=True
                )
                total = attr * k if total is None else total + attr * k
                deltas.append(delta)
                done += k
                steps.advance()
    finally:
        np.random.set_state(numpy_state)
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
        raise InputError(f"Occlusion {name} must be a positive int or an (h, w) pair, got {value!r}.")
    return pair


def _occlusion_geometry(h: int, w: int, window, stride) -> tuple[tuple[int, int], tuple[int, int]]:
    """Default: windows a quarter of the image high and wide, moved by an eighth: a 7×7 grid of 49
    forwards at any size (H and W are multiples of 32, so every pixel is covered)."""
    stride = (h // 8, w // 8) if stride is None else _pair(stride, "stride")
    window = (2 * stride[0], 2 * stride[1]) if window is None else _pair(window, "window")
    if window[0] > h or window[1] > w:
        raise InputError(f"The occlusion window {window} is larger than the {h}×{w} input.")
    return window, stride


def _occlusion(model, x, target, loaded, *, window, stride, baseline, perturbations_per_eval, progress=None):
    window, stride = _occlusion_geometry(x.shape[-2], x.shape[-1], window, stride)
    b = _baseline(baseline, x, loaded)
    n = ((x.shape[-2] - window[0]) // stride[0] + 1) * ((x.shape[-1] - window[1]) // stride[1] + 1)
    ppe = perturbations_per_eval or default_internal_batch_size(x.device, n, x.shape[-2:])
    # Captum: one forward of the unoccluded input, then one per perturbations_per_eval windows
    steps = Steps(progress, (target is None) + 1 + math.ceil(n / ppe))
    forward = steps.counted(model)
    target = _top1_unless(target, forward, x)
    with torch.no_grad():
        attr = Occlusion(forward).attribute(
            x,
            sliding_window_shapes=(3, *window),
            strides=(3, *stride),
            baselines=b,
            target=target,
            perturbations_per_eval=ppe,
        )
    steps.finish()
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

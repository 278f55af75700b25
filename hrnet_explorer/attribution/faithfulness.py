"""Faithfulness of an attribution without ground truth: deletion and insertion curves, and for the per-stream
methods, whether stream shares and stream knockouts rank the streams alike.

**Deletion / insertion** (Petsiuk et al., RISE, 2018). Order the pixels by the map, most relevant first (ties
in a seeded random order). *Deletion*: replace the first ``n_k`` pixels (all channels) by a baseline image;
*insertion*: start from the baseline image and put the first ``n_k`` pixels of the input back;
``n_k = round(k · H·W / steps)`` for ``k = 0 … steps``. Track the target's softmax probability. All the
images of both curves go through the model in one batched forward (``2 · steps`` images: the input and the
baseline are shared by the two curves), on the private BatchNorm-folded copy, never the caller's model.

- ``*_auc_raw``: the area under the probability curve over the fraction of pixels perturbed (0 … 1,
  trapezoids). Deletion: lower is better; insertion: higher is better.
- ``*_auc`` — **normalised so that methods and images compare**: the curve is divided by the target's
  probability on the unperturbed input, p(x), so every deletion curve starts at 1 and every insertion curve
  ends at 1 whatever the image and the model's confidence; the AUC is then the share of the model's
  confidence left, on average over the fractions. On one image all methods share both ends (the input and the
  baseline image, p(b)/p(x)), so their AUCs differ only by the order of the pixels. Curves can pass 1 where
  a perturbed image scores higher than the input. (Rescaling to both ends, (p − p(b)) / (p(x) − p(b)), was
  tried and dropped: where the baseline keeps much of the class, say p(b) = 0.7, it multiplies noise by 3
  and more, and a lab benchmark's means moved by whole units.)

A random map (:func:`random_map`) is the reference: a method whose AUCs are no better than a random map's
orders pixels no better than chance.

**Stream agreement**: :func:`stream_shares` (Layer IG at the stage-4 outputs) and stream knockouts
(:func:`resolution_reliance`) answer "which resolution matters" in two unrelated ways; their Spearman rank
correlation over the final streams says whether they agree.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..copies import PrivateCopy, private_copy
from ..errors import ArgumentError, InputError, NumericError
from ..graphs import GraphedForward
from ..images import ImageInput
from ..progress import Progress, Steps
from ..zoo import LoadedModel
from ._core import (
    _baseline,
    _baseline_name,
    _check_target,
    _names_field,
    _prepare,
    _TargetLabel,
    default_internal_batch_size,
)
from .knockouts import resolution_reliance
from .pixels import PixelAttribution
from .streams import stream_shares

__all__ = [
    "PERTURBATION_BASELINES",
    "PerturbationCurve",
    "Faithfulness",
    "StreamAgreement",
    "curve_batches",
    "deletion_insertion",
    "random_map",
    "spearman",
    "stream_agreement",
]

PERTURBATION_BASELINES = ("blur", "zeros", "mean", "black", "white")
DEFAULT_STEPS = 20


@dataclass(frozen=True)
class PerturbationCurve:
    """One deletion or insertion curve: the target's probability as pixels are removed or put back."""

    kind: str  # "deletion" or "insertion"
    fractions: torch.Tensor  # [steps + 1] float64: share of the pixels removed (deletion) or inserted, 0 … 1
    probabilities: torch.Tensor  # [steps + 1] float64: softmax probability of the target
    normalised: torch.Tensor  # [steps + 1]: probabilities / p(input)
    auc_raw: float  # ∫ probability d(fraction) over 0 … 1 (trapezoids)
    auc: float  # ∫ normalised d(fraction) = auc_raw / p(input)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "auc": self.auc,
            "auc_raw": self.auc_raw,
            "fractions": self.fractions.tolist(),
            "probabilities": self.probabilities.tolist(),
        }


@dataclass(frozen=True)
class Faithfulness(_TargetLabel):
    """Deletion and insertion curves of one map for one image and target."""

    method: str  # the map's method ("ig", ..., "random", or what the caller said)
    target: int
    baseline: str | float  # what removed pixels become
    steps: int
    deletion: PerturbationCurve
    insertion: PerturbationCurve
    probability: float  # p(target | input)
    baseline_probability: float  # p(target | baseline image): both curves' other end
    seed: int  # of the random order among pixels the map ties
    seconds: float  # the batched forward and the curves (not the attribution)
    class_names: tuple[str, ...] = _names_field()

    @property
    def deletion_auc(self) -> float:
        """Normalised deletion AUC (lower is better)."""
        return self.deletion.auc

    @property
    def insertion_auc(self) -> float:
        """Normalised insertion AUC (higher is better)."""
        return self.insertion.auc

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "target": self.target,
            "label": self.label,
            "deletion_auc": self.deletion.auc,
            "insertion_auc": self.insertion.auc,
            "deletion_auc_raw": self.deletion.auc_raw,
            "insertion_auc_raw": self.insertion.auc_raw,
            "probability": self.probability,
            "baseline_probability": self.baseline_probability,
            "baseline": self.baseline,
            "steps": self.steps,
            "seed": self.seed,
            "normalisation": "p / p(input); AUC over the fraction of pixels perturbed, 0..1",
            "deletion": self.deletion.to_dict(),
            "insertion": self.insertion.to_dict(),
            "seconds": self.seconds,
        }


def _check_heatmap(heatmap, hw: tuple[int, int]) -> torch.Tensor:
    heat = torch.as_tensor(heatmap).detach()
    if heat.dim() != 2:
        raise InputError(f"The map must be a 2-D [H, W] heatmap, got shape {tuple(heat.shape)}.")
    if tuple(heat.shape) != tuple(hw):
        raise InputError(
            f"The map is {heat.shape[0]}×{heat.shape[1]} but the model's input is {hw[0]}×{hw[1]}: "
            "attribute and score at the same input size."
        )
    heat = heat.cpu() if heat.is_floating_point() else heat.cpu().float()
    if not bool(torch.isfinite(heat).all()):
        raise InputError("The map holds NaN or infinite values: there is no order to delete pixels in.")
    return heat


def _check_steps(steps: int, pixels: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise ArgumentError(f"steps must be an int, got {type(steps).__name__}.")
    if not 1 <= steps <= pixels:
        raise InputError(f"steps must be in 1..{pixels} (the number of pixels), got {steps}.")
    return steps


def curve_batches(x: torch.Tensor, steps: int, batch_size: int | None = None) -> int:
    """How many forwards :func:`deletion_insertion` runs for the ``2 · steps`` images of its curves on input
    ``x`` (its progress' total)."""
    hw = (x.shape[-2], x.shape[-1])
    images = 2 * _check_steps(steps, hw[0] * hw[1])
    return math.ceil(images / (batch_size or default_internal_batch_size(x.device, images, hw)))


def _perturbation_order(heatmap, seed: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
    """Flat pixel indices, most relevant first (descending signed value); ties in a seeded random order (the
    same on every device). Sorted on ``device`` (default: the map's)."""
    flat = torch.as_tensor(heatmap).detach().flatten()
    flat = flat.to(device) if device is not None else flat
    perm = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(seed)).to(flat.device)
    return perm[torch.argsort(flat[perm], descending=True, stable=True)]


def random_map(hw: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """A uniform random [H, W] map: the order a map that knows nothing would give (the reference row)."""
    return torch.rand(tuple(hw), generator=torch.Generator().manual_seed(seed))


def _perturbation_baseline(baseline, x: torch.Tensor, loaded: LoadedModel) -> torch.Tensor:
    if isinstance(baseline, str) and baseline not in PERTURBATION_BASELINES:
        raise InputError(
            f"Unknown baseline {baseline!r}; use one of {', '.join(PERTURBATION_BASELINES)}, a number or a tensor."
        )
    if baseline == "mean":  # the image's own per-channel mean
        return x.mean((-2, -1), keepdim=True).expand_as(x).clone()
    return _baseline(baseline, x, loaded)


def _graphed(folded: PrivateCopy, shape: torch.Size) -> GraphedForward:
    """The folded copy's forward for ``shape`` as a CUDA graph, captured on first use and kept in the copy's
    ``derived`` (the last four; the caller holds its lock). A capture keeps the TF32 settings it was made under:
    they are keyed."""
    key = (tuple(shape), torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    return folded.cached("deletion_insertion", key, lambda: GraphedForward(folded.net, tuple(shape)))


def _curve(kind: str, fractions: torch.Tensor, p: torch.Tensor, p_x: float) -> PerturbationCurve:
    normalised = p / p_x
    auc_raw = float(torch.trapezoid(p, fractions))
    return PerturbationCurve(kind, fractions, p, normalised, auc_raw, float(torch.trapezoid(normalised, fractions)))


def deletion_insertion(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    heatmap: torch.Tensor | PixelAttribution,
    target: int | None = None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: str | float | torch.Tensor = "blur",
    method: str | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    input_size: int | None = None,
    graphs: bool | None = None,
    progress: Progress | None = None,
) -> Faithfulness:
    """Deletion and insertion curves of ``heatmap`` (an [H, W] map at the model's input size, or a
    :class:`PixelAttribution`, whose target and method are then used) for the ``target`` class (default: the
    attribution's, else the top-1).

    ``baseline``: what removed pixels become — ``"blur"`` (default: a Gaussian blur of the input, σ = max(H,
    W)/16 px, as for the attribution baselines), ``"zeros"`` (the dataset-mean image), ``"mean"`` (the image's
    own per-channel mean), ``"black"``, ``"white"``, a number or a tensor. ``batch_size``: images per forward
    (default: all ``2 · steps`` at once on CUDA; chunks of 8 at 224 px on a CPU, as fast and lighter).
    ``graphs`` (default: on CUDA): replay each forward from a CUDA graph of the folded copy, captured once per
    batch shape (:class:`~hrnet_explorer.graphs.GraphedForward`; same copy, same kernels, same curves).
    ``progress(done, total)``, if given, is called as each forward completes (:func:`curve_batches` of them).
    """
    if isinstance(heatmap, PixelAttribution):
        method = method or heatmap.method
        target = heatmap.target if target is None else target
        heatmap = heatmap.heatmap
    net, _, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    graphs = x.device.type == "cuda" if graphs is None else graphs
    if graphs and x.device.type != "cuda":
        raise InputError(f"CUDA graphs need a CUDA device; this model is on {x.device}. Pass graphs=False.")
    hw = (x.shape[-2], x.shape[-1])
    heat = _check_heatmap(heatmap, hw)
    pixels = hw[0] * hw[1]
    steps = _check_steps(steps, pixels)
    start = time.perf_counter()
    base = _perturbation_baseline(baseline, x, loaded)
    # rank[p]: the position of pixel p in the order; image k perturbs the pixels of rank < n_k.
    rank = torch.empty(pixels, dtype=torch.long, device=x.device)
    rank[_perturbation_order(heat, seed, x.device)] = torch.arange(pixels, device=x.device)
    rank = rank.view(1, 1, *hw)
    counts = (torch.arange(steps + 1, dtype=torch.long) * pixels * 2 + steps) // (2 * steps)  # round(k·N/steps)
    inner = (rank < counts[1:-1].view(-1, 1, 1, 1).to(x.device)) if steps > 1 else rank.new_zeros((0, 1, *hw)).bool()
    deleted = torch.where(inner, base, x)
    inserted = torch.where(inner, x, base)
    batch = torch.cat([x, base, deleted, inserted])  # 2·steps images
    folded = private_copy(net, "folded")
    batch = batch.contiguous(memory_format=torch.channels_last)
    chunk = batch_size or default_internal_batch_size(x.device, batch.shape[0], hw)
    parts = batch.split(chunk)
    counter = Steps(progress, len(parts))
    outputs = []
    with folded.lock, torch.inference_mode():
        for part in parts:
            outputs.append(_graphed(folded, part.shape)(part) if graphs else folded.net(part).float())
            counter.advance()
        logits = torch.cat(outputs)
    target = int(logits[0].argmax()) if target is None else target
    p = logits.double().softmax(-1)[:, target].cpu()
    p_x, p_b = float(p[0]), float(p[1])
    if not p_x > 0:
        raise NumericError(
            f"p(target {target} | input) underflows to 0 (logit {float(logits[0, target]):.1f} against the top "
            f"{float(logits[0].max()):.1f}): no curve can be normalised by it; explain a likelier class."
        )
    fractions = counts.double() / pixels
    n = steps - 1
    deletion = torch.cat([p[:1], p[2 : 2 + n], p[1:2]])
    insertion = torch.cat([p[1:2], p[2 + n :], p[:1]])
    return Faithfulness(
        method=method or "map",
        target=target,
        baseline=_baseline_name(baseline),
        steps=steps,
        deletion=_curve("deletion", fractions, deletion, p_x),
        insertion=_curve("insertion", fractions, insertion, p_x),
        probability=p_x,
        baseline_probability=p_b,
        seed=seed,
        seconds=time.perf_counter() - start,
        class_names=loaded.class_names,
    )


# --------------------------------------------------------------------------------------------------
# Rank correlation
# --------------------------------------------------------------------------------------------------


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 0 … n−1 of a 1-D tensor, tied values sharing their average rank."""
    order = torch.argsort(values, stable=True)
    _, inverse, counts = torch.unique_consecutive(values[order], return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    average = ends - (counts.double() + 1) / 2  # the mean of ranks ends−counts … ends−1
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = average[inverse]
    return ranks


def spearman(a, b) -> float | None:
    """Spearman's rank correlation of two equally long sets of values (ties share their average rank);
    None when either is constant (no order to compare)."""
    a = torch.as_tensor(a).detach().double().cpu().flatten()
    b = torch.as_tensor(b).detach().double().cpu().flatten()
    if a.shape != b.shape or a.numel() < 2:
        raise InputError(f"spearman() needs two sets of ≥ 2 values of one size, got {a.numel()} and {b.numel()}.")
    if not bool(torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise InputError("spearman() got NaN or infinite values.")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / norm if norm > 0 else None


# --------------------------------------------------------------------------------------------------
# Per-stream agreement
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamAgreement(_TargetLabel):
    """Do stream shares (Layer IG) and stream knockouts rank the final streams alike?"""

    target: int
    fractions: tuple[float, ...]  # each final stream's share of the logit change (StreamShares.fractions)
    knockout_drops: tuple[float, ...]  # logit before − after knocking stream k out everywhere
    spearman: float | None  # rank correlation of the two; None when one of them is constant
    same_top: bool  # do both name the same most important stream?
    self_edge: bool  # knockouts also cut each stream's own path
    n_steps: int
    class_names: tuple[str, ...] = _names_field()

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "label": self.label,
            "spearman": self.spearman,
            "same_top": self.same_top,
            "fractions": list(self.fractions),
            "knockout_drops": list(self.knockout_drops),
            "self_edge": self.self_edge,
            "n_steps": self.n_steps,
        }


def stream_agreement(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    target: int | None = None,
    *,
    n_steps: int = 32,
    self_edge: bool = True,
    input_size: int | None = None,
) -> StreamAgreement:
    """Rank agreement between each final stream's share of the logit (:func:`stream_shares`) and the logit
    it costs to knock that stream out everywhere (:func:`resolution_reliance`; ``self_edge=True``: its own
    path too, so nothing of it reaches the head)."""
    net, _, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    shares = stream_shares(loaded, x, target, n_steps=n_steps)
    knocked = resolution_reliance(loaded, x, shares.target, self_edge=self_edge)
    fractions = shares.fractions.double()
    drops = torch.tensor([-k.logit_delta for k in knocked], dtype=torch.float64)
    return StreamAgreement(
        target=shares.target,
        fractions=tuple(fractions.tolist()),
        knockout_drops=tuple(drops.tolist()),
        spearman=spearman(fractions, drops),
        same_top=int(fractions.argmax()) == int(drops.argmax()),
        self_edge=self_edge,
        n_steps=n_steps,
        class_names=loaded.class_names,
    )

"""Explain a pixel, a region or a class of a dense HRNet: exactly (the head split) or through Captum.

A *region* is a set of pixels of the input (:class:`Region`: one pixel, a box, or any boolean mask; or every pixel
the model labels with a class, :func:`class_region`). A region's *score* for class c is the sum of c's class scores
(logits) over its pixels — one number, so every attribution method for one output applies:

- :func:`region_split` — exact: the head split (:mod:`.split`) of the region's score into one part per stream and
  a bias part; the parts sum to the score (the error is reported).
- :func:`region_stream_shares` — Captum's IntegratedGradients over the four streams at the head's input (layer IG
  at the stage-4 output), with its completeness error; :func:`region_gradcam` — Captum's LayerGradCam on the last
  HighResolutionModule's four fused streams.
- :func:`region_pixels` — Captum's IntegratedGradients (with its completeness error) or Saliency on the input, and
  the share of the map's mass inside the region.
Knockouts (no Captum) are in :mod:`.knockouts`; regions and classes in :mod:`.regions`.

The backbone runs as the hook engine's private exact copy (:mod:`hrnet_explorer.copies`): the caller's model is
never hooked. Everything runs in fp32 on the model's device; results are CPU float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency

from ..anatomy import module_refs, resolve_module
from ..attribution._core import _baseline, _require_grad, default_internal_batch_size
from ..attribution.groundtruth import mass_in_mask
from ..errors import InputError
from ..images import ImageInput
from ..zoo import LoadedModel
from .analyses import head_split
from .model import to_input
from .regions import Region, prepare, region_target
from .trace import dense_trace

__all__ = [
    "PIXEL_METHODS",
    "RegionPixels",
    "RegionSplit",
    "RegionStreamGradCAM",
    "RegionStreamShares",
    "region_gradcam",
    "region_pixels",
    "region_split",
    "region_stream_shares",
]

PIXEL_METHODS = ("ig", "saliency")


# ------------------------------------------------------------------------------------------------ exact


@dataclass(frozen=True)
class RegionSplit:
    """The region's score for ``target`` (Σ over its pixels of the class score) split exactly: one part per stream,
    then the bias part (:mod:`hrnet_explorer.dense.split`)."""

    target: int
    label: str
    region: str
    score: float  # the model's own Σ over the region of the class score
    parts: torch.Tensor  # [K + 1]: streams 0..K-1, then the bias; Σ parts = score up to ``error``
    error: float  # |Σ parts − score| / max(|score|, 1e-12)
    presum_error: float  # the head split's own reconstruction error of the pre-activation (all pixels)
    maps: torch.Tensor  # [K + 1, H, W]: every pixel's part of its class score (upsampled exactly, linear)
    relu_share: torch.Tensor  # [K + 1, H, W]: each stream's ReLU share of the head's activation, per pixel

    @property
    def fractions(self) -> torch.Tensor:
        """The parts of the streams alone as fractions of their sum (the bias left out; can be negative)."""
        streams = self.parts[:-1]
        return streams / streams.sum()

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "label": self.label,
            "region": self.region,
            "score": self.score,
            "parts": self.parts.tolist(),
            "stream_fractions": self.fractions.tolist(),
            "error": self.error,
            "presum_error": self.presum_error,
        }


def region_split(
    loaded: LoadedModel, inputs: torch.Tensor | ImageInput, region: Region, cls: int | str | None = None
) -> RegionSplit:
    """The exact per-stream split of ``region``'s score for ``cls`` (default: the class most of it is labelled)."""
    net, run, x = prepare(loaded, inputs)
    target, mask = region_target(loaded, net, run, x, region, cls)
    tr = dense_trace(net, x)
    split = head_split(net, tr)
    size = tuple(x.shape[-2:])
    maps = to_input(split.class_parts(target), size)[0]
    parts = (maps.double() * mask).sum((1, 2))
    score = float((tr.logits[0, target].double() * mask).sum())
    return RegionSplit(
        target=target,
        label=loaded.class_names[target],
        region=region.description,
        score=score,
        parts=parts.float().cpu(),
        error=abs(float(parts.sum()) - score) / max(abs(score), 1e-12),
        presum_error=split.presum_error,
        maps=maps.float().cpu(),
        relu_share=to_input(split.relu_share, size)[0].float().cpu(),
    )


# ----------------------------------------------------------------------------------------------- Captum


def _region_score(scores: torch.Tensor, mask: torch.Tensor, target: int) -> torch.Tensor:
    """[B]: the sum of class ``target``'s scores over the region."""
    return (scores[:, target] * mask).sum((-2, -1))


@dataclass(frozen=True)
class RegionStreamShares:
    """Each final stream's share of the region's score (Captum's IntegratedGradients over the four streams at the
    head's input, i.e. layer IG at the stage-4 output); completeness: Σ shares = score − baseline score + delta."""

    target: int
    label: str
    region: str
    shares: torch.Tensor  # [K]
    score: float
    baseline_score: float
    delta: float
    n_steps: int

    @property
    def relative_delta(self) -> float:
        return abs(self.delta) / max(abs(self.score - self.baseline_score), 1e-12)

    @property
    def fractions(self) -> torch.Tensor:
        return self.shares / (self.score - self.baseline_score)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "label": self.label,
            "region": self.region,
            "shares": self.shares.tolist(),
            "fractions": self.fractions.tolist(),
            "score": self.score,
            "baseline_score": self.baseline_score,
            "delta": self.delta,
            "relative_delta": self.relative_delta,
            "n_steps": self.n_steps,
        }


def region_stream_shares(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    region: Region,
    cls: int | str | None = None,
    *,
    n_steps: int = 32,
    baseline: str = "zeros",
) -> RegionStreamShares:
    """Layer IG of ``region``'s score over the four streams: the body runs once on the input and once on the
    baseline image; IG integrates the head's gradient between the two sets of streams."""
    _require_grad("region_stream_shares()")
    if n_steps < 1:
        raise InputError(f"n_steps must be ≥ 1, got {n_steps}.")
    net, run, x = prepare(loaded, inputs)
    target, mask = region_target(loaded, net, run, x, region, cls)
    size = tuple(x.shape[-2:])
    b = _baseline(baseline, x, loaded)

    def score(*streams: torch.Tensor) -> torch.Tensor:
        return _region_score(to_input(net.head(list(streams)), size), mask, target)

    with torch.no_grad(), run.lock:
        streams = run.net(torch.cat([x, b]))
        ends = score(*streams)
    s_x = tuple(s[:1].contiguous() for s in streams)
    s_b = tuple(s[1:].contiguous() for s in streams)
    ibs = default_internal_batch_size(x.device, n_steps, (size[0] // 4, size[1] // 4))
    attrs = IntegratedGradients(score).attribute(
        s_x, baselines=s_b, n_steps=n_steps, method="gausslegendre", internal_batch_size=ibs
    )
    sums = torch.stack([a.double().sum() for a in attrs])
    fx, fb = float(ends[0]), float(ends[1])
    return RegionStreamShares(
        target, loaded.class_names[target], region.description, sums.float().cpu(), fx, fb,
        float(sums.sum()) - (fx - fb), n_steps,
    )  # fmt: skip


@dataclass(frozen=True)
class RegionStreamGradCAM:
    """Grad-CAM of the region's score on each fused stream of the last HighResolutionModule (not normalised: the
    magnitudes compare across streams)."""

    target: int
    label: str
    region: str
    maps: list[torch.Tensor]  # per stream, [H, W] at the input's resolution (bilinear), ReLU'd
    raw: list[torch.Tensor]  # per stream at its own resolution

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "label": self.label,
            "region": self.region,
            "streams": [
                {"stream": k, "resolution": list(r.shape), "max": float(r.max())} for k, r in enumerate(self.raw)
            ],
        }


def region_gradcam(
    loaded: LoadedModel, inputs: torch.Tensor | ImageInput, region: Region, cls: int | str | None = None
) -> RegionStreamGradCAM:
    """Captum's LayerGradCam of ``region``'s score on the four fused streams of stage 4's last module (the
    HighResolutionModule itself is hooked: one call per forward returns every stream, never the shared ReLU)."""
    _require_grad("region_gradcam()")
    net, run, x = prepare(loaded, inputs)
    target, mask = region_target(loaded, net, run, x, region, cls)
    size = tuple(x.shape[-2:])
    ref = resolve_module(module_refs(run.net), 4, -1)
    layer = getattr(run.net, f"stage{ref.stage}")[ref.index]

    def score(inp: torch.Tensor) -> torch.Tensor:
        return _region_score(to_input(net.head(run.net(inp)), size), mask, target)

    with run.lock:
        cams = LayerGradCam(score, layer).attribute(x, relu_attributions=True)
    cams = cams if isinstance(cams, (tuple, list)) else (cams,)
    maps = [LayerAttribution.interpolate(c.detach(), size, interpolate_mode="bilinear")[0, 0].cpu() for c in cams]
    return RegionStreamGradCAM(
        target, loaded.class_names[target], region.description, maps, [c.detach()[0, 0].cpu() for c in cams]
    )


@dataclass(frozen=True)
class RegionPixels:
    """A pixel attribution of the region's score: Captum's raw attribution, its heatmap, the heatmap's mass inside
    the region (compare with the region's area fraction) and, for IG, the completeness error."""

    target: int
    label: str
    region: str
    method: str
    attributions: torch.Tensor  # [3, H, W]
    heatmap: torch.Tensor  # [H, W]: IG summed over channels (signed); Saliency's max |gradient| over channels
    mass_in_region: float  # share of |heatmap| inside the region
    area_fraction: float
    delta: float | None  # IG: Σ attributions − (score − baseline score); None for Saliency

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "label": self.label,
            "region": self.region,
            "method": self.method,
            "mass_in_region": self.mass_in_region,
            "area_fraction": self.area_fraction,
            "delta": self.delta,
        }


def region_pixels(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    region: Region,
    cls: int | str | None = None,
    *,
    method: str = "ig",
    n_steps: int = 32,
    baseline: str = "zeros",
) -> RegionPixels:
    """A pixel attribution (``method``: "ig" or "saliency") of ``region``'s score for ``cls``."""
    _require_grad("region_pixels()")
    if method not in PIXEL_METHODS:
        raise InputError(f"Unknown pixel method {method!r} for a region; choose one of {', '.join(PIXEL_METHODS)}.")
    net, run, x = prepare(loaded, inputs)
    target, mask = region_target(loaded, net, run, x, region, cls)
    size = tuple(x.shape[-2:])

    def score(inp: torch.Tensor) -> torch.Tensor:
        return _region_score(to_input(net.head(run.net(inp)), size), mask, target)

    delta = None
    with run.lock:
        if method == "ig":
            ibs = default_internal_batch_size(x.device, n_steps, size)
            attr, d = IntegratedGradients(score).attribute(
                x, baselines=_baseline(baseline, x, loaded), n_steps=n_steps, method="gausslegendre",
                internal_batch_size=ibs, return_convergence_delta=True,
            )  # fmt: skip
            delta, heat = float(d[0]), attr[0].sum(0)
        else:
            attr = Saliency(score).attribute(x.requires_grad_(), abs=True)
            heat = attr[0].amax(0)
    heat = heat.detach().float().cpu()
    whole = bool(region.mask.all())
    return RegionPixels(
        target=target,
        label=loaded.class_names[target],
        region=region.description,
        method=method,
        attributions=attr.detach()[0].float().cpu(),
        heatmap=heat,
        mass_in_region=1.0 if whole else mass_in_mask(heat, region.mask),
        area_fraction=float(region.mask.double().mean()),
        delta=delta,
    )

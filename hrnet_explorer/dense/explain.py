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
- :func:`dense_knockout` — a stream removed at the head's input or from every fuse edge, or one fuse edge: how the
  predicted mask changes (pixels changed, per-class IoU against the unchanged prediction and against a reference
  label map, boundary F).

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
from ..copies import PrivateCopy, private_copy
from ..errors import ArgumentError, InputError, NotFoundError, OutOfRangeError
from ..hooks import hooks_installed, knockout_hooks, stream_edges
from ..images import ImageInput, to_batch
from ..zoo import LoadedModel
from .analyses import head_split
from .metrics import SegmentationScores, score_labels
from .model import DenseHRNet, check_dense_input, to_input
from .trace import dense_of, dense_trace

__all__ = [
    "DenseKnockout",
    "Region",
    "RegionPixels",
    "RegionSplit",
    "RegionStreamGradCAM",
    "RegionStreamShares",
    "class_region",
    "dense_knockout",
    "knocked_out_scores",
    "knockout_table",
    "region_gradcam",
    "region_pixels",
    "region_split",
    "region_stream_shares",
    "resolve_class",
]

PIXEL_METHODS = ("ig", "saliency")


@dataclass(frozen=True)
class Region:
    """Pixels of an input of ``size`` (H, W): ``mask`` [H, W] bool, never empty; ``description`` says which."""

    mask: torch.Tensor
    description: str

    @staticmethod
    def pixel(y: int, x: int, size: tuple[int, int]) -> Region:
        return Region.box(y, x, y + 1, x + 1, size, f"pixel (y={y}, x={x})")

    @staticmethod
    def box(y0: int, x0: int, y1: int, x1: int, size: tuple[int, int], description: str | None = None) -> Region:
        """Rows y0..y1-1 and columns x0..x1-1 (a box wholly inside the image)."""
        h, w = size
        if not (0 <= y0 < h and 0 <= x0 < w and 0 < y1 <= h and 0 < x1 <= w):
            raise OutOfRangeError(
                f"The region (y {y0}..{y1 - 1}, x {x0}..{x1 - 1}) lies outside the {h}×{w} input "
                f"(y in 0..{h - 1}, x in 0..{w - 1})."
            )
        if y1 <= y0 or x1 <= x0:
            raise InputError(f"The region (y {y0}..{y1 - 1}, x {x0}..{x1 - 1}) is empty: it needs y1 > y0, x1 > x0.")
        mask = torch.zeros(h, w, dtype=torch.bool)
        mask[y0:y1, x0:x1] = True
        return Region(mask, description or f"box y {y0}..{y1 - 1}, x {x0}..{x1 - 1}")

    @staticmethod
    def of_mask(mask, size: tuple[int, int], description: str = "mask") -> Region:
        m = torch.as_tensor(mask)
        if m.dtype != torch.bool:
            raise InputError(f"A region mask must be boolean, got {m.dtype}.")
        if tuple(m.shape) != tuple(size):
            raise InputError(f"A region mask must have the input's size {size[0]}×{size[1]}, got {tuple(m.shape)}.")
        if not bool(m.any()):
            raise InputError("The region mask is empty: no pixel to explain.")
        return Region(m.cpu(), description)


def resolve_class(loaded: LoadedModel, cls: int | str) -> int:
    """A class index of the model's card from an index or a name; a NotFoundError listing the classes otherwise."""
    names = loaded.class_names
    if isinstance(cls, str):
        if cls in names:
            return names.index(cls)
    elif not isinstance(cls, bool) and isinstance(cls, int) and 0 <= cls < len(names):
        return cls
    raise NotFoundError(f"No class {cls!r} in {loaded.name}: its classes are 0..{len(names) - 1}: {', '.join(names)}.")


def _prepare(loaded: LoadedModel, inputs: torch.Tensor | ImageInput, input_size: int | None = None):
    """→ (the dense net, its backbone's private exact copy, a fresh fp32 1x3xHxW input on the model's device)."""
    if not isinstance(loaded, LoadedModel):
        raise ArgumentError(f"Expected a LoadedModel (e.g. load_model('lab-seg')), got {type(loaded).__name__}.")
    net = dense_of(loaded)
    if net.training:
        raise InputError("The model is in training mode (BatchNorm would update its statistics); call .eval() first.")
    x = inputs if isinstance(inputs, torch.Tensor) else to_batch(inputs, loaded.data_config, input_size)
    x = check_dense_input(x)
    if x.shape[0] != 1:
        raise InputError(f"Dense explanations take one image at a time; got a batch of {x.shape[0]}.")
    param = next(net.parameters())
    return net, private_copy(net.backbone, "exact"), x.detach().to(param.device, torch.float32).clone()


def _target(loaded, net, run, x, region: Region, cls: int | str | None) -> tuple[int, torch.Tensor]:
    """→ (the class explained: ``cls``, or the class the model gives most of the region's pixels; the mask on
    the model's device as float)."""
    if tuple(region.mask.shape) != tuple(x.shape[-2:]):
        (rh, rw), (h, w) = region.mask.shape, x.shape[-2:]
        raise InputError(f"The region is for a {rh}×{rw} input, but the input is {h}×{w}.")
    mask = region.mask.to(x.device)
    if cls is None:
        with torch.no_grad(), run.lock:
            labels = to_input(net.head(run.net(x)), tuple(x.shape[-2:])).argmax(1)[0]
        return int(torch.mode(labels[mask]).values), mask.float()
    return resolve_class(loaded, cls), mask.float()


def class_region(loaded: LoadedModel, inputs: torch.Tensor | ImageInput, cls: int | str) -> Region:
    """Every pixel the model labels ``cls``; an InputError if there is none."""
    net, run, x = _prepare(loaded, inputs)
    c = resolve_class(loaded, cls)
    with torch.no_grad(), run.lock:
        labels = to_input(net.head(run.net(x)), tuple(x.shape[-2:])).argmax(1)[0].cpu()
    if not bool((labels == c).any()):
        raise InputError(
            f"{loaded.name} labels no pixel of this image {loaded.class_names[c]!r}: no region to explain."
        )
    return Region(labels == c, f"every pixel labelled {loaded.class_names[c]!r}")


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
    net, run, x = _prepare(loaded, inputs)
    target, mask = _target(loaded, net, run, x, region, cls)
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
    net, run, x = _prepare(loaded, inputs)
    target, mask = _target(loaded, net, run, x, region, cls)
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
    net, run, x = _prepare(loaded, inputs)
    target, mask = _target(loaded, net, run, x, region, cls)
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
    net, run, x = _prepare(loaded, inputs)
    target, mask = _target(loaded, net, run, x, region, cls)
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
            attr = Saliency(score).attribute(x, abs=True)
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


# --------------------------------------------------------------------------------------------- knockouts


@dataclass(frozen=True)
class DenseKnockout:
    """What a knockout does to the predicted mask: the share of pixels whose label changed, the new labels scored
    against the unchanged prediction, and (with a reference label map) both scored against the reference."""

    description: str
    changed_fraction: float
    against_before: SegmentationScores
    labels_before: torch.Tensor  # [H, W] int64
    labels_after: torch.Tensor
    before: SegmentationScores | None = None  # the unchanged prediction against the reference
    after: SegmentationScores | None = None  # the knocked-out prediction against the reference

    def to_dict(self) -> dict:
        out = {"description": self.description, "changed_fraction": self.changed_fraction}
        out["against_before"] = self.against_before.to_dict()
        if self.before is not None:
            out["before"], out["after"] = self.before.to_dict(), self.after.to_dict()
        return out


KNOCKOUT_PLACES = ("head", "fusion", "everywhere")


def _knockout_edges(net, stream: int | None, edge: tuple[int, int] | None, at: str, stage: int | None):
    refs = module_refs(net)
    if stage is not None:
        refs = [r for r in refs if r.stage == stage]
        if not refs:
            raise InputError(f"No stage {stage!r}: HRNet's fusing stages are 2, 3 and 4.")
    if edge is not None:
        j, i = edge
        chosen = [(r, j, i) for r in refs if max(j, i) < r.num_streams]
        if not chosen:
            raise InputError(f"No edge {j}→{i}: streams are 0..{max(r.num_streams for r in refs) - 1} there.")
        return chosen
    if at == "head":
        return []
    chosen = stream_edges(refs, stream)
    if not chosen:
        raise InputError(f"No fuse edge leaves stream {stream} in stage {stage}: it has streams 0..{stage - 1}.")
    return chosen


def knocked_out_scores(
    net: DenseHRNet,
    run: PrivateCopy,
    x: torch.Tensor,
    *,
    stream: int | None = None,
    edge: tuple[int, int] | None = None,
    at: str = "head",
    stage: int | None = None,
) -> tuple[torch.Tensor, str]:
    """The class scores [B, classes, H, W] of a batch ``x`` with a knockout (see :func:`dense_knockout`), and what
    was knocked out, in words. ``run``: the backbone's private copy (its lock is taken here)."""
    if (stream is None) == (edge is None):
        raise InputError("Knock out a stream or an edge (one of them).")
    if at not in KNOCKOUT_PLACES:
        raise InputError(f"at must be one of {', '.join(KNOCKOUT_PLACES)}, not {at!r}.")
    k = len(net.head.channels)
    if stream is not None and (isinstance(stream, bool) or not isinstance(stream, int) or not 0 <= stream < k):
        raise InputError(f"stream must be a stream index in 0..{k - 1}, got {stream!r}.")
    edges = _knockout_edges(run.net, stream, edge, at, stage)
    with torch.no_grad(), run.lock:
        with hooks_installed(knockout_hooks(run.net, edges)):
            streams = run.net(x)
        if stream is not None and at in ("head", "everywhere"):
            streams = [torch.zeros_like(s) if i == stream else s for i, s in enumerate(streams)]
        scores = to_input(net.head(streams), tuple(x.shape[-2:]))
    where = f" in stage {stage}" if stage is not None else " in every module"
    if edge is not None:
        what = f"edge {edge[0]}→{edge[1]} removed{where}"
    elif at == "head":
        what = f"stream {stream} removed at the head's input"
    else:
        also = " and at the head's input" if at == "everywhere" else ""
        what = f"stream {stream}'s fuse edges removed{where}{also}"
    return scores, what


def dense_knockout(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    *,
    stream: int | None = None,
    edge: tuple[int, int] | None = None,
    at: str = "head",
    stage: int | None = None,
    reference: torch.Tensor | None = None,
) -> DenseKnockout:
    """Knock out ``stream`` — ``at`` "head" (its input to the head zeroed), "fusion" (every fuse edge out of it
    into another stream zeroed, in every module or in ``stage``'s) or "everywhere" (both) — or one fuse ``edge``
    (source, target) in every module (or ``stage``'s) that has it; predict again and score the change.
    ``reference``: an [H, W] label map (the truth) to score both predictions against."""
    net, run, x = _prepare(loaded, inputs)
    size = tuple(x.shape[-2:])
    ref = None
    if reference is not None:
        ref = torch.as_tensor(reference).long().cpu()
        if tuple(ref.shape) != size:
            raise InputError(f"The reference label map must be {size[0]}×{size[1]}, got {tuple(ref.shape)}.")
    scores, what = knocked_out_scores(net, run, x, stream=stream, edge=edge, at=at, stage=stage)
    after = scores.argmax(1)[0].cpu()
    with torch.no_grad(), run.lock:
        before = to_input(net.head(run.net(x)), size).argmax(1)[0].cpu()
    names = list(loaded.class_names)
    result = {}
    if ref is not None:
        result = {"before": score_labels(before, ref, names), "after": score_labels(after, ref, names)}
    return DenseKnockout(
        description=what,
        changed_fraction=float((before != after).double().mean()),
        against_before=score_labels(after, before, names),
        labels_before=before,
        labels_after=after,
        **result,
    )


def knockout_table(
    loaded: LoadedModel, inputs: torch.Tensor | ImageInput, reference: torch.Tensor | None = None, at: str = "head"
) -> list[DenseKnockout]:
    """Each stream knocked out in turn (``at`` as in :func:`dense_knockout`)."""
    k = len(dense_of(loaded).head.channels)
    return [dense_knockout(loaded, inputs, stream=s, at=at, reference=reference) for s in range(k)]

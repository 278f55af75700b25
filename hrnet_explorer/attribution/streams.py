"""Per-stream methods: Grad-CAM on every resolution stream of a module, each final stream's share of the logit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from timm.models.hrnet import HighResolutionNet

from ..errors import InputError
from ..images import ImageInput
from ..progress import Progress, Steps
from ..zoo import LoadedModel
from ._core import (
    _baseline,
    _baseline_name,
    _check_target,
    _names_field,
    _prepare,
    _require_grad,
    _resolve_module,
    _TargetLabel,
    _top1_unless,
    default_internal_batch_size,
)

__all__ = ["StreamGradCAM", "StreamShares", "gradcam_streams", "stream_shares"]


@dataclass(frozen=True)
class StreamGradCAM(_TargetLabel):
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
    per forward), never the shared fuse ReLU; one forward and one backward give all streams. Each
    stream's map is ReLU(Σ_c mean(∂y/∂A_c) · A_c) at its own resolution, upsampled bilinearly.
    """
    _require_grad("gradcam_streams()")
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    exact = entry.net
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
class StreamShares(_TargetLabel):
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
    progress: Progress | None = None,
) -> StreamShares:
    """Layer Integrated Gradients of the ``target`` logit over the final streams (stage 4, last module).

    The body runs once on the input and once on the baseline image (``baseline``: one of
    :data:`BASELINES`); Captum's IntegratedGradients then integrates the head's gradient along the
    straight path between the two sets of stage-4 outputs. Completeness: Σ shares = f(x) −
    f(baseline) up to ``delta``. ``progress(done, total)``, if given, is called as each batch completes: the
    body's forward, then the head's ⌈n_steps / internal_batch_size⌉ forward-backward chunks.
    """
    _require_grad("stream_shares()")
    if n_steps < 1:
        raise InputError(f"n_steps must be ≥ 1, got {n_steps}.")
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    exact = entry.net
    b = _baseline(baseline, x, loaded)
    ibs = internal_batch_size or default_internal_batch_size(x.device, n_steps, x.shape[-2:])
    steps = Steps(progress, 1 + math.ceil(n_steps / ibs))

    @steps.counted
    def head(*s: torch.Tensor) -> torch.Tensor:
        return _head(exact, *s)

    with entry.lock:  # no hooks of its own, but knockouts may hook the exact copy meanwhile
        with torch.no_grad():
            streams = _body(exact, torch.cat([x, b]))
            logits = _head(exact, *streams).float()
        steps.advance()
        target = int(logits[0].argmax()) if target is None else target
        s_x = tuple(s[:1].contiguous() for s in streams)
        s_b = tuple(s[1:].contiguous() for s in streams)
        attrs = IntegratedGradients(head).attribute(
            s_x, baselines=s_b, target=target, n_steps=n_steps, method=integration, internal_batch_size=ibs
        )
    steps.finish()
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

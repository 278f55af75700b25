"""Capture every resolution stream and every fusion edge of a timm HRNet in one forward pass.

Names (see :func:`trace_names`) — stages 2..4, modules and streams counted from 0:

    stem · layer1 · transition{t}.stream{k}
    stage{s}.module{m}.branch{i}         stream i after its BasicBlocks, before fusion
    stage{s}.module{m}.edge{j}to{i}      what stream j sends to stream i (its fuse edge's output)
    stage{s}.module{m}.presum{i}         Σ_j edge{j}to{i}, before the shared ReLU
    stage{s}.module{m}.fused{i}          ReLU(presum i): the module's output for stream i
    head.incre{k} · head.down{k} · head.merge{k} · head.final · head.pooled · logits

The hooks, and how they avoid the pitfalls of timm's HRNet, are the hook engine's (:mod:`hrnet_explorer.hooks`);
where things are, the anatomy's (:mod:`hrnet_explorer.anatomy`). A trace always runs on a private copy of the
model (:mod:`hrnet_explorer.copies`), under that copy's lock: the caller's model is never hooked, and concurrent
traces of one model never see each other's tensors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .anatomy import ModuleRef, check_hrnet, has_head, module_refs, resolve_module, trace_names
from .copies import private_copy
from .errors import ArgumentError, InputError, NotFoundError
from .fusion import FusionStats, fusion_row, stack_fusion_stats
from .hooks import KEEPS, Keep, MapRecorder, hooks_installed, hrnet_hooks
from .images import ImageInput, check_input_tensor, to_batch
from .runtime import autocast
from .zoo import LoadedModel, WeightsSource

__all__ = ["Trace", "ModuleRef", "trace", "trace_names", "module_refs", "hooks_installed", "Keep"]

_FUSION_LOCK = threading.Lock()  # fills Trace.fusion_cache (cheap: a few small matmuls per module)


@dataclass
class Trace:
    """Everything one forward pass of an HRNet computed, addressable by name. Plain data.

    ``maps`` holds tensors (all names for keep="all"; no branch/edge/presum for keep="outputs";
    only ``logits`` for keep="summaries", which keeps ``summaries[name] = {"mean", "l2"}`` maps
    [B, H, W] instead). ``shapes`` always holds every name's shape, ``fusion`` every module's
    :class:`FusionStats` (computed during the pass unless edges are kept, then on first use).
    """

    variant: str
    input_shape: tuple[int, ...]
    keep: str
    modules: list[ModuleRef]
    shapes: dict[str, tuple[int, ...]]
    maps: dict[str, torch.Tensor]
    summaries: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    fusion_cache: dict[str, FusionStats] = field(default_factory=dict)
    weights: WeightsSource | None = None
    exact: bool = True  # False: traced on the BatchNorm-folded channels_last copy (hrnet_explorer.fold)

    @property
    def logits(self) -> torch.Tensor:
        return self.maps["logits"]

    @property
    def input_size(self) -> tuple[int, int]:
        return self.input_shape[-2], self.input_shape[-1]

    def names(self) -> list[str]:
        return list(self.shapes)

    def __getitem__(self, name: str) -> torch.Tensor:
        if name in self.maps:
            return self.maps[name]
        if name in self.shapes:
            raise NotFoundError(f"{name!r} was traced but not kept (keep={self.keep!r}); trace with keep='all'.")
        raise NotFoundError(f"{name!r} is not a trace name. Hint: use Trace.names() or trace_names(model).")

    def __contains__(self, name: str) -> bool:
        return name in self.maps

    def module(self, stage: int, index: int) -> ModuleRef:
        """Module ``index`` of ``stage``; negative indices count from the stage's end (-1: its last module)."""
        return resolve_module(self.modules, stage, index)

    def stage_outputs(self, stage: int) -> list[torch.Tensor]:
        """The fused outputs of the last module of ``stage`` (its streams, high to low resolution)."""
        last = [r for r in self.modules if r.stage == stage]
        if not last:
            raise NotFoundError(f"No stage {stage}; HRNet's fusing stages are 2, 3 and 4.")
        ref = last[-1]
        return [self[f"{ref.name}.fused{i}"] for i in range(ref.num_streams)]

    def clone(self) -> Trace:
        """A copy that owns its tensors (a GraphTracer's trace is overwritten by its next call)."""
        return self.map_tensors(torch.clone)

    def head(self, n: int, device: str | torch.device = "cpu") -> Trace:
        """The first ``n`` samples, copied to ``device``."""
        return self.map_tensors(lambda t: t[:n].to(device, copy=True), batch=n)

    def map_tensors(self, fn: Callable[[torch.Tensor], torch.Tensor], batch: int | None = None) -> Trace:
        """A new Trace with ``fn`` applied to every tensor (maps, summaries, fusion statistics);
        ``batch``: the new batch size, when ``fn`` slices the batch."""

        def shape(s: tuple[int, ...]) -> tuple[int, ...]:
            return s if batch is None else (batch, *s[1:])

        return Trace(
            self.variant,
            shape(self.input_shape),
            self.keep,
            self.modules,
            {k: shape(s) for k, s in self.shapes.items()},
            {k: fn(v) for k, v in self.maps.items()},
            {k: {s: fn(v) for s, v in d.items()} for k, d in self.summaries.items()},
            {k: FusionStats(*(fn(t) for t in vars(v).values())) for k, v in self.fusion_cache.items()},
            self.weights,
            self.exact,
        )

    def fusion(self, stage: int, index: int) -> FusionStats:
        """The :class:`FusionStats` of one module (see :mod:`hrnet_explorer.fusion`): computed during the pass
        (keep != "all") or on first use from the kept edges, then remembered — a memo of values that never change,
        filled under a lock, so a Trace shared between threads (the app's) gives every reader the same object."""
        ref = self.module(stage, index)
        with _FUSION_LOCK:
            if ref.name in self.fusion_cache:
                return self.fusion_cache[ref.name]
            p, n = ref.name, ref.num_streams
            rows = [fusion_row([self[f"{p}.edge{j}to{i}"] for j in range(n)], self[f"{p}.presum{i}"]) for i in range(n)]
            self.fusion_cache[ref.name] = stack_fusion_stats(rows)
            return self.fusion_cache[ref.name]


def trace(
    model: LoadedModel | nn.Module,
    inputs: torch.Tensor | ImageInput,
    *,
    keep: Keep = "all",
    store: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    precision: str | None = None,
    input_size: int | None = None,
    exact: bool | None = None,
) -> Trace:
    """Run ``model`` once on ``inputs`` and capture every stream, edge, sum and fused map.

    ``inputs``: a preprocessed Bx3xHxW tensor (H, W multiples of 32) or one image (preprocessed with
    the weights' timm transform; needs a :class:`LoadedModel`). ``keep``: "all", "outputs" (no
    branches/edges/pre-activations) or "summaries" (channel mean/L2 maps only). ``store``: device
    for captured tensors (default: where they were computed; "cpu" frees GPU memory). ``dtype``:
    storage dtype (e.g. torch.float16). ``precision``: "fp32"/"bf16" autocast (default: the
    LoadedModel's). The model is left exactly as found: no hooks, same mode, same flags. ``model`` may also be a
    features-only backbone (``timm.create_model(v, features_only=True, feature_location="")``): the same names up to
    stage 4's fused maps, no head and no logits.

    ``exact``: True traces the private exact copy (:mod:`hrnet_explorer.copies`; fp32: logits bit-identical to a
    plain forward of the model). False traces the private copy with BatchNorm folded into the convolutions, in
    channels_last: faster than a plain forward on a CPU, same names, the fusion identities exact within the trace,
    every map within ``FAST_RTOL[device]`` of its largest magnitude of the exact trace; its maps are channels_last.
    Default (None): the folded copy on a CPU, the exact one elsewhere (GPUs: see ``graphs.graph_trace``).
    """
    if keep not in KEEPS:
        raise InputError(f"keep must be 'all', 'outputs' or 'summaries', not {keep!r}.")
    loaded = model.check_classifier("trace()") if isinstance(model, LoadedModel) else None
    net = check_hrnet(loaded.model if loaded else model, head=False)
    if net.training:
        raise InputError(
            "The model is in training mode (BatchNorm would update its statistics); call model.eval() first."
        )
    if loaded is not None:
        x = to_batch(inputs, loaded.data_config, input_size)
    elif isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
        x = check_input_tensor(inputs)
    else:
        raise ArgumentError("Tracing an image needs a LoadedModel (for its preprocessing); pass a tensor otherwise.")
    param = next(net.parameters())
    precision = precision or (loaded.precision if loaded else "fp32")
    rec = MapRecorder(keep, torch.device(store) if store is not None else None, dtype)
    if exact is None:
        exact = param.device.type != "cpu"
    run = private_copy(net, "exact" if exact else "folded")
    x = x.to(param.device, param.dtype)
    if not exact:
        x = x.contiguous(memory_format=torch.channels_last)
    with run.lock, hooks_installed(hrnet_hooks(run.net, rec)), torch.inference_mode():
        with autocast(param.device, precision):
            out = run.net(x)
        if has_head(net):
            rec.put("logits", out)
    return _trace_of(rec, net, tuple(x.shape), loaded, exact)


def _trace_of(
    rec: MapRecorder,
    net: nn.Module,
    input_shape: tuple[int, ...],
    loaded: LoadedModel | None,
    exact: bool = True,
) -> Trace:
    return Trace(
        variant=(loaded.variant.name if loaded else net.default_cfg.get("architecture", type(net).__name__)),
        input_shape=input_shape,
        keep=rec.keep,
        modules=module_refs(net),
        shapes=dict(rec.shapes),
        maps=dict(rec.maps),
        summaries=dict(rec.summaries),
        fusion_cache=dict(rec.fusion),
        weights=loaded.weights if loaded else None,
        exact=exact,
    )

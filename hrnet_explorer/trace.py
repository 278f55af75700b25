"""Capture every resolution stream and every fusion edge of a timm HRNet in one forward pass.

Names (see :func:`trace_names`) — stages 2..4, modules and streams counted from 0:

    stem · layer1 · transition{t}.stream{k}
    stage{s}.module{m}.branch{i}         stream i after its BasicBlocks, before fusion
    stage{s}.module{m}.edge{j}to{i}      fuse_layers[i][j](branch j): what stream j sends to stream i
    stage{s}.module{m}.presum{i}         Σ_j edge{j}to{i}, before the shared ReLU
    stage{s}.module{m}.fused{i}          ReLU(presum i): the module's output for stream i
    head.incre{k} · head.down{k} · head.merge{k} · head.final · head.pooled · logits

How the hooks avoid the pitfalls of timm's HRNet (where a naive forward hook silently goes wrong):
- ``fuse_act`` is one ReLU reused for every target stream: its hook counts calls per module call
  (reset by a pre-hook on the module), and the pre-activation is read from its *input*.
- Captured tensors are module outputs that nothing writes to afterwards (the stem is read after
  ``act2``, not from ``bn2``), so no clones are needed.
- ``downsamp_modules[k]`` is called through ``.forward`` — hooks go on its children.
- ``nn.Identity`` transitions are never called; only the transitions that create a stream (and
  ``transition1``) have outputs to record.
All hooks live inside :func:`hooks_installed`; they are removed in ``finally``, also after errors.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from timm.models.hrnet import HighResolutionModule, HighResolutionNet
from torch import nn

from .fold import cached_fast_copy
from .fusion import FusionStats, fusion_row, stack_fusion_stats, summarize_map
from .images import ImageInput, check_input_tensor, to_batch
from .runtime import autocast
from .zoo import LoadedModel, WeightsSource

__all__ = ["Trace", "ModuleRef", "trace", "trace_names", "module_refs", "hooks_installed", "Keep"]

Keep = Literal["all", "outputs", "summaries"]
_OUTPUT_KINDS = ("branch", "edge", "presum")  # dropped by keep="outputs"


@functools.lru_cache(maxsize=4096)
def _is_intermediate(name: str) -> bool:
    """A branch, edge or pre-activation map (what keep="outputs" drops); cached: called per capture."""
    return re.match(r"[a-z]*", name.rsplit(".", 1)[-1]).group() in _OUTPUT_KINDS


@dataclass(frozen=True)
class ModuleRef:
    """Where one HighResolutionModule sits: ``stage`` 2..4, ``index`` within it, its stream count."""

    stage: int
    index: int
    num_streams: int

    @property
    def name(self) -> str:
        return f"stage{self.stage}.module{self.index}"


def _check_hrnet(model: nn.Module) -> HighResolutionNet:
    if not isinstance(model, HighResolutionNet):
        raise TypeError(f"Expected a timm HighResolutionNet, got {type(model).__name__}.")
    if model.incre_modules is None or model.downsamp_modules is None:
        raise ValueError(
            "The model has no classification head (features_only?); build it with timm.create_model(name)."
        )
    return model


def module_refs(model: nn.Module) -> list[ModuleRef]:
    """Every HighResolutionModule of stages 2–4, in forward order."""
    net = _check_hrnet(model)
    return [ModuleRef(s, m, mod.num_branches) for s in (2, 3, 4) for m, mod in enumerate(getattr(net, f"stage{s}"))]


def trace_names(model: nn.Module | LoadedModel) -> list[str]:
    """The names a full trace of ``model`` will hold, in forward order, without running it."""
    net = _check_hrnet(model.model if isinstance(model, LoadedModel) else model)
    names = ["stem", "layer1"] + [f"transition1.stream{k}" for k in range(len(net.transition1))]
    for ref in module_refs(net):
        if ref.index == 0 and ref.stage > 2:
            names.append(f"transition{ref.stage - 1}.stream{ref.num_streams - 1}")
        n, p = ref.num_streams, ref.name
        names += [f"{p}.branch{i}" for i in range(n)]
        for i in range(n):
            names += [f"{p}.edge{j}to{i}" for j in range(n)] + [f"{p}.presum{i}", f"{p}.fused{i}"]
    k = len(net.incre_modules)
    names.append("head.incre0")
    for i in range(1, k):  # incre_i(stream i) + down_{i-1}(merge_{i-1}), evaluated left to right
        names += [f"head.incre{i}", f"head.merge{i - 1}", f"head.down{i - 1}"]
    return names + [f"head.merge{k - 1}", "head.final", "head.pooled", "logits"]


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
            raise KeyError(f"{name!r} was traced but not kept (keep={self.keep!r}); trace with keep='all'.")
        raise KeyError(f"{name!r} is not a trace name. Hint: use Trace.names() or trace_names(model).")

    def __contains__(self, name: str) -> bool:
        return name in self.maps

    def module(self, stage: int, index: int) -> ModuleRef:
        """Module ``index`` of ``stage``; negative indices count from the stage's end (-1: its last module)."""
        in_stage = [ref for ref in self.modules if ref.stage == stage]
        if -len(in_stage) <= index < len(in_stage):
            return in_stage[index]
        raise KeyError(f"No module {index} in stage {stage}. Modules: {', '.join(r.name for r in self.modules)}.")

    def stage_outputs(self, stage: int) -> list[torch.Tensor]:
        """The fused outputs of the last module of ``stage`` (its streams, high to low resolution)."""
        last = [r for r in self.modules if r.stage == stage]
        if not last:
            raise KeyError(f"No stage {stage}; HRNet's fusing stages are 2, 3 and 4.")
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
        """The :class:`FusionStats` of one module (see :mod:`hrnet_explorer.fusion`)."""
        ref = self.module(stage, index)
        if ref.name not in self.fusion_cache:
            p, n = ref.name, ref.num_streams
            rows = [fusion_row([self[f"{p}.edge{j}to{i}"] for j in range(n)], self[f"{p}.presum{i}"]) for i in range(n)]
            self.fusion_cache[ref.name] = stack_fusion_stats(rows)
        return self.fusion_cache[ref.name]


Hook = Callable[..., None]


@contextlib.contextmanager
def hooks_installed(hooks: list[tuple[nn.Module, str, Hook]]) -> Iterator[None]:
    """Register ``(module, "forward"|"forward_pre", fn)`` hooks; remove them all on exit, errors included."""
    handles = []
    try:
        for module, kind, fn in hooks:
            register = module.register_forward_hook if kind == "forward" else module.register_forward_pre_hook
            handles.append(register(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


class _Recorder:
    """Hook callbacks that file every captured tensor under its trace name.

    ``narrow``: ``{name: channels}`` for a channel-padded copy (:func:`hrnet_explorer.pad.pad_channels`): those
    captures are sliced to ``t[:, :channels]`` (a view) before anything else sees them — the maps, the shapes, the
    summaries and the fusion statistics are those of the unpadded network. None: nothing is sliced.
    """

    def __init__(
        self,
        keep: Keep,
        store: torch.device | None,
        dtype: torch.dtype | None,
        narrow: dict[str, int] | None = None,
    ):
        self.keep, self.store, self.dtype = keep, store, dtype
        self.narrow = narrow or None
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.maps: dict[str, torch.Tensor] = {}
        self.summaries: dict[str, dict[str, torch.Tensor]] = {}
        self.fusion: dict[str, FusionStats] = {}
        self._rows: dict[str, list] = {}  # module name → fusion rows so far (keep != "all")
        self._edges: dict[str, list[torch.Tensor | None]] = {}  # module name → this target's edges
        self._calls: dict[str, int] = {}  # module name → fuse_act calls so far in this module call

    def put(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """File ``tensor`` under ``name``; returns it (sliced to its unpadded width if ``narrow`` names it)."""
        if self.narrow is not None and name in self.narrow:
            tensor = tensor[:, : self.narrow[name]]
        self.shapes[name] = tuple(tensor.shape)
        if name == "logits" or self.keep == "all" or (self.keep == "outputs" and not _is_intermediate(name)):
            t = tensor.detach()
            if self.store is not None:
                t = t.to(self.store, non_blocking=True)
            if self.dtype is not None and t.is_floating_point():
                t = t.to(self.dtype)
            self.maps[name] = t
        elif self.keep == "summaries" and tensor.ndim == 4:
            self.summaries[name] = {k: v.to(self.store or v.device) for k, v in summarize_map(tensor).items()}
        return tensor

    def output(self, name: str) -> Hook:
        def hook(module, args, output):
            self.put(name, output)

        return hook

    def input(self, name: str) -> Hook:
        def hook(module, args):
            self.put(name, args[0])

        return hook

    def edge(self, ref: ModuleRef, source: int, target: int) -> Hook:
        name = f"{ref.name}.edge{source}to{target}"

        def hook(module, args, output):
            output = self.put(name, output)
            if self.keep != "all":
                self._edges[ref.name][source] = output

        return hook

    def module_start(self, ref: ModuleRef) -> Hook:
        def hook(module, args):
            self._calls[ref.name] = 0
            self._rows[ref.name] = []
            self._edges[ref.name] = [None] * ref.num_streams

        return hook

    def fuse_act(self, ref: ModuleRef) -> Hook:
        def hook(module, args, output):
            i = self._calls[ref.name]  # the shared ReLU fires once per target stream, i = 0..N-1
            self._calls[ref.name] = i + 1
            presum = self.put(f"{ref.name}.presum{i}", args[0])
            self.put(f"{ref.name}.fused{i}", output)
            if self.keep != "all":
                self._rows[ref.name].append(fusion_row(self._edges[ref.name], presum))
                self._edges[ref.name] = [None] * ref.num_streams
                if i == ref.num_streams - 1:
                    self.fusion[ref.name] = stack_fusion_stats(self._rows.pop(ref.name))

        return hook


def _hooks_for(net: HighResolutionNet, rec: _Recorder) -> list[tuple[nn.Module, str, Hook]]:
    hooks: list[tuple[nn.Module, str, Hook]] = [
        (net.act2, "forward", rec.output("stem")),  # act2 is in-place on bn2's output: read after it
        (net.layer1, "forward", rec.output("layer1")),
    ]
    for t in (1, 2, 3):
        for k, layer in enumerate(getattr(net, f"transition{t}")):
            if not isinstance(layer, nn.Identity):  # Identity transitions are never called
                hooks.append((layer, "forward", rec.output(f"transition{t}.stream{k}")))
    for ref in module_refs(net):
        mod: HighResolutionModule = getattr(net, f"stage{ref.stage}")[ref.index]
        hooks.append((mod, "forward_pre", rec.module_start(ref)))
        for i, branch in enumerate(mod.branches):
            hooks.append((branch, "forward", rec.output(f"{ref.name}.branch{i}")))
        for i, row in enumerate(mod.fuse_layers):
            for j, edge in enumerate(row):
                hooks.append((edge, "forward", rec.edge(ref, j, i)))
        hooks.append((mod.fuse_act, "forward", rec.fuse_act(ref)))
    for k, incre in enumerate(net.incre_modules):
        hooks.append((incre, "forward", rec.output(f"head.incre{k}")))
    for k, down in enumerate(net.downsamp_modules):
        # Called as down.forward(y): hooks on `down` itself never fire; its children's do.
        hooks.append((down[0], "forward_pre", rec.input(f"head.merge{k}")))
        hooks.append((down[-1], "forward", rec.output(f"head.down{k}")))
    hooks += [
        (net.final_layer, "forward_pre", rec.input(f"head.merge{len(net.incre_modules) - 1}")),
        (net.final_layer, "forward", rec.output("head.final")),
        (net.global_pool, "forward", rec.output("head.pooled")),
    ]
    return hooks


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
    LoadedModel's). The model is left exactly as found: no hooks, same mode, same flags.

    ``exact``: True traces the model itself (fp32: logits bit-identical to a plain forward). False
    traces a private copy with BatchNorm folded into the convolutions, in channels_last
    (:func:`hrnet_explorer.fold.cached_fast_copy`, built once per model): faster than a plain forward
    on a CPU, same names, the fusion identities exact within the trace, every map within
    ``FAST_RTOL[device]`` of its largest magnitude of the exact trace; its maps are channels_last.
    Default (None): the fast copy on a CPU, the model itself elsewhere (GPUs: see ``graphs.GraphTracer``).
    """
    if keep not in ("all", "outputs", "summaries"):
        raise ValueError(f"keep must be 'all', 'outputs' or 'summaries', not {keep!r}.")
    loaded = model if isinstance(model, LoadedModel) else None
    net = _check_hrnet(loaded.model if loaded else model)
    if net.training:
        raise ValueError(
            "The model is in training mode (BatchNorm would update its statistics); call model.eval() first."
        )
    if loaded is not None:
        x = to_batch(inputs, loaded.data_config, input_size)
    elif isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
        x = check_input_tensor(inputs)
    else:
        raise TypeError("Tracing an image needs a LoadedModel (for its preprocessing); pass a tensor otherwise.")
    param = next(net.parameters())
    precision = precision or (loaded.precision if loaded else "fp32")
    rec = _Recorder(keep, torch.device(store) if store is not None else None, dtype)
    if exact is None:
        exact = param.device.type != "cpu"
    run, lock = (net, contextlib.nullcontext()) if exact else cached_fast_copy(net)
    x = x.to(param.device, param.dtype)
    if not exact:
        x = x.contiguous(memory_format=torch.channels_last)
    with lock, hooks_installed(_hooks_for(run, rec)), torch.inference_mode(), autocast(param.device, precision):
        rec.put("logits", run(x))
    return _trace_of(rec, net, tuple(x.shape), loaded, exact)


def _trace_of(
    rec: _Recorder,
    net: HighResolutionNet,
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

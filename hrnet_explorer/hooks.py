"""The hook engine: forward hooks on a timm HRNet that hand every stream, fuse edge and fused map to a recorder.

One set of hooks serves every client: the trace (:class:`MapRecorder` files maps under their trace names, or
reduces them as it goes), the dataset engine (:mod:`hrnet_explorer.rows` reduces each module to a few numbers per
image), the shape pass of :mod:`hrnet_explorer.pad`, and knockouts (:func:`knockout_hooks` zero fuse edges).
Where the hooks go, and why there (from :mod:`hrnet_explorer.anatomy`):
- the stem is read after ``act2`` (in place on ``bn2``'s output), so nothing captured is written to later;
- ``fuse_act`` is one ReLU per module reused for every target stream: :class:`~hrnet_explorer.anatomy.SharedReLU`
  counts its calls, and the pre-activation sum is its *input*;
- ``downsamp_modules[k]`` is called through ``.forward``: hooks go on its children;
- ``nn.Identity`` transitions are never called: only the ones that create a stream are hooked.
Hooks live only inside :func:`hooks_installed`, which removes them in ``finally``, errors included.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

import torch
from timm.models.hrnet import HighResolutionNet
from torch import nn

from .anatomy import ModuleRef, SharedReLU, fuse_edges, has_head, hr_modules, shared_relu, stream_transitions
from .errors import InputError
from .fusion import FusionStats, fusion_row, stack_fusion_stats, summarize_map

__all__ = [
    "Hook",
    "Keep",
    "MapRecorder",
    "Recorder",
    "hooks_installed",
    "hrnet_hooks",
    "is_intermediate",
    "knockout_hooks",
    "stream_edges",
]

Keep = Literal["all", "outputs", "summaries"]
KEEPS = ("all", "outputs", "summaries")
Hook = Callable[..., object]
_OUTPUT_KINDS = ("branch", "edge", "presum")  # dropped by keep="outputs"


@contextlib.contextmanager
def hooks_installed(hooks: Iterable[tuple[nn.Module, str, Hook]]) -> Iterator[None]:
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


class Recorder:
    """What the hook engine calls during a forward; override what you need (the defaults do nothing).

    ``record_maps``: hook every named map outside the fusion (stem, layer1, transitions, branches, head) and call
    :meth:`on_map`; False hooks only the modules' fusion. :meth:`edges_for` says which modules' fuse edges to hook.
    """

    record_maps = True

    def edges_for(self, ref: ModuleRef) -> bool:
        return True

    def on_map(self, name: str, tensor: torch.Tensor) -> None:
        """A named map (see :func:`~hrnet_explorer.anatomy.trace_names`) outside the fusion."""

    def on_module_start(self, ref: ModuleRef) -> None:
        """A HighResolutionModule begins its forward."""

    def on_edge(self, ref: ModuleRef, source: int, target: int, tensor: torch.Tensor) -> None:
        """``fuse_layers[target][source]``'s output: what stream ``source`` sends to stream ``target``."""

    def on_fused(self, ref: ModuleRef, target: int, presum: torch.Tensor, fused: torch.Tensor) -> None:
        """Stream ``target``'s pre-activation sum and fused output (after all its edges)."""


def hrnet_hooks(net: HighResolutionNet, rec: Recorder) -> list[tuple[nn.Module, str, Hook]]:
    """The hooks that feed ``rec`` from a forward of ``net`` (a classifier, or a features-only backbone)."""
    hooks: list[tuple[nn.Module, str, Hook]] = []

    def output(name: str) -> Hook:
        return lambda module, args, out: rec.on_map(name, out)

    def input_(name: str) -> Hook:
        return lambda module, args: rec.on_map(name, args[0])

    if rec.record_maps:
        hooks += [(net.act2, "forward", output("stem")), (net.layer1, "forward", output("layer1"))]
        hooks += [(layer, "forward", output(f"transition{t}.stream{k}")) for t, k, layer in stream_transitions(net)]
    relu = SharedReLU()
    for ref, mod in hr_modules(net):
        hooks.append((mod, "forward_pre", _module_start(rec, relu, ref)))
        if rec.record_maps:
            hooks += [(b, "forward", output(f"{ref.name}.branch{i}")) for i, b in enumerate(mod.branches)]
        if rec.edges_for(ref):
            hooks += [(edge, "forward", _edge(rec, ref, j, i)) for j, i, edge in fuse_edges(mod)]
        hooks.append((shared_relu(mod), "forward", _fused(rec, relu, ref)))
    if rec.record_maps and has_head(net):
        hooks += [(incre, "forward", output(f"head.incre{k}")) for k, incre in enumerate(net.incre_modules)]
        for k, down in enumerate(net.downsamp_modules):
            # Called as down.forward(y): hooks on `down` itself never fire; its children's do.
            hooks.append((down[0], "forward_pre", input_(f"head.merge{k}")))
            hooks.append((down[-1], "forward", output(f"head.down{k}")))
        hooks += [
            (net.final_layer, "forward_pre", input_(f"head.merge{len(net.incre_modules) - 1}")),
            (net.final_layer, "forward", output("head.final")),
            (net.global_pool, "forward", output("head.pooled")),
        ]
    return hooks


def _module_start(rec: Recorder, relu: SharedReLU, ref: ModuleRef) -> Hook:
    def hook(module, args):
        relu.start(ref)
        rec.on_module_start(ref)

    return hook


def _edge(rec: Recorder, ref: ModuleRef, source: int, target: int) -> Hook:
    return lambda module, args, out: rec.on_edge(ref, source, target, out)


def _fused(rec: Recorder, relu: SharedReLU, ref: ModuleRef) -> Hook:
    return lambda module, args, out: rec.on_fused(ref, relu.next(ref), args[0], out)


def _zero_output(module, args, output):
    return torch.zeros_like(output)


def knockout_hooks(net: HighResolutionNet, edges: Iterable[tuple[ModuleRef, int, int]]) -> list:
    """Hooks that zero the output of each fuse edge ``(module, source, target)`` of ``net``: the knockout."""
    modules = dict((ref, mod) for ref, mod in hr_modules(net))
    return [(modules[ref].fuse_layers[target][source], "forward", _zero_output) for ref, source, target in edges]


def stream_edges(refs: Iterable[ModuleRef], stream: int, self_edge: bool = False) -> list[tuple[ModuleRef, int, int]]:
    """Every fuse edge leaving ``stream`` into another stream (and into itself with ``self_edge``), in every module
    of ``refs`` that has the stream: a stream's knockout."""
    return [
        (ref, stream, i)
        for ref in refs
        if stream < ref.num_streams
        for i in range(ref.num_streams)
        if i != stream or self_edge
    ]


@functools.lru_cache(maxsize=4096)
def is_intermediate(name: str) -> bool:
    """A branch, edge or pre-activation map (what keep="outputs" drops); cached: called per capture."""
    return re.match(r"[a-z]*", name.rsplit(".", 1)[-1]).group() in _OUTPUT_KINDS


class MapRecorder(Recorder):
    """The trace's recorder: files every map under its trace name, keeping what ``keep`` asks for.

    keep="all": every map (fusion statistics are computed later, from the kept edges); "outputs": no branches,
    edges or pre-activations; "summaries": channel mean/L2 maps only. With keep != "all" each module's
    :class:`FusionStats` are reduced from its edges as the forward runs, and the edges dropped.
    ``store``/``dtype``: where and in what dtype kept maps go. ``narrow``: ``{name: channels}`` for a channel-padded
    copy (:func:`hrnet_explorer.pad.pad_channels`): those captures are sliced to ``t[:, :channels]`` (a view)
    before anything else sees them, so maps, shapes, summaries and statistics are those of the unpadded network.
    """

    def __init__(
        self,
        keep: Keep = "all",
        store: torch.device | None = None,
        dtype: torch.dtype | None = None,
        narrow: dict[str, int] | None = None,
    ):
        if keep not in KEEPS:
            raise InputError(f"keep must be 'all', 'outputs' or 'summaries', not {keep!r}.")
        self.keep, self.store, self.dtype = keep, store, dtype
        self.narrow = narrow or None
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.maps: dict[str, torch.Tensor] = {}
        self.summaries: dict[str, dict[str, torch.Tensor]] = {}
        self.fusion: dict[str, FusionStats] = {}
        self._rows: dict[str, list] = {}  # module name → fusion rows so far (keep != "all")
        self._edges: dict[str, list[torch.Tensor | None]] = {}  # module name → this target's edges

    def put(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """File ``tensor`` under ``name``; returns it (sliced to its unpadded width if ``narrow`` names it)."""
        if self.narrow is not None and name in self.narrow:
            tensor = tensor[:, : self.narrow[name]]
        self.shapes[name] = tuple(tensor.shape)
        if name == "logits" or self.keep == "all" or (self.keep == "outputs" and not is_intermediate(name)):
            t = tensor.detach()
            if self.store is not None:
                t = t.to(self.store, non_blocking=True)
            if self.dtype is not None and t.is_floating_point():
                t = t.to(self.dtype)
            self.maps[name] = t
        elif self.keep == "summaries" and tensor.ndim == 4:
            self.summaries[name] = {k: v.to(self.store or v.device) for k, v in summarize_map(tensor).items()}
        return tensor

    def on_map(self, name: str, tensor: torch.Tensor) -> None:
        self.put(name, tensor)

    def on_module_start(self, ref: ModuleRef) -> None:
        self._rows[ref.name] = []
        self._edges[ref.name] = [None] * ref.num_streams

    def on_edge(self, ref: ModuleRef, source: int, target: int, tensor: torch.Tensor) -> None:
        tensor = self.put(f"{ref.name}.edge{source}to{target}", tensor)
        if self.keep != "all":
            self._edges[ref.name][source] = tensor

    def on_fused(self, ref: ModuleRef, target: int, presum: torch.Tensor, fused: torch.Tensor) -> None:
        presum = self.put(f"{ref.name}.presum{target}", presum)
        self.put(f"{ref.name}.fused{target}", fused)
        if self.keep != "all":
            self._rows[ref.name].append(fusion_row(self._edges[ref.name], presum))
            self._edges[ref.name] = [None] * ref.num_streams
            if target == ref.num_streams - 1:
                self.fusion[ref.name] = stack_fusion_stats(self._rows.pop(ref.name))

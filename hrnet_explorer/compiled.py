"""A full trace written as a forward that returns every captured map: one graph for ``torch.compile``.

Hooks are Python side effects; a compiler sees through them only partly. :func:`trace_forward`
instead walks timm's HRNet itself, in timm's order (``HighResolutionNet.forward_features``,
``HighResolutionModule.forward``), calling the same submodules, and returns ``{name: tensor}`` for
every name of :func:`~hrnet_explorer.trace.trace_names` plus ``logits``. In eager mode its maps are
bit-identical to the hook trace of the same model (tests/test_compiled_trace.py, all nine variants).

:class:`CompiledTracer` compiles it (``torch.compile``, default ``mode="reduce-overhead"``: Inductor
kernels replayed from a CUDA graph) on a private copy with BatchNorm folded (:mod:`hrnet_explorer.fold`),
in channels_last. Compilation is paid once per (model, input shape, precision) on the first call
(tens of seconds on a GPU); ``CompiledTracer.compile_seconds`` reports it. Under ``reduce-overhead``
the returned maps live in the CUDA graph's memory and are overwritten by the next call: ``.clone()``
a Trace you keep. Numerically a compiled trace is a fast trace: within ``FAST_RTOL`` of the exact one.
``pad=True`` also pads that copy's channel widths to multiples of 8 (:mod:`hrnet_explorer.pad`); trace_forward
slices every padded map back to its width (``widths``), so the maps, names and shapes are the unpadded ones.

No captum, plotly or gradio here: this module runs where only torch and timm are installed.
"""

from __future__ import annotations

import functools
import time

import torch
from timm.models.hrnet import HighResolutionModule, HighResolutionNet
from torch import nn

from .anatomy import check_hrnet, fuse_edges, module_refs, shared_relu
from .copies import private_copy
from .errors import InputError
from .graphs import tracer_copy
from .images import check_input_tensor
from .runtime import Precision, autocast
from .trace import Trace
from .zoo import LoadedModel

__all__ = ["trace_forward", "CompiledTracer"]


def _module_forward(
    mod: HighResolutionModule, xs: list[torch.Tensor], p: str, out: dict[str, torch.Tensor]
) -> list[torch.Tensor]:
    """``HighResolutionModule.forward`` with every branch, edge, pre-activation sum and output kept."""
    xs = [branch(x) for branch, x in zip(mod.branches, xs, strict=True)]
    for i, x in enumerate(xs):
        out[f"{p}.branch{i}"] = x
    fused: list[torch.Tensor] = []
    y = None
    for j, i, edge in fuse_edges(mod):  # target by target, sources in order: timm's order of additions
        e = edge(xs[j])
        out[f"{p}.edge{j}to{i}"] = e
        y = e if j == 0 else y + e
        if j == len(xs) - 1:
            out[f"{p}.presum{i}"] = y
            fused.append(shared_relu(mod)(y))
            out[f"{p}.fused{i}"] = fused[-1]
    return fused


def trace_forward(
    net: HighResolutionNet, x: torch.Tensor, widths: dict[str, int] | None = None
) -> dict[str, torch.Tensor]:
    """Every map of a full trace of ``net`` on ``x``, as a dict (insertion order = forward order).

    ``widths``: for a channel-padded ``net``, ``{name: channels}`` (its ``hrnet_explorer_widths``): those maps are
    returned as ``t[:, :channels]``, the unpadded width (a view; the forward itself runs padded)."""
    out: dict[str, torch.Tensor] = {}
    y = net.act2(net.bn2(net.conv2(net.act1(net.bn1(net.conv1(x))))))
    out["stem"] = y
    y = net.layer1(y)
    out["layer1"] = y
    xl = [t(y) for t in net.transition1]
    for k, t in enumerate(xl):
        out[f"transition1.stream{k}"] = t
    for s in (2, 3, 4):
        if s > 2:
            trans = getattr(net, f"transition{s - 1}")
            new = []
            for k, t in enumerate(trans):
                if isinstance(t, nn.Identity):  # never called by timm: the stream passes through
                    new.append(xl[k])
                else:
                    new.append(t(xl[-1]))
                    out[f"transition{s - 1}.stream{k}"] = new[-1]
            xl = new
        for m, mod in enumerate(getattr(net, f"stage{s}")):
            xl = _module_forward(mod, xl, f"stage{s}.module{m}", out)
    y = None
    for i, incre in enumerate(net.incre_modules):
        z = incre(xl[i])
        out[f"head.incre{i}"] = z
        if y is None:
            y = z
        else:
            out[f"head.merge{i - 1}"] = y
            d = net.downsamp_modules[i - 1].forward(y)
            out[f"head.down{i - 1}"] = d
            y = z + d
    out[f"head.merge{len(net.incre_modules) - 1}"] = y
    y = net.final_layer(y)
    out["head.final"] = y
    y = net.global_pool(y)
    out["head.pooled"] = y
    out["logits"] = net.classifier(net.head_drop(y))
    for name, channels in (widths or {}).items():
        out[name] = out[name][:, :channels]
    return out


class CompiledTracer:
    """A full trace (``keep="all"``) of ``model`` through ``torch.compile``; compiled on the first call.

    ``fold``: trace a BatchNorm-folded private copy (default; False: an unfolded private copy, which is
    bit-exact in eager mode only). ``pad``: that copy's channel widths padded to multiples of 8
    (:func:`hrnet_explorer.pad.pad_channels`), maps sliced back. ``channels_last``: that copy's memory format.
    ``mode``/``backend``: passed to ``torch.compile`` (``fullgraph=True``, ``dynamic=False``). ``precision``:
    "fp32" or "bf16" autocast (default: the LoadedModel's). Any input shape works; each new one compiles again.
    """

    def __init__(
        self,
        model: LoadedModel | nn.Module,
        *,
        precision: Precision | None = None,
        fold: bool = True,
        pad: bool = False,
        channels_last: bool = True,
        mode: str | None = "reduce-overhead",
        backend: str = "inductor",
    ):
        self.loaded = model if isinstance(model, LoadedModel) else None
        source = check_hrnet(self.loaded.model if self.loaded else model)
        if source.training:
            raise InputError("The model is in training mode; call model.eval() first.")
        self.copy = private_copy(source, tracer_copy(fold, pad), channels_last=channels_last)
        net = self.copy.net
        self.net, self.fold, self.pad = net, fold, pad
        self.source = source
        self.precision = precision or (self.loaded.precision if self.loaded else "fp32")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.device = next(net.parameters()).device
        widths = dict(getattr(net, "hrnet_explorer_widths", {}))
        forward = functools.partial(trace_forward, net, widths=widths)
        self.compiled = torch.compile(forward, mode=mode, backend=backend, fullgraph=True, dynamic=False)
        self.compile_seconds: dict[tuple[int, ...], float] = {}  # input shape → first call's wall time

    def __call__(self, x: torch.Tensor) -> Trace:
        x = check_input_tensor(x).to(self.device).contiguous(memory_format=self.memory_format)
        shape = tuple(x.shape)
        first = shape not in self.compile_seconds
        start = time.perf_counter()
        with self.copy.lock, torch.inference_mode(), autocast(self.device, self.precision):
            maps = self.compiled(x)
        if first:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.compile_seconds[shape] = time.perf_counter() - start
        return Trace(
            variant=(
                self.loaded.variant.name
                if self.loaded
                else self.source.default_cfg.get("architecture", type(self.source).__name__)
            ),
            input_shape=shape,
            keep="all",
            modules=module_refs(self.net),
            shapes={k: tuple(v.shape) for k, v in maps.items()},
            maps=dict(maps),
            weights=self.loaded.weights if self.loaded else None,
            exact=not (self.fold or self.pad) and self.memory_format == torch.contiguous_format,
        )

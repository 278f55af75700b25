"""A full trace written as a forward that returns every captured map: one graph for ``torch.compile``.

Hooks are Python side effects; a compiler sees through them only partly. :func:`trace_forward`
instead walks timm's HRNet itself, in timm's order (``HighResolutionNet.forward_features``,
``HighResolutionModule.forward``), calling the same submodules, and returns ``{name: tensor}`` for
every name of :func:`~hrnet_explorer.trace.trace_names` plus ``logits``. In eager mode its maps are
bit-identical to the hook trace of the same model (tests/unit/test_compiled_trace.py, all nine variants).

:class:`CompiledTracer` compiles it (``torch.compile``, Inductor, freezing on) on a private copy with BatchNorm
folded (:mod:`hrnet_explorer.fold`), in channels_last. Compilation is paid once per (model, input shape, precision)
on the first call (tens of seconds on a GPU); ``CompiledTracer.compile_seconds`` reports it. On a GPU the tracer
then captures the compiled trace in one CUDA graph per input shape (``cuda_graph``, the default there): a call is an
input copy and one replay, and the maps are the graph's static outputs. That beats ``mode="reduce-overhead"``
(Inductor's CUDA-graph trees), which rebuilds a tensor for every returned map on every call: 0.4–0.5 ms of host
work at batch 1 (benchmarks/levers.py). Either way a later call overwrites the returned maps (in the tracer's
own graph, the next call of the same shape): ``.clone()`` a Trace you keep. Numerically a compiled trace is a fast
trace: within ``FAST_RTOL`` of the exact one.
``pad=True`` also pads that copy's channel widths to multiples of 8 (:mod:`hrnet_explorer.pad`); trace_forward
slices every padded map back to its width (``widths``), so the maps, names and shapes are the unpadded ones.

No captum, plotly or gradio here: this module runs where only torch and timm are installed.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch
from timm.models.hrnet import HighResolutionModule, HighResolutionNet
from torch import nn

from .anatomy import check_hrnet, fuse_edges, module_refs, shared_relu
from .copies import private_copy
from .errors import InputError
from .graphs import tracer_copy, warm_up
from .images import check_finite, check_input_tensor
from .pad import padding_growth, padding_pays
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


# Every tracer compiles the same function (trace_forward) for its own copy, once per input shape: past dynamo's
# default of 8 compiles of one function it would silently fall back to eager.
RECOMPILE_LIMIT = 256


def inductor_options(mode: str | None, freeze: bool) -> dict[str, object]:
    """``torch.compile``'s Inductor options for ``mode`` (None: the default) with freezing on or off. Freezing is one of
    the options so that a frozen compile's backend never compares equal to an unfrozen one's: dynamo reuses a
    function's compiled code for any later compile whose backend compares equal, whatever Inductor's config, and two
    tracers of one model share its private copy. The option alone does not freeze: see :func:`freezing`."""
    from torch._inductor import list_mode_options

    return {**list_mode_options(mode or "default", False), "freezing": freeze}


def freezing(freeze: bool):
    """Inductor's freezing switch (a private config of torch), patched around a compiled call. Freezing treats the
    weights as constants: BatchNorm folded and weights constant-folded by the compiler. Dynamo reads this config, not
    the backend's options, when it traces (``is_parameter_freezing``: the parameters become graph constants that
    Inductor can fold); with the option alone they stay graph inputs: a plain w40 compiled so ran 7.3 ms at batch 1 on
    an H200, 3.1 ms with this patch (benchmarks/README.md, Speed III eleventh session)."""
    import torch._inductor.config as inductor_config

    return inductor_config.patch(freezing=freeze)


class CompileCache:
    """Inductor's compiled artifacts for one tracer configuration, kept in a folder so that a second process starts
    warm (``torch.compiler.save_cache_artifacts`` / ``load_cache_artifacts``, torch ≥ 2.7; without them Inductor's
    own on-disk caches still apply). One file per (configuration, input shape, torch version)."""

    def __init__(self, folder: str | Path, key: str):
        self.folder, self.key = Path(folder), key

    def path(self, shape: tuple[int, ...]) -> Path:
        tag = "x".join(map(str, shape))
        return self.folder / f"{self.key}-{tag}-torch{torch.__version__.replace('+', '_')}.bin"

    def load(self, shape: tuple[int, ...]) -> bool:
        path = self.path(shape)
        if not path.is_file() or not hasattr(torch.compiler, "load_cache_artifacts"):
            return False
        return torch.compiler.load_cache_artifacts(path.read_bytes()) is not None

    def save(self, shape: tuple[int, ...]) -> None:
        if not hasattr(torch.compiler, "save_cache_artifacts"):
            return
        saved = torch.compiler.save_cache_artifacts()
        if saved is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.path(shape).with_suffix(".tmp")
            tmp.write_bytes(saved[0])
            tmp.replace(self.path(shape))  # atomic: a concurrent reader sees the old file or the new one


class _Replay:
    """One captured CUDA graph of the compiled trace: a call copies x into its static input and replays it; the maps
    are the graph's static outputs (rewritten by the next call). The graph also checks its input's finiteness, read
    back after the replay: one wait for the device per call, where a check before the copy would add a second one
    and leave the device idle until the replay is launched (0.16–0.19 ms a call at batch 1 on an H200,
    benchmarks/README.md). So a call that fails the check has already rewritten the maps."""

    def __init__(
        self, static: torch.Tensor, graph: torch.cuda.CUDAGraph, maps: dict[str, torch.Tensor], finite: torch.Tensor
    ):
        self.static, self.graph, self.maps, self.finite = static, graph, maps, finite

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.static.copy_(x)
        self.graph.replay()
        check_finite(self.finite)
        return self.maps


class _Forward:
    """One private copy of the model and its compiled trace; a tracer keeps one per padding choice."""

    def __init__(
        self,
        source: nn.Module,
        fold: bool,
        pad: bool,
        *,
        channels_last: bool,
        mode: str | None,
        backend: str,
        freeze: bool,
        cache_dir: str | Path | None,
        cache_key: str,
    ):
        self.copy = private_copy(source, tracer_copy(fold, pad), channels_last=channels_last)
        self.net = self.copy.net
        widths = dict(getattr(self.net, "hrnet_explorer_widths", {}))
        forward = functools.partial(trace_forward, self.net, widths=widths)
        if backend == "inductor":  # the mode goes into the options (torch.compile takes one or the other)
            mode, options = None, inductor_options(mode, freeze)
        else:
            options = None
        self.compiled = torch.compile(
            forward, mode=mode, options=options, backend=backend, fullgraph=True, dynamic=False
        )
        self.modules = module_refs(self.net)
        self.cache = CompileCache(cache_dir, f"{cache_key}-pad{int(pad)}") if cache_dir is not None else None


class CompiledTracer:
    """A full trace (``keep="all"``) of ``model`` through ``torch.compile``; compiled on the first call per shape.

    ``fold``: trace a BatchNorm-folded private copy (default; False: the exact private copy, bit-exact in eager mode
    only). ``pad``: that copy's channel widths padded to multiples of 8 (:func:`hrnet_explorer.pad.pad_channels`),
    maps sliced back; None (default): on a GPU, where a width needs it (w18, w18_small_v2, w30, w44), and at batch 1
    only where padding widens no convolution by more than 1/8 (w30, w44): ``pads(batch)``
    (:func:`hrnet_explorer.pad.padding_pays`).
    ``freeze``: compile with Inductor's freezing (weights as constants; default with the inductor backend).
    ``channels_last``: the copy's memory format. ``mode``/``backend``: passed to ``torch.compile``
    (``fullgraph=True``, ``dynamic=False``). ``cuda_graph``: capture each shape's compiled trace in a CUDA graph of
    the tracer's own, one memory pool per shape (None: on a CUDA model when ``mode`` is None; it needs a mode without
    Inductor's own CUDA graphs). ``precision``: "fp32" or "bf16" autocast (default: the LoadedModel's).
    ``cache_dir``: where compiled artifacts are saved after a compile and loaded before one (:class:`CompileCache`),
    so a later process compiles warm; ``compile_seconds[shape]`` is the first call's wall time either way.
    """

    def __init__(
        self,
        model: LoadedModel | nn.Module,
        *,
        precision: Precision | None = None,
        fold: bool = True,
        pad: bool | None = None,
        freeze: bool | None = None,
        channels_last: bool = True,
        mode: str | None = None,
        backend: str = "inductor",
        cuda_graph: bool | None = None,
        cache_dir: str | Path | None = None,
    ):
        self.loaded = model if isinstance(model, LoadedModel) else None
        source = check_hrnet(self.loaded.model if self.loaded else model)
        if source.training:
            raise InputError("The model is in training mode; call model.eval() first.")
        self.device = next(source.parameters()).device
        self.cuda_graph = self.device.type == "cuda" and mode is None if cuda_graph is None else bool(cuda_graph)
        if self.cuda_graph and (self.device.type != "cuda" or mode not in (None, "max-autotune-no-cudagraphs")):
            raise InputError(
                f"cuda_graph=True captures the compiled trace in a CUDA graph: it needs a CUDA model and a mode "
                f"without Inductor's own CUDA graphs (None or 'max-autotune-no-cudagraphs'), not {mode!r} on "
                f"{self.device}."
            )
        tracer_copy(fold, bool(pad))  # pad=True without fold is refused here, not on the first call
        self.freeze = backend == "inductor" if freeze is None else bool(freeze)
        if self.freeze and backend != "inductor":
            raise InputError(f"freeze=True is Inductor's freezing; backend {backend!r} has none.")
        self.fold, self.pad = fold, pad
        self._growth = padding_growth(source) if fold and self.device.type == "cuda" else 0.0
        self.variant = (
            self.loaded.variant.name if self.loaded else source.default_cfg.get("architecture", type(source).__name__)
        )
        self.precision = precision or (self.loaded.precision if self.loaded else "fp32")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        flags = (
            f"{self.variant}-{self.precision}-fold{int(fold)}-freeze{int(self.freeze)}-{mode}-cl{int(channels_last)}"
        )
        self._build = functools.partial(
            _Forward,
            source,
            fold,
            channels_last=channels_last,
            mode=mode,
            backend=backend,
            freeze=self.freeze,
            cache_dir=cache_dir,
            cache_key=flags,
        )
        self._forwards: dict[bool, _Forward] = {}  # padded? → its copy and compiled trace, built on first use
        self.compile_seconds: dict[tuple[int, ...], float] = {}  # input shape → first call's wall time
        self._shapes: dict[tuple[int, ...], dict[str, tuple[int, ...]]] = {}  # input shape → every map's shape
        self._graphs: dict[tuple[int, ...], _Replay] = {}  # input shape → its captured graph (cuda_graph=True)

    def pads(self, batch: int) -> bool:
        """Whether a batch of this size is traced on the channel-padded copy."""
        if self.pad is not None:
            return self.pad
        return padding_pays(self._growth, batch)

    def net(self, batch: int) -> nn.Module:
        """The private copy a batch of this size is traced on."""
        return self._forward(self.pads(batch)).net

    def _forward(self, padded: bool) -> _Forward:
        if padded not in self._forwards:
            self._forwards[padded] = self._build(padded)
        return self._forwards[padded]

    def _run(self, forward: _Forward, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with (
            torch.inference_mode(),
            autocast(self.device, self.precision),
            freezing(self.freeze),
            torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT),
        ):
            return forward.compiled(x)

    def _capture(self, forward: _Forward, x: torch.Tensor) -> _Replay:
        """Compile (in the warm-up, on a side stream) and capture one CUDA graph of the compiled trace for x's shape;
        each shape gets a memory pool of its own, so replaying one never writes into another's maps."""
        static = x.clone(memory_format=self.memory_format)
        warm_up(lambda: self._run(forward, static), self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            finite = torch.isfinite(static).all()
            maps = self._run(forward, static)
        return _Replay(static, graph, maps, finite)

    def __call__(self, x: torch.Tensor) -> Trace:
        x = check_input_tensor(x, finite=False).to(self.device).contiguous(memory_format=self.memory_format)
        shape = tuple(x.shape)
        if shape not in self._graphs:  # else its replay checks
            check_finite(torch.isfinite(x).all())
        first = shape not in self.compile_seconds
        start = time.perf_counter()
        padded = self.pads(shape[0])
        forward = self._forward(padded)
        with forward.copy.lock:
            if first and forward.cache is not None:
                forward.cache.load(shape)
            if not self.cuda_graph:
                maps = self._run(forward, x)
            else:
                if first:
                    self._graphs[shape] = self._capture(forward, x)
                maps = self._graphs[shape](x)
        if first:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.compile_seconds[shape] = time.perf_counter() - start
            self._shapes[shape] = {k: tuple(v.shape) for k, v in maps.items()}
            if forward.cache is not None:
                forward.cache.save(shape)
        return Trace(
            variant=self.variant,
            input_shape=shape,
            keep="all",
            modules=forward.modules,
            shapes=self._shapes[shape],  # the same every call for this shape: built once
            maps=maps,
            weights=self.loaded.weights if self.loaded else None,
            exact=not (self.fold or padded) and self.memory_format == torch.contiguous_format,
        )

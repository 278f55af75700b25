"""Fast traced forwards on CUDA: a channels_last copy of the model, bf16 autocast, CUDA graphs.

A CUDA graph replays recorded kernels without Python, so HRNet's hundreds of small kernels at batch 1
stop being launch-bound. The trace hooks are Python: they run once, while the graph is captured,
and file the tensors the graph writes into (static buffers of the graph's memory pool) under their
trace names. Every replay rewrites those buffers in place, so the trace costs no more than the
forward itself. The hooks are removed as soon as capture ends.

    tracer = GraphTracer(loaded, batch_size=1)        # warm-up + capture, once per shape
    result = tracer(x)                                 # a Trace whose tensors are the static buffers
    kept = result.clone()                              # ...which the next call overwrites
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .copies import CopyKind, private_copy
from .errors import InputError
from .hooks import KEEPS, Keep, MapRecorder, hooks_installed, hrnet_hooks
from .images import check_finite, check_input_tensor
from .runtime import Precision, autocast
from .trace import Trace, _trace_of
from .zoo import LoadedModel

__all__ = ["GraphTracer", "GraphedForward", "GraphedIG", "graph_trace", "tracer_copy", "warm_up"]


def tracer_copy(fold: bool, pad: bool) -> CopyKind:
    """The private copy (:mod:`hrnet_explorer.copies`) a fast tracer runs: padded implies folded."""
    if pad and not fold:
        raise InputError("pad=True pads the BatchNorm-folded copy: it needs fold=True.")
    return "padded" if pad else "folded" if fold else "exact"


def warm_up(fn: Callable[[], object], device: torch.device, iterations: int = 3) -> None:
    """Run ``fn`` a few times on a side stream before a capture: cuDNN autotuning and lazy
    initialisation must happen outside the graph (the pattern of torch.cuda.graphs' docs)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(iterations):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)


class GraphTracer:
    """A traced forward of one (model, batch size, input size) captured as a CUDA graph.

    ``keep`` as in :func:`~hrnet_explorer.trace.trace`. ``precision`` "bf16" (default: the
    LoadedModel's) runs under bf16 autocast. The graph runs a private copy of the model (:mod:`hrnet_explorer.copies`),
    in channels_last unless ``channels_last=False``.
    ``fold``: that copy has BatchNorm folded into its convolutions (:mod:`hrnet_explorer.fold`):
    faster, and within ``FAST_RTOL["cuda"]`` of the exact trace instead of bit-exact. ``pad``: channel widths
    padded to multiples of 8 in that copy (:func:`hrnet_explorer.pad.pad_channels`: zero channels, tensor-core
    friendly at large batches; benchmarks/README.md); the maps are sliced back to their widths once, at capture
    (views of the static buffers; names, shapes and fusion statistics as unpadded), within
    ``FAST_RTOL["cuda"]`` of the exact trace.
    Calls with another shape raise; build one tracer per shape (warm-up and capture take ~1 s).
    The graph also checks its input's finiteness, read back after the replay (as :class:`~hrnet_explorer.compiled.
    CompiledTracer`'s does: one wait for the device per call instead of two), so a call that fails it has already
    rewritten the maps.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        batch_size: int = 1,
        input_size: int | tuple[int, int] | None = None,
        *,
        keep: Keep = "all",
        precision: Precision | None = None,
        channels_last: bool = True,
        warmup: int = 3,
        fold: bool = False,
        pad: bool = False,
    ):
        if loaded.device.type != "cuda":
            raise InputError(f"CUDA graphs need a CUDA device; this model is on {loaded.device}. Use trace().")
        if keep not in KEEPS:
            raise InputError(f"keep must be 'all', 'outputs' or 'summaries', not {keep!r}.")
        size = input_size or loaded.data_config["input_size"][-1]
        h, w = (size, size) if isinstance(size, int) else size
        self.loaded = loaded
        self.input_shape = (batch_size, 3, h, w)
        self.precision = precision or loaded.precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.copy = private_copy(loaded.model, tracer_copy(fold, pad), channels_last=channels_last)
        self.net = self.copy.net
        self.fold, self.pad = fold, pad
        self.static_input = check_input_tensor(
            torch.zeros(self.input_shape, device=loaded.device).contiguous(memory_format=self.memory_format)
        )
        self._recorder = MapRecorder(keep, narrow=getattr(self.net, "hrnet_explorer_widths", None))
        self.graph = torch.cuda.CUDAGraph()
        self._capture(warmup)

    def _capture(self, warmup: int) -> None:
        device = self.loaded.device

        def forward():
            with torch.inference_mode(), autocast(device, self.precision, cache=False):
                self.net(self.static_input)

        rec = self._recorder
        with self.copy.lock:  # the copy is shared: nobody else's hooks during warm-up and capture
            warm_up(forward, device, warmup)
            with (
                hooks_installed(hrnet_hooks(self.net, rec)),
                torch.inference_mode(),
                autocast(device, self.precision, cache=False),
                torch.cuda.graph(self.graph),
            ):
                self.finite = torch.isfinite(self.static_input).all()
                rec.put("logits", self.net(self.static_input))

    def __call__(self, x: torch.Tensor) -> Trace:
        """Copy ``x`` into the static input, replay, and return the trace (valid until the next call)."""
        x = check_input_tensor(x, finite=False)
        if tuple(x.shape) != self.input_shape:
            raise InputError(
                f"This GraphTracer was captured for inputs of shape {self.input_shape}; got {tuple(x.shape)}. "
                "Build a GraphTracer for that shape."
            )
        self.static_input.copy_(x, non_blocking=True)
        self.graph.replay()
        check_finite(self.finite)
        return _trace_of(self._recorder, self.net, tuple(x.shape), self.loaded, exact=not (self.fold or self.pad))


def graph_trace(loaded: LoadedModel, x: torch.Tensor, store: str | torch.device = "cpu", max_shapes: int = 4) -> Trace:
    """A full fast trace of ``x`` (``keep="all"``, BatchNorm folded and channel widths padded to multiples of 8:
    within ``FAST_RTOL["cuda"]`` of the exact trace) replayed from a :class:`GraphTracer` kept per input shape on the
    model's padded private copy: what an app on a GPU runs per request. Padding is free where no width needs it and
    faster where one does (benchmarks/README.md). The first call for a shape captures (~1 s); later ones replay.
    Every module's fusion statistics are computed on the GPU, then the maps and statistics are copied to ``store``
    (a Trace that owns them) while the copy's lock is held, so concurrent callers never see each other's buffers.
    Up to ``max_shapes`` tracers per model (least recently used dropped); rebuilt when the weights change."""
    x = check_input_tensor(x, finite=False)
    shape = tuple(x.shape)
    padded = private_copy(loaded.model, "padded")

    def capture() -> GraphTracer:  # only before a capture: a captured tracer's graph checks its input itself
        check_finite(torch.isfinite(x).all())
        return GraphTracer(loaded, shape[0], shape[-2:], fold=True, pad=True)

    with padded.lock:
        tracer = padded.cached("graph_trace", (shape, loaded.precision), capture, max_shapes)
        result = tracer(x.to(loaded.device))
        for ref in result.modules:  # every module's fusion statistics, computed where the maps are
            result.fusion(ref.stage, ref.index)
        return result.head(shape[0], store)


def _frozen_cuda_device(net: nn.Module, what: str) -> torch.device:
    """The CUDA device of ``net``, checked to be what a CUDA graph of it may capture: a private copy (eval mode, frozen
    parameters)."""
    param = next(net.parameters())
    if param.device.type != "cuda":
        raise InputError(f"CUDA graphs need a CUDA device; this model is on {param.device}.")
    if net.training or any(p.requires_grad for p in net.parameters()):
        raise InputError(f"{what} needs an eval-mode model with frozen parameters (a private copy).")
    return param.device


class GraphedForward:
    """The plain forward of ``net`` for one input shape, replayed from a CUDA graph: HRNet's hundreds of small
    kernels launched by one replay instead of one by one from Python (deletion/insertion's 2·steps images, where
    the eager forward leaves the GPU waiting on the host). ``net`` must be in eval mode with frozen parameters (a
    private copy) and takes channels_last inputs; hold its copy's lock around a call. A call copies ``x`` in,
    replays, and returns a fresh tensor.
    """

    def __init__(self, net: nn.Module, shape: tuple[int, ...]):
        device = _frozen_cuda_device(net, "GraphedForward")
        self.net, self.shape = net, tuple(shape)
        self.x = torch.zeros(shape, device=device).contiguous(memory_format=torch.channels_last)
        warm_up(self._run, device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = self._run()

    def _run(self) -> torch.Tensor:
        with torch.no_grad():
            return self.net(self.x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape) != self.shape:
            raise InputError(f"This GraphedForward was captured for shape {self.shape}; got {tuple(x.shape)}.")
        self.x.copy_(x)
        self.graph.replay()
        return self.output.clone()


class GraphedIG:
    """Integrated Gradients of ``net`` for one input shape, the whole method replayed as one CUDA graph.

    One capture holds the batch-2 forward of [x, baseline] (f(x), f(b) and, for ``target=None``, the top-1
    class, chosen on the GPU), every chunk's forward and backward over the scaled inputs
    b + α·(x − b), the weighted sum of the gradients, the attribution (x − b)·Σ wᵢ·∇f(xᵢ) and its sum for
    the convergence delta. Nothing is read back between phases: a call copies x, b and the target in,
    replays, and reads the results once. ``alphas`` and ``weights`` are the integration's points and
    weights on [0, 1] (Captum's ``approximation_parameters``, computed by the caller: this module runs
    without Captum). ``net`` must be in eval mode with frozen parameters (a private copy).
    """

    def __init__(
        self,
        net: nn.Module,
        shape: tuple[int, ...],
        alphas: list[float],
        weights: list[float],
        chunk: int,
        precision: Precision = "fp32",
        memory_format: torch.memory_format = torch.channels_last,
    ):
        device = _frozen_cuda_device(net, "GraphedIG")
        if len(shape) != 4 or shape[0] != 1:
            raise InputError(f"GraphedIG explains one image: shape (1, 3, H, W), not {shape}.")
        if len(alphas) != len(weights) or not alphas or chunk < 1:
            raise InputError("GraphedIG needs as many weights as alphas (at least one) and a chunk ≥ 1.")
        self.net, self.precision, self.device, self.shape = net, precision, device, tuple(shape)
        self.alphas = torch.tensor(alphas, dtype=torch.float32, device=device).view(-1, 1, 1, 1)
        self.weights = torch.tensor(weights, dtype=torch.float32, device=device).view(-1, 1, 1, 1)
        self.chunk = chunk
        self.x = torch.zeros(shape, device=device).contiguous(memory_format=memory_format)
        self.b = torch.zeros_like(self.x)
        self.target = torch.full((), -1, dtype=torch.long, device=device)  # −1: the top-1 class of f(x)
        warm_up(self._run, device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = self._run()

    def _run(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, b = self.x, self.b
        with torch.no_grad(), autocast(self.device, self.precision, cache=False):
            ends = self.net(torch.cat([x, b])).float()
        target = torch.where(self.target >= 0, self.target, ends[0].argmax())
        diff = x - b
        total = torch.zeros_like(x)
        for start in range(0, self.alphas.shape[0], self.chunk):
            alphas = self.alphas[start : start + self.chunk]
            scaled = (b + alphas * diff).requires_grad_()  # Captum's scaled features
            with torch.enable_grad(), autocast(self.device, self.precision, cache=False):
                out = self.net(scaled).float()
            picked = out.gather(1, target.view(1, 1).expand(out.shape[0], 1)).sum()
            (grad,) = torch.autograd.grad(picked, scaled)
            total += (grad * self.weights[start : start + self.chunk]).sum(0, keepdim=True)
        attr = total * diff
        ends = ends.index_select(1, target.view(1)).double()  # a tensor index: no read-back (ends[0, t] reads t)
        scalars = torch.stack([target.double(), ends[0, 0], ends[1, 0], attr.double().sum()])
        return attr, scalars

    def __call__(
        self, x: torch.Tensor, baseline: torch.Tensor, target: int | None = None
    ) -> tuple[torch.Tensor, int, float, float, float]:
        """→ (attributions on the GPU — a fresh tensor —, target, f(x), f(baseline), Σ attributions)."""
        if tuple(x.shape) != self.shape or tuple(baseline.shape) != self.shape:
            raise InputError(f"This GraphedIG was captured for shape {self.shape}; got {tuple(x.shape)}.")
        self.x.copy_(x)
        self.b.copy_(baseline)
        self.target.fill_(-1 if target is None else target)
        self.graph.replay()
        attr, scalars = self.outputs
        t, fx, fb, total = scalars.tolist()
        return attr.clone(), int(t), fx, fb, total

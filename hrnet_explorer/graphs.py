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

import copy
import functools
from collections.abc import Callable

import torch
from torch import nn

from .fold import fast_copy
from .images import check_input_tensor
from .runtime import Precision, autocast
from .trace import Keep, Trace, _check_hrnet, _hooks_for, _Recorder, _trace_of, hooks_installed
from .zoo import LoadedModel

__all__ = ["GraphTracer", "GraphedForward", "fast_model", "warm_up"]


def fast_model(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of ``model`` in channels_last memory format (the caller's model is untouched)."""
    net = copy.deepcopy(_check_hrnet(model)).eval()
    return net.to(memory_format=torch.channels_last) if channels_last else net


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
    LoadedModel's) runs under bf16 autocast; ``channels_last`` converts a private copy of the model.
    ``fold``: BatchNorm folded into that copy's convolutions before capture (:mod:`hrnet_explorer.fold`):
    faster, and within ``FAST_RTOL["cuda"]`` of the exact trace instead of bit-exact.
    Calls with another shape raise; build one tracer per shape (warm-up and capture take ~1 s).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        batch_size: int = 1,
        input_size: int | None = None,
        *,
        keep: Keep = "all",
        precision: Precision | None = None,
        channels_last: bool = True,
        warmup: int = 3,
        fold: bool = False,
    ):
        if loaded.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device; this model is on {loaded.device}. Use trace().")
        if keep not in ("all", "outputs", "summaries"):
            raise ValueError(f"keep must be 'all', 'outputs' or 'summaries', not {keep!r}.")
        size = input_size or loaded.data_config["input_size"][-1]
        self.loaded = loaded
        self.input_shape = (batch_size, 3, size, size)
        self.precision = precision or loaded.precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = fast_copy(loaded.model, channels_last) if fold else fast_model(loaded.model, channels_last)
        self.fold = fold
        self.static_input = check_input_tensor(
            torch.zeros(batch_size, 3, size, size, device=loaded.device).contiguous(memory_format=self.memory_format)
        )
        self._recorder = _Recorder(keep, None, None)
        self.graph = torch.cuda.CUDAGraph()
        self._capture(warmup)

    def _capture(self, warmup: int) -> None:
        device = self.loaded.device

        def forward():
            with torch.inference_mode(), autocast(device, self.precision, cache=False):
                self.net(self.static_input)

        warm_up(forward, device, warmup)
        rec = self._recorder
        with (
            hooks_installed(_hooks_for(self.net, rec)),
            torch.inference_mode(),
            autocast(device, self.precision, cache=False),
            torch.cuda.graph(self.graph),
        ):
            rec.put("logits", self.net(self.static_input))

    def __call__(self, x: torch.Tensor) -> Trace:
        """Copy ``x`` into the static input, replay, and return the trace (valid until the next call)."""
        x = check_input_tensor(x)
        if tuple(x.shape) != self.input_shape:
            raise ValueError(
                f"This GraphTracer was captured for inputs of shape {self.input_shape}; got {tuple(x.shape)}. "
                "Build a GraphTracer for that shape."
            )
        self.static_input.copy_(x, non_blocking=True)
        self.graph.replay()
        return _trace_of(self._recorder, self.net, tuple(x.shape), self.loaded, exact=not self.fold)


class GraphedForward:
    """``net``'s forward replayed from CUDA graphs for fixed input shapes; other calls run eagerly.

    ``grad_shapes``: shapes whose forward *and backward* (with respect to the input) are graphed
    with ``torch.cuda.make_graphed_callables`` — for gradient methods like Captum's Integrated
    Gradients, whose scaled-input batches have one shape. ``no_grad_shapes``: shapes whose forward
    under ``torch.no_grad()`` is graphed — e.g. the two single-image forwards of IG's convergence
    delta. Every graphed output is a fresh tensor (cloned out of the static buffer), so callers may
    keep it. ``net`` must be in eval mode with frozen parameters (a private copy).
    """

    def __init__(
        self,
        net: nn.Module,
        grad_shapes: tuple[tuple[int, ...], ...] = (),
        no_grad_shapes: tuple[tuple[int, ...], ...] = (),
        precision: Precision = "fp32",
    ):
        param = next(net.parameters())
        if param.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device; this model is on {param.device}.")
        if net.training or any(p.requires_grad for p in net.parameters()):
            raise ValueError("GraphedForward needs an eval-mode model with frozen parameters (a private copy).")
        self.net, self.precision, self.device = net, precision, param.device
        self._grad: dict[tuple[int, ...], object] = {}
        self._no_grad: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

        def forward(x: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, precision, cache=False):
                return net(x)

        self._forward = forward
        for shape in grad_shapes:
            sample = torch.zeros(shape, device=self.device, requires_grad=True)
            self._grad[tuple(shape)] = torch.cuda.make_graphed_callables(forward, (sample,))
        for shape in no_grad_shapes:
            static_in = torch.zeros(shape, device=self.device)
            warm_up(torch.no_grad()(functools.partial(forward, static_in)), self.device)
            graph = torch.cuda.CUDAGraph()
            with torch.no_grad(), torch.cuda.graph(graph):
                static_out = forward(static_in)
            self._no_grad[tuple(shape)] = (graph, static_in, static_out)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if torch.is_grad_enabled() and x.requires_grad and shape in self._grad:
            return self._grad[shape](x)
        if not torch.is_grad_enabled() and shape in self._no_grad:
            graph, static_in, static_out = self._no_grad[shape]
            static_in.copy_(x)
            graph.replay()
            return static_out.clone()
        return self._forward(x)

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
from dataclasses import dataclass

import torch
from torch import nn

from .images import check_input_tensor
from .runtime import Precision, autocast
from .trace import Keep, Trace, _check_hrnet, _hooks_for, _Recorder, _trace_of, hooks_installed
from .zoo import LoadedModel

__all__ = ["GraphTracer", "fast_model"]


def fast_model(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy of ``model`` in channels_last memory format (the caller's model is untouched)."""
    net = copy.deepcopy(_check_hrnet(model)).eval()
    return net.to(memory_format=torch.channels_last) if channels_last else net


@dataclass(frozen=True)
class GraphKey:
    batch_size: int
    height: int
    width: int


class GraphTracer:
    """A traced forward of one (model, batch size, input size) captured as a CUDA graph.

    ``keep`` as in :func:`~hrnet_explorer.trace.trace`. ``precision`` "bf16" (default: the
    LoadedModel's) runs under bf16 autocast; ``channels_last`` converts a private copy of the model.
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
    ):
        if loaded.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device; this model is on {loaded.device}. Use trace().")
        if keep not in ("all", "outputs", "summaries"):
            raise ValueError(f"keep must be 'all', 'outputs' or 'summaries', not {keep!r}.")
        size = input_size or loaded.data_config["input_size"][-1]
        self.loaded = loaded
        self.key = GraphKey(batch_size, size, size)
        self.precision = precision or loaded.precision
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = fast_model(loaded.model, channels_last)
        self.static_input = check_input_tensor(
            torch.zeros(batch_size, 3, size, size, device=loaded.device).contiguous(memory_format=self.memory_format)
        )
        self._recorder = _Recorder(keep, None, None)
        self.graph = torch.cuda.CUDAGraph()
        self._capture(warmup)

    def _capture(self, warmup: int) -> None:
        device = self.loaded.device
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.inference_mode(), autocast(device, self.precision, cache=False):
            for _ in range(warmup):  # cuDNN autotuning and lazy inits happen outside the graph
                self.net(self.static_input)
        torch.cuda.current_stream(device).wait_stream(side)
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
        if tuple(x.shape) != (self.key.batch_size, 3, self.key.height, self.key.width):
            raise ValueError(
                f"This GraphTracer was captured for inputs of shape "
                f"{(self.key.batch_size, 3, self.key.height, self.key.width)}; got {tuple(x.shape)}. "
                "Build a GraphTracer for that shape."
            )
        self.static_input.copy_(x, non_blocking=True)
        self.graph.replay()
        return _trace_of(self._recorder, self.net, tuple(x.shape), self.loaded)

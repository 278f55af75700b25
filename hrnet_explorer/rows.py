"""The device side of an `analyze` row: uint8 crops in, top-5, stream energies, stage-4 fusion shares and
stream knockouts out — on CUDA as one CUDA graph per batch.

Forward hooks reduce each module's outputs to a few numbers per image while the forward runs, so nothing
map-sized is kept: normalisation, the forward, every statistic and the top-5 are one graph replay, and only a few
hundred numbers per image are copied back (asynchronously, into pinned memory, while the next batch runs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .anatomy import ModuleRef, module_refs
from .copies import private_copy
from .errors import InputError
from .fusion import share_rows
from .graphs import warm_up
from .hooks import Recorder, hooks_installed, hrnet_hooks, knockout_hooks, stream_edges
from .microscope.stats import UnitStats
from .runtime import autocast
from .zoo import LoadedModel

__all__ = ["RowEngine", "share_rows", "MEASURES", "SHARE_STAGE", "TOPK"]

MEASURES = ("energy_share", "agreement", "relu_share")
SHARE_STAGE = 4  # the stage whose fusion share matrices a row holds
TOPK = 5


def _mean_square(t: torch.Tensor) -> torch.Tensor:
    """‖t_b‖² / numel per sample, reduced in float32 without a float32 copy of ``t``."""
    return torch.linalg.vector_norm(t, dim=tuple(range(1, t.ndim)), dtype=torch.float32).square() / t[0].numel()


class _Stats(Recorder):
    """The hook engine's client that reduces each module's outputs to the row's numbers as the forward runs:
    every fused stream's energy, and stage 4's share matrices (only those modules' edges are hooked)."""

    record_maps = False

    def __init__(self, net: torch.nn.Module):
        self.refs = module_refs(net)
        self.values: dict[str, torch.Tensor] = {}
        self.energy_names = [f"energy.{r.name}.stream{i}" for r in self.refs for i in range(r.num_streams)]
        self.share_names = [
            f"{measure}.{r.name}.edge{j}to{i}"
            for r in self.refs
            if r.stage == SHARE_STAGE
            for measure in MEASURES
            for i in range(r.num_streams)
            for j in range(r.num_streams)
        ]
        self._edges: dict[str, list] = {}
        # A channel-padded copy's fused maps sliced back to their widths: the padded channels are zero, so only the
        # mean square (over the map's elements) would change; the shares' sums are the same either way.
        self.narrow: dict[str, int] = dict(getattr(net, "hrnet_explorer_widths", {}))
        self.hooks = hrnet_hooks(net, self)

    def edges_for(self, ref: ModuleRef) -> bool:
        return ref.stage == SHARE_STAGE

    def on_module_start(self, ref: ModuleRef) -> None:
        self._edges[ref.name] = [None] * ref.num_streams

    def on_edge(self, ref: ModuleRef, source: int, target: int, tensor: torch.Tensor) -> None:
        self._edges[ref.name][source] = tensor

    def on_fused(self, ref: ModuleRef, target: int, presum: torch.Tensor, fused: torch.Tensor) -> None:
        width = self.narrow.get(f"{ref.name}.fused{target}")
        self.values[f"energy.{ref.name}.stream{target}"] = _mean_square(fused if width is None else fused[:, :width])
        if ref.stage == SHARE_STAGE:
            rows = share_rows(self._edges[ref.name], presum)
            for measure, row in zip(MEASURES, rows, strict=True):
                for j in range(ref.num_streams):
                    self.values[f"{measure}.{ref.name}.edge{j}to{target}"] = row[:, j]
            self._edges[ref.name] = [None] * ref.num_streams

    def collect(self) -> dict[str, torch.Tensor]:
        out = {
            "energy": torch.stack([self.values[n] for n in self.energy_names], 1),
            "shares": torch.stack([self.values[n] for n in self.share_names], 1),
        }
        self.values = {}
        return out


@dataclass
class _Pending:
    """One submitted batch: its results once ``get()`` returns (waits for the device)."""

    n: int
    host: dict[str, torch.Tensor]
    event: torch.cuda.Event | None = None

    def get(self) -> dict[str, np.ndarray]:
        if self.event is not None:
            self.event.synchronize()
        return {k: v[: self.n].numpy().copy() for k, v in self.host.items()}


class RowEngine:
    """The device side of a row: uint8 crops in, top-5 and statistics out, for one model.

    ``submit(x)`` takes a uint8 [n ≤ batch_size, 3, S, S] CPU batch and returns a pending result; on CUDA
    the whole computation (normalisation, forward with hooks, statistics, top-5, knockouts) is one CUDA
    graph, replayed per batch, and its small outputs are copied to pinned memory asynchronously, so the
    next batch can be submitted before this one is read. ``stats=False``: the plain forward and top-5
    only (the baseline of the benchmarks). ``fast`` (default: on CUDA): run the BatchNorm-folded copy with channel
    widths padded to multiples of 8 (:mod:`hrnet_explorer.copies`; statistics within ``FAST_RTOL["cuda"]`` of the
    exact copy's); False: the exact copy. ``unit_maps``: also each of these maps' per-channel mean, max and argmax
    (:class:`~hrnet_explorer.microscope.stats.UnitStats`; columns ``unit_names``).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        batch_size: int,
        input_size: int,
        *,
        reliance: bool = False,
        stats: bool = True,
        channels_last: bool = True,
        use_graphs: bool | None = None,
        fast: bool | None = None,
        unit_maps: tuple[str, ...] = (),
    ):
        self.loaded, self.batch_size, self.size = loaded, batch_size, input_size
        self.device = loaded.device
        self.cuda = self.device.type == "cuda"
        self.graphs = self.cuda if use_graphs is None else use_graphs
        if self.graphs and not self.cuda:
            raise InputError("CUDA graphs need a CUDA device.")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # A private copy in this layout; its lock is held around every forward and the capture.
        fast = self.cuda if fast is None else fast
        self.copy = private_copy(loaded.model, "padded" if fast else "exact", channels_last=channels_last)
        self.net = self.copy.net
        cfg = loaded.data_config
        self.mean = torch.tensor(cfg["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=self.device).view(1, 3, 1, 1)
        self.stats = _Stats(self.net) if stats else None
        if unit_maps and not stats:
            raise InputError("unit_maps need stats=True.")
        self.units = UnitStats(self.net, unit_maps) if unit_maps else None
        self.unit_names = self.units.names if self.units else []
        self.num_classes = self.net.num_classes
        self.topk = min(TOPK, self.num_classes)
        self.final_streams = module_refs(self.net)[-1].num_streams
        # A stream's knockout as resolution_reliance's (self_edge=False): its edges into the other streams, everywhere.
        refs = module_refs(self.net)
        self.knockouts = (
            [knockout_hooks(self.net, stream_edges(refs, k)) for k in range(self.final_streams)] if reliance else []
        )
        self.energy_names = self.stats.energy_names if stats else []
        self.share_names = self.stats.share_names if stats else []
        self.reliance_names = [f"reliance.stream{k}" for k in range(len(self.knockouts))]
        self._slot = 0
        if self.graphs:
            self._capture()

    def _compute(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 [B, 3, S, S] on the device → top-5 indices and probabilities, statistics, reliance."""
        with self.copy.lock:  # hooks go on the shared copy (or, under capture, are recorded into the graph)
            return self._forward(x)

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        xf = ((x.float() / 255.0 - self.mean) / self.std).contiguous(memory_format=self.memory_format)
        precision = self.loaded.precision
        with torch.inference_mode(), autocast(self.device, precision, cache=not self.graphs):
            if self.stats is not None:
                with hooks_installed(self.stats.hooks + (self.units.hooks if self.units else [])):
                    logits = self.net(xf)
                out = self.stats.collect()
                if self.units is not None:
                    out.update(self.units.collect())
            else:
                logits, out = self.net(xf), {}
            probs = logits.float().softmax(-1)
            out["top_p"], out["top_i"] = probs.topk(self.topk, dim=1)
            reliance = []
            for hooks in self.knockouts:
                with hooks_installed(hooks):
                    after = self.net(xf).float().softmax(-1)
                reliance.append(after.gather(1, out["top_i"][:, :1])[:, 0] - out["top_p"][:, 0])
            if reliance:
                out["reliance"] = torch.stack(reliance, 1)
        return out

    def _capture(self) -> None:
        self.static_in = torch.zeros(self.batch_size, 3, self.size, self.size, dtype=torch.uint8, device=self.device)
        warm_up(lambda: self._compute(self.static_in), self.device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_out = self._compute(self.static_in)
        # Two pinned host copies of the outputs: batch t is read while batch t+1 runs.
        self.host = [{k: torch.empty(v.shape, dtype=v.dtype, pin_memory=True) for k, v in self.static_out.items()}]
        self.host.append({k: torch.empty_like(v, pin_memory=True) for k, v in self.host[0].items()})

    def submit(self, x: torch.Tensor) -> _Pending:
        n = x.shape[0]
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != (3, self.size, self.size) or not 0 < n <= self.batch_size:
            raise ValueError(
                f"Expected a uint8 [n ≤ {self.batch_size}, 3, {self.size}, {self.size}] batch, got "
                f"{x.dtype} {tuple(x.shape)}."
            )
        if not self.graphs:
            out = self._compute(x.to(self.device, non_blocking=True))
            return _Pending(n, {k: v.cpu() for k, v in out.items()})
        self.static_in[:n].copy_(x, non_blocking=True)  # rows ≥ n keep old data: their results are dropped
        self.graph.replay()
        host = self.host[self._slot]
        self._slot ^= 1
        for k, v in self.static_out.items():
            host[k].copy_(v, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return _Pending(n, host, event)

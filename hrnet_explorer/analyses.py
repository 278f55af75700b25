"""Analyses over a :class:`~hrnet_explorer.trace.Trace`: stream-to-stream flows, a fused map taken apart into
its sources, and how exactly the sources reconstruct it. The maths they use is :mod:`hrnet_explorer.fusion`'s."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .anatomy import ModuleRef
from .errors import InputError
from .fusion import MEASURES, FusionStats
from .trace import Trace

__all__ = ["Decomposition", "Flow", "decompose", "fusion_flows", "module_fusion", "reconstruction_error"]


def module_fusion(trace: Trace) -> dict[str, FusionStats]:
    """Every module's :class:`~hrnet_explorer.fusion.FusionStats`, by module name in forward order (what the fusion
    figures draw)."""
    return {r.name: trace.fusion(r.stage, r.index) for r in trace.modules}


@dataclass(frozen=True)
class Flow:
    """One stream → stream flow of a Sankey: from ``source`` at position ``step`` to ``target`` at ``step+1``."""

    step: int  # 0 = input of the first HighResolutionModule
    label: str  # e.g. "stage3.module1" or "transition3"
    source: int
    target: int
    weight: float


def fusion_flows(trace: Trace, measure: str = "energy_share", sample: int = 0) -> list[Flow]:
    """Every stream → stream flow of the network, in forward order, for a Sankey diagram.

    Position 0 holds the inputs of the first HighResolutionModule (``transition1``'s streams). Each
    module is one step: a flow from source j to target i weighs ``measure[target i, source j]`` (signed
    for "agreement"). Each transition that creates a stream is one step too: the new stream gets a flow
    of weight 1 from the previous lowest-resolution stream (it is computed from it), and the other
    streams pass through with weight 1.
    """
    if measure not in MEASURES:
        raise InputError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
    flows: list[Flow] = []
    step = 0
    previous: ModuleRef | None = None
    for ref in trace.modules:
        if previous is not None and ref.num_streams > previous.num_streams:
            label, n = f"transition{ref.stage - 1}", previous.num_streams
            flows += [Flow(step, label, k, k, 1.0) for k in range(n)]
            flows += [Flow(step, label, n - 1, k, 1.0) for k in range(n, ref.num_streams)]
            step += 1
        matrix = trace.fusion(ref.stage, ref.index).matrix(measure, sample)
        flows += [
            Flow(step, ref.name, j, i, float(matrix[i, j]))
            for i in range(ref.num_streams)
            for j in range(ref.num_streams)
        ]
        step += 1
        previous = ref
    return flows


@dataclass(frozen=True)
class Decomposition:
    """One fused map taken apart: ``fused = ReLU(presum)``, ``presum = Σ_j contributions[j]``.

    Tensors are [B, C, H, W] at the target stream's resolution, as captured (no copies).
    """

    module: str  # e.g. "stage4.module0"
    stage: int
    index: int
    target: int  # the target stream i
    contributions: list[torch.Tensor]  # contributions[j]: what source j sends (its fuse edge into i)
    presum: torch.Tensor  # Σ_j contributions[j], the input of the shared ReLU
    fused: torch.Tensor  # ReLU(presum): the module's output for stream i
    energy_share: torch.Tensor  # [B, N]: this target's row of the module's energy shares
    agreement: torch.Tensor  # [B, N]
    relu_share: torch.Tensor  # [B, N]
    max_error: float  # max(|Σ_j contributions − presum|, |ReLU(Σ_j contributions) − fused|), 0 in fp32

    @property
    def sources(self) -> list[int]:
        return list(range(len(self.contributions)))


def decompose(trace: Trace, stage: int, module: int, target: int) -> Decomposition:
    """Take the fused output of stream ``target`` of module ``module`` (negative counts from the end) of
    ``stage`` apart into what each source stream sent. Needs a trace with ``keep="all"``."""
    ref = trace.module(stage, module)
    if not 0 <= target < ref.num_streams:
        raise InputError(f"{ref.name} has streams 0..{ref.num_streams - 1}; got target stream {target}.")
    p = ref.name
    parts = [trace[f"{p}.edge{j}to{target}"] for j in range(ref.num_streams)]
    presum, fused = trace[f"{p}.presum{target}"], trace[f"{p}.fused{target}"]
    error = _stream_error(parts, presum, fused)
    stats = trace.fusion(ref.stage, ref.index)
    return Decomposition(
        p,
        ref.stage,
        ref.index,
        target,
        parts,
        presum,
        fused,
        stats.energy_share[:, target],
        stats.agreement[:, target],
        stats.relu_share[:, target],
        error,
    )


def _stream_error(parts: list[torch.Tensor], presum: torch.Tensor, fused: torch.Tensor) -> float:
    """max(|Σ_j parts − presum|, |ReLU(Σ_j parts) − fused|), summed left to right in the maps' dtype as the module
    adds them, so it is exactly 0 for a trace whose identities hold (exact, folded or padded; fp32 or bf16)."""
    total = parts[0]
    for part in parts[1:]:  # in the maps' own dtype, as the module adds them (bf16 under bf16 autocast)
        total = total + part
    total = total.float()
    return max(
        float((total - presum.float()).abs().max()),
        float((total.clamp_min(0) - fused.float()).abs().max()),
    )


def reconstruction_error(trace: Trace, stage: int, index: int) -> float:
    """The worst :attr:`Decomposition.max_error` over the module's target streams — zero when the trace is exact.
    Needs a trace with ``keep="all"``."""
    ref = trace.module(stage, index)
    p, n = ref.name, ref.num_streams
    return max(
        _stream_error([trace[f"{p}.edge{j}to{i}"] for j in range(n)], trace[f"{p}.presum{i}"], trace[f"{p}.fused{i}"])
        for i in range(n)
    )

"""Analyses of how HRNet's streams exchange information — pure tensor maths over captured maps.

Definitions, for one HighResolutionModule, target stream i and source stream j, with
``e_ij = fuse_layers[i][j](branch_j)`` (already at stream i's resolution), the pre-activation
``z_i = Σ_j e_ij`` and the fused output ``r_i = ReLU(z_i)``; ⟨a, b⟩ sums over channels and pixels
of one sample:

- energy share   ``‖e_ij‖² / Σ_k ‖e_ik‖²`` — non-negative, rows sum to 1: how loud each source is;
- agreement      ``⟨e_ij, z_i⟩ / ‖z_i‖²`` — rows sum to 1, negative when a source opposes the sum;
- ReLU share     ``⟨e_ij, r_i⟩ / ‖r_i‖²`` — rows sum to 1 (since ⟨z_i, r_i⟩ = ‖r_i‖²): each source's
  part of what survives the activation;
- active fraction: the share of z_i's elements that are > 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # trace.py imports this module: no runtime import the other way
    from .trace import ModuleRef, Trace

__all__ = [
    "FusionStats",
    "fusion_stats",
    "stack_fusion_stats",
    "Flow",
    "fusion_flows",
    "Decomposition",
    "decompose",
    "MEASURES",
    "spatial_summary",
    "summarize_map",
]

MEASURES = ("energy_share", "agreement", "relu_share")


@dataclass(frozen=True)
class FusionStats:
    """Per-sample fusion statistics of one module: tensors [B, N, N] indexed [sample, target, source].

    Tensors are float32 on the device of the maps they were computed from.
    """

    energy_share: torch.Tensor
    agreement: torch.Tensor
    relu_share: torch.Tensor
    active_fraction: torch.Tensor  # [B, N]

    @property
    def num_streams(self) -> int:
        return self.energy_share.shape[-1]

    def matrix(self, measure: str = "energy_share", sample: int = 0) -> torch.Tensor:
        """One [target, source] matrix for one sample."""
        if measure not in MEASURES:
            raise ValueError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
        return getattr(self, measure)[sample]


def fusion_row(edges: Sequence[torch.Tensor], presum: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Energy share, agreement, ReLU share ([B, N] each) and active fraction ([B]) of one target.

    One pass over the edges: they are stacked to [B, N, D] (float32) and multiplied by [z, ReLU(z)]
    ([B, D, 2]) in one batched matmul; the small results are divided in float64. Energy shares sum to
    1 exactly; agreement and ReLU shares to 1 within ~1e-4 (float32 dot products over ~10^5 elements).
    """
    b = presum.shape[0]
    tiny = torch.finfo(torch.float64).tiny
    flat = torch.stack([e.reshape(b, -1) for e in edges], 1).float()  # [B, N, D]
    z = presum.reshape(b, -1).float()
    zr = torch.stack([z, z.clamp_min(0)], 2)  # [B, D, 2]
    dots = torch.bmm(flat, zr).double()  # [B, N, 2]: ⟨e_j, z⟩ and ⟨e_j, ReLU(z)⟩
    energy = torch.linalg.vector_norm(flat, dim=-1).double().square()  # [B, N]
    norms = torch.linalg.vector_norm(zr, dim=1).double().square().clamp_min(tiny)  # [B, 2]
    energy_share = energy / energy.sum(1, keepdim=True).clamp_min(tiny)
    return energy_share, dots[..., 0] / norms[:, :1], dots[..., 1] / norms[:, 1:], (z > 0).double().mean(1)


def stack_fusion_stats(rows: Sequence[tuple[torch.Tensor, ...]]) -> FusionStats:
    """Assemble per-target rows (from :func:`fusion_row`) into one module's :class:`FusionStats`."""
    cols = list(zip(*rows, strict=True))
    # float32 on the device the maps were on: no host sync, so this also runs inside a CUDA graph.
    return FusionStats(*(torch.stack(c, dim=1).float() for c in cols))


def fusion_stats(edges: Sequence[Sequence[torch.Tensor]], presums: Sequence[torch.Tensor]) -> FusionStats:
    """Statistics of a module from ``edges[i][j]`` (source j into target i) and pre-activations."""
    if len(edges) != len(presums):
        raise ValueError(f"{len(edges)} rows of edges but {len(presums)} pre-activations.")
    return stack_fusion_stats([fusion_row(row, z) for row, z in zip(edges, presums, strict=True)])


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
        raise ValueError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
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


def _resolve_module(trace: Trace, stage: int, module: int) -> ModuleRef:
    """``module`` may count from the end (-1: the stage's last module)."""
    refs = [r for r in trace.modules if r.stage == stage]
    if not refs:
        raise ValueError(f"No stage {stage}; HRNet's fusing stages are 2, 3 and 4.")
    if not -len(refs) <= module < len(refs):
        raise ValueError(f"Stage {stage} has {len(refs)} module(s) (0..{len(refs) - 1}); got module {module}.")
    return refs[module]


@dataclass(frozen=True)
class Decomposition:
    """One fused map taken apart: ``fused = ReLU(presum)``, ``presum = Σ_j contributions[j]``.

    Tensors are [B, C, H, W] at the target stream's resolution, as captured (no copies).
    """

    module: str  # e.g. "stage4.module0"
    stage: int
    index: int
    target: int  # the target stream i
    contributions: list[torch.Tensor]  # contributions[j] = fuse_layers[i][j](branch j): what source j sends
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
    ref = _resolve_module(trace, stage, module)
    if not 0 <= target < ref.num_streams:
        raise ValueError(f"{ref.name} has streams 0..{ref.num_streams - 1}; got target stream {target}.")
    p = ref.name
    parts = [trace[f"{p}.edge{j}to{target}"] for j in range(ref.num_streams)]
    presum, fused = trace[f"{p}.presum{target}"], trace[f"{p}.fused{target}"]
    total = parts[0].float()
    for part in parts[1:]:  # left to right, as the module adds them: the error is exactly 0 in fp32
        total = total + part.float()
    error = max(
        float((total - presum.float()).abs().max()),
        float((total.clamp_min(0) - fused.float()).abs().max()),
    )
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


def spatial_summary(feature: torch.Tensor, method: str = "l2", size: tuple[int, int] | None = None) -> torch.Tensor:
    """Reduce one map [C, H, W] (or [1, C, H, W]) to an image, optionally resized to ``size`` (H, W).

    ``"mean"``: channel mean [H, W]; ``"l2"``: channel L2 norm [H, W]; ``"pca"``: the first three
    principal components over channels, each scaled to [0, 1], as RGB [H, W, 3].
    """
    if feature.ndim == 4:
        if feature.shape[0] != 1:
            raise ValueError(f"spatial_summary takes one map; got a batch of {feature.shape[0]}.")
        feature = feature[0]
    if feature.ndim != 3:
        raise ValueError(f"Expected a [C, H, W] map, got shape {tuple(feature.shape)}.")
    x = feature.detach().float()
    if method == "mean":
        out = x.mean(0, keepdim=True)
    elif method == "l2":
        out = x.norm(dim=0, keepdim=True)
    elif method == "pca":
        c, h, w = x.shape
        flat = x.reshape(c, h * w).T  # pixels × channels
        flat = flat - flat.mean(0, keepdim=True)
        k = min(3, c, h * w)
        # Principal axes from the C×C covariance (much faster on CPU than an SVD of pixels × channels);
        # each axis's sign is fixed so that its largest loading is positive.
        flat64 = flat.double()
        _, vecs = torch.linalg.eigh(flat64.T @ flat64)
        v = vecs[:, -k:].flip(-1)  # channels × k, largest variance first
        v = v * torch.sign(v.gather(0, v.abs().argmax(0, keepdim=True))).clamp_min(0).mul(2).sub(1)
        comps = (flat64 @ v).float()  # pixels × k
        lo, hi = comps.min(0).values, comps.max(0).values
        comps = (comps - lo) / (hi - lo).clamp_min(1e-12)
        if k < 3:
            comps = F.pad(comps, (0, 3 - k))
        out = comps.T.reshape(3, h, w)
    else:
        raise ValueError(f"Unknown summary {method!r}; choose 'mean', 'l2' or 'pca'.")
    if size is not None and tuple(out.shape[-2:]) != tuple(size):
        out = F.interpolate(out[None], size=size, mode="bilinear", align_corners=False)[0]
        if method == "pca":
            out = out.clamp(0, 1)
    return out.permute(1, 2, 0) if method == "pca" else out[0]


def summarize_map(feature: torch.Tensor) -> dict[str, torch.Tensor]:
    """The small per-sample summaries kept by ``keep="summaries"`` traces: channel mean and L2 maps."""
    x = feature.detach().float()
    return {"mean": x.mean(1), "l2": x.norm(dim=1)}

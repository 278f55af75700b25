"""How HRNet's streams exchange information — pure tensor maths over captured maps (no Trace: the analyses over
a Trace are :mod:`hrnet_explorer.analyses`).

Definitions, for one HighResolutionModule, target stream i and source stream j, with
``e_ij`` what stream j's fuse edge sends to stream i (already at stream i's resolution), the pre-activation
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

import torch
import torch.nn.functional as F

from .errors import InputError

__all__ = [
    "FusionStats",
    "fusion_row",
    "share_rows",
    "stack_fusion_stats",
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
            raise InputError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
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


def share_rows(edges: Sequence[torch.Tensor], presum: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Energy share, agreement and ReLU share ([B, N] each) of one target stream, as :func:`fusion_row` defines
    them, by reductions in float32 over the maps' own dtype (no stacked float32 copy; under bf16 autocast the
    products are rounded to bf16): what the dataset engine computes inside its CUDA graph."""
    dims = tuple(range(1, presum.ndim))
    tiny = torch.finfo(torch.float32).tiny
    relu = presum.clamp_min(0)
    energy = torch.stack([torch.linalg.vector_norm(e, dim=dims, dtype=torch.float32).square() for e in edges], 1)
    dz = torch.stack([(e * presum).sum(dims, dtype=torch.float32) for e in edges], 1)
    dr = torch.stack([(e * relu).sum(dims, dtype=torch.float32) for e in edges], 1)
    nz = torch.linalg.vector_norm(presum, dim=dims, dtype=torch.float32).square().clamp_min(tiny)
    nr = torch.linalg.vector_norm(relu, dim=dims, dtype=torch.float32).square().clamp_min(tiny)
    return energy / energy.sum(1, keepdim=True).clamp_min(tiny), dz / nz[:, None], dr / nr[:, None]


def spatial_summary(feature: torch.Tensor, method: str = "l2", size: tuple[int, int] | None = None) -> torch.Tensor:
    """Reduce one map [C, H, W] (or [1, C, H, W]) to an image, optionally resized to ``size`` (H, W).

    ``"mean"``: channel mean [H, W]; ``"l2"``: channel L2 norm [H, W]; ``"pca"``: the first three
    principal components over channels, each scaled to [0, 1], as RGB [H, W, 3].
    """
    if feature.ndim == 4:
        if feature.shape[0] != 1:
            raise InputError(f"spatial_summary takes one map; got a batch of {feature.shape[0]}.")
        feature = feature[0]
    if feature.ndim != 3:
        raise InputError(f"Expected a [C, H, W] map, got shape {tuple(feature.shape)}.")
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
        raise InputError(f"Unknown summary {method!r}; choose 'mean', 'l2' or 'pca'.")
    if size is not None and tuple(out.shape[-2:]) != tuple(size):
        out = F.interpolate(out[None], size=size, mode="bilinear", align_corners=False)[0]
        if method == "pca":
            out = out.clamp(0, 1)
    return out.permute(1, 2, 0) if method == "pca" else out[0]


def summarize_map(feature: torch.Tensor) -> dict[str, torch.Tensor]:
    """The small per-sample summaries kept by ``keep="summaries"`` traces: channel mean and L2 maps."""
    x = feature.detach().float()
    return {"mean": x.mean(1), "l2": x.norm(dim=1)}

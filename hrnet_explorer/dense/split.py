"""The exact per-stream split of HRNetV2's head — pure tensor maths, no model, no Trace.

The head's first layer is a 1×1 convolution on the concatenated upsampled streams ``u = [u_0; u_1; u_2; u_3]``,
followed by BatchNorm (an affine map per channel in eval mode). Folded together they are one linear map
``z = A u + c``; cutting ``A`` into its column blocks ``A_k`` (stream k's channels) gives, at every pixel,

    z = Σ_k A_k u_k + c         (contribution_k = A_k u_k; c: the folded bias)

exactly (fp32 rounding aside: :attr:`HeadSplit.presum_error`). The class scores are ``s = W ReLU(z) + b``; with
the ReLU's gate ``g = 1[z > 0]`` of that very pixel, ``ReLU(z) = g ⊙ z``, so

    s = Σ_k W (g ⊙ A_k u_k) + (W (g ⊙ c) + b)

also exactly: every class score of every pixel is a sum of one part per stream and a bias part. The scores are
upsampled to the input bilinearly, a linear map, so the parts upsample to parts of the upsampled scores.

Per-pixel measures (as :mod:`hrnet_explorer.fusion` defines them per module), each [B, streams, h, w]:
energy share ``‖A_k u_k‖² / Σ_j ‖A_j u_j‖²``; ReLU share ``⟨A_k u_k, ReLU(z)⟩ / ‖ReLU(z)‖²`` (with the bias's
share, the shares sum to 1 wherever some channel is active).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError

__all__ = ["HeadSplit", "fold_conv_bn", "split_head"]


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, c)`` with ``bn(conv(u)) == A u + c`` per pixel for a 1×1 ``conv`` (eval-mode ``bn``): A [out, in]."""
    if conv.kernel_size != (1, 1):
        raise ValueError(f"The head split needs a 1×1 convolution, got {conv.kernel_size}.")
    scale = bn.weight.detach().double() * torch.rsqrt(bn.running_var.double() + bn.eps)
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
    a = conv.weight.detach().double()[:, :, 0, 0] * scale[:, None]
    c = (bias - bn.running_mean.double()) * scale + bn.bias.detach().double()
    return a.float(), c.float()


@dataclass(frozen=True)
class HeadSplit:
    """Every pixel's head pre-activation and class scores split into one part per stream plus a bias part.

    Tensors are float32 at stride 4 (the head's resolution), on the device of the maps they came from. Index
    ``K`` (= ``num_streams``) of ``relu_parts`` and ``score_parts`` is the bias part."""

    energy: torch.Tensor  # [B, K, h, w]: ‖A_k u_k‖² over the head's channels
    relu_parts: torch.Tensor  # [B, K+1, h, w]: ⟨A_k u_k, ReLU(z)⟩ (K: ⟨c, ReLU(z)⟩); Σ over parts = ‖ReLU(z)‖²
    score_parts: torch.Tensor  # [B, K+1, classes, h, w]: W (g ⊙ A_k u_k) (K: W (g ⊙ c) + b); Σ = the scores
    presum_error: float  # max |Σ_k A_k u_k + c − z| / max |z|: the split against the model's own pre-activation
    scores_error: float  # max |Σ parts − s| / max |s|: against the model's own class scores

    @property
    def num_streams(self) -> int:
        return self.energy.shape[1]

    @property
    def energy_share(self) -> torch.Tensor:
        """[B, K, h, w], non-negative, summing to 1 over streams at every pixel."""
        return self.energy / self.energy.sum(1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)

    @property
    def relu_share(self) -> torch.Tensor:
        """[B, K+1, h, w] (K: the bias), summing to 1 over parts where some channel is active; 0 where none is."""
        total = self.relu_parts.sum(1, keepdim=True)
        return torch.where(total > 0, self.relu_parts / total.clamp_min(torch.finfo(torch.float32).tiny), 0.0)

    def class_parts(self, cls: int) -> torch.Tensor:
        """[B, K+1, h, w]: each stream's part (and the bias's) of class ``cls``'s score at every pixel."""
        n = self.score_parts.shape[2]
        if isinstance(cls, bool) or not isinstance(cls, int) or not 0 <= cls < n:
            raise InputError(f"class must be an index in 0..{n - 1}, got {cls!r}.")
        return self.score_parts[:, :, cls]

    def to_dict(self) -> dict:
        return {
            "num_streams": self.num_streams,
            "presum_error": self.presum_error,
            "scores_error": self.scores_error,
            "mean_energy_share": self.energy_share.mean((0, 2, 3)).tolist(),
            "mean_relu_share": self.relu_share.mean((0, 2, 3)).tolist(),
        }


def _relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return float((approx - exact).abs().max() / exact.abs().max().clamp_min(torch.finfo(torch.float32).tiny))


def split_head(
    streams: Sequence[torch.Tensor],
    a: torch.Tensor,
    c: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor,
    presum: torch.Tensor,
    scores: torch.Tensor,
) -> HeadSplit:
    """Split the head on the upsampled ``streams`` (each [B, C_k, h, w]) with ``z = A u + c`` (:func:`fold_conv_bn`)
    and scores ``W ReLU(z) + b`` (``w`` [classes, C] or the 1×1 conv's [classes, C, 1, 1]); ``presum`` and
    ``scores`` are the model's own z and s, which the split reconstructs and whose gate it uses."""
    w = w.reshape(w.shape[0], -1).float()
    widths = [s.shape[1] for s in streams]
    if sum(widths) != a.shape[1] or a.shape[0] != presum.shape[1] or w.shape[1] != presum.shape[1]:
        raise ValueError(f"Streams of {widths} channels do not fit a head of {tuple(a.shape)} and {tuple(w.shape)}.")
    presum, scores = presum.float(), scores.float()
    gate = presum > 0
    relu = presum.clamp_min(0)
    energy, relu_parts, score_parts = [], [], []
    total = c.view(1, -1, 1, 1).expand_as(presum).clone()
    for a_k, u_k in zip(torch.split(a, widths, 1), streams, strict=True):
        part = torch.einsum("oc,bchw->bohw", a_k, u_k.float())
        total += part
        energy.append(part.square().sum(1))
        relu_parts.append((part * relu).sum(1))
        score_parts.append(torch.einsum("no,bohw->bnhw", w, part * gate))
    bias = c.view(1, -1, 1, 1)
    relu_parts.append((bias * relu).sum(1))
    score_parts.append(torch.einsum("no,bohw->bnhw", w, bias * gate) + b.view(1, -1, 1, 1))
    parts = torch.stack(score_parts, 1)
    return HeadSplit(
        energy=torch.stack(energy, 1),
        relu_parts=torch.stack(relu_parts, 1),
        score_parts=parts,
        presum_error=_relative_error(total, presum),
        scores_error=_relative_error(parts.sum(1), scores),
    )

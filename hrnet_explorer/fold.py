"""BatchNorm folded into the convolutions, module structure kept (for the private folded copies of
:mod:`hrnet_explorer.copies`); the fingerprint that tells when a model's weights changed.

In eval mode a BatchNorm is an affine map per channel, so ``bn(conv(x))`` equals one convolution with
scaled weights and a bias. :func:`fold_batchnorm` rewrites each conv/BN pair of timm's HRNet that way
and puts an ``nn.Identity`` where the BN was. Unlike ``torch.fx`` fusion (a flat ``GraphModule``),
every module the hook engine hooks (:mod:`hrnet_explorer.hooks`) stays where it was, so the same hooks
capture the same names, and the fusion identity
``fused_i = ReLU(Σ_j edge_j→i)`` still holds exactly within the folded model's own trace.

Pairs, from timm's hrnet.py / resnet.py: ``convK``→``bnK`` inside the stem, BasicBlocks and
Bottlenecks; ``Sequential(conv, bn, …)`` in downsample shortcuts, transitions, fuse edges,
``downsamp_modules`` and ``final_layer``. A BatchNorm without its convolution raises.

What the fold changes, numerically: the folded weights are computed in float64 and rounded once;
the convolutions then sum in another order. On a CPU in fp32 every map of the fast trace is within
1e-4 of its largest magnitude of the exact trace (measured: ~1e-6); see :data:`FAST_RTOL`.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "FAST_RTOL",
    "clear_hooks",
    "deviations",
    "fingerprint",
    "fold_batchnorm",
    "map_deviation",
    "worst_deviation",
]

#: The numerical contract of a fast (folded) trace against the exact trace, per map:
#: ``max|fast − exact| ≤ rtol · max|exact|``. "cpu": fp32 on a CPU. "cuda": fp32 with cuDNN's default
#: TF32 convolutions (both traces), or with bf16 autocast (both traces).
FAST_RTOL = {"cpu": 1e-4, "cuda": 1e-2}


def map_deviation(fast: torch.Tensor, exact: torch.Tensor) -> float:
    """FAST_RTOL's measure for one map: ``max|fast − exact| / max|exact|``, in float32 (an all-zero exact map
    counts as magnitude 1e-12)."""
    return float((fast.float() - exact.float()).abs().max()) / max(float(exact.float().abs().max()), 1e-12)


def deviations(fast, exact) -> dict[str, float]:
    """:func:`map_deviation` of trace ``fast`` from trace ``exact`` for every map ``exact`` holds, by name."""
    return {name: map_deviation(fast[name], ref) for name, ref in exact.maps.items()}


def worst_deviation(fast, exact) -> float:
    """The largest :func:`map_deviation` over every map of ``exact``: what FAST_RTOL bounds."""
    return max(deviations(fast, exact).values())


def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Rewrite ``conv`` in place so that ``conv(x) == bn(conv_old(x))`` (eval-mode statistics)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    dtype = conv.weight.dtype
    with torch.no_grad():
        w = conv.weight.double()
        b = (
            conv.bias.double()
            if conv.bias is not None
            else torch.zeros(w.shape[0], dtype=torch.float64, device=w.device)
        )
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(b)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(b)
        scale = gamma * torch.rsqrt(bn.running_var.double() + bn.eps)
        conv.weight = nn.Parameter((w * scale.reshape(-1, 1, 1, 1)).to(dtype), requires_grad=False)
        conv.bias = nn.Parameter(((b - bn.running_mean.double()) * scale + beta).to(dtype), requires_grad=False)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d of ``net`` into its convolution, in place; returns ``net`` (in eval mode).

    Each folded BN is replaced by ``nn.Identity``; raises ``ValueError`` for a BN with no convolution
    right before it (by timm's naming: ``convK``/``bnK`` siblings, or the previous entry of a Sequential).
    """
    net.eval()
    folded = 0
    for parent in list(net.modules()):
        children = list(parent.named_children())
        for k, (name, child) in enumerate(children):
            if not isinstance(child, nn.BatchNorm2d):
                continue
            if isinstance(parent, nn.Sequential):
                conv = children[k - 1][1] if k > 0 else None
            else:
                conv = getattr(parent, "conv" + name[2:], None) if name.startswith("bn") else None
            if not isinstance(conv, nn.Conv2d) or conv.out_channels != child.num_features:
                raise ValueError(f"BatchNorm {name!r} of {type(parent).__name__} has no convolution to fold into")
            _fold_pair(conv, child)
            setattr(parent, name, nn.Identity())
            folded += 1
    net.hrnet_explorer_folded = folded  # how many BatchNorms went (a plain attribute, for reports and tests)
    return net


_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def _version(t: torch.Tensor) -> int:
    try:
        return t._version
    except RuntimeError:  # inference tensors have no version counter
        return -1


def fingerprint(net: nn.Module) -> tuple:
    """Changes when a parameter or buffer is replaced, moved, or modified in place (load_state_dict).

    Writes through ``.data`` bypass the version counter: drop the cached copies after those.
    """
    # Each module's own dicts, not parameters() + buffers(): those dedupe through memo sets and take twice as
    # long, on every attribution and app request. A shared tensor is listed twice.
    tensors = [t for m in net.modules() for d in (m._parameters, m._buffers) for t in d.values() if t is not None]
    if not tensors:
        return ()
    # A move or a cast gives every tensor new storage (a new data_ptr); the first one's device and dtype guard
    # against an address reused across devices.
    return (str(tensors[0].device), tensors[0].dtype, *[(t.data_ptr(), _version(t)) for t in tensors])


def clear_hooks(module: nn.Module) -> None:
    """Remove every hook of ``module`` and its children (a deepcopy copies the caller's hooks too)."""
    for m in module.modules():
        for name in _HOOK_DICTS:
            hooks = getattr(m, name, None)
            if hooks:
                hooks.clear()

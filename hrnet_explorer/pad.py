"""Channel widths padded to multiples of 8, function preserved: a private padded copy of an HRNet.

Tensor cores want channel counts that are multiples of 8; HRNet's streams are 18/36/72/144 wide (w18), 30/60/…
(w30), 44/88/… (w44). The same architecture built with every stream width rounded up to a multiple of 8 runs
faster at large batches although it does more work (benchmarks/padding.py; the figures are in benchmarks/README.md):
the upper bound of what a padded copy can gain.

:func:`pad_channels` rewrites a private copy in place so that it computes the same function with wider tensors:
every ``Conv2d`` width ``C`` (in and out; ``C ≥ multiple`` and not a multiple of it; the network's input channels
stay as they are) becomes the next multiple, the new weights and biases are zero, and so every padded channel is
exactly 0 everywhere: a conv's padded outputs are 0 (zero weights, zero bias; its padded inputs meet zero weights),
ReLU(0) = 0, nearest upsampling, the fuse sums and the residual additions keep zeros, an unfolded ``BatchNorm2d`` is
padded with weight 0, bias 0, mean 0, variance 1 (0 ↦ 0), the classifier ``Linear`` gets zero input columns
(its 2048 inputs need none in timm's HRNets). Modules timm's HRNet uses: the stem, ``layer1`` (Bottlenecks with a
downsample), transitions, BasicBlock branches, fuse layers (1×1 conv + BN + Upsample, strided 3×3 conv chains),
``incre_modules``, ``downsamp_modules``, ``final_layer`` and the classifier. Any other module with parameters or
buffers, or a grouped convolution, is refused. The module structure is kept, so the trace hooks
(:func:`hrnet_explorer.hooks.hrnet_hooks`) capture the same names.

A map of the padded copy is sliced back to its original width (``t[:, :C]``, a view) before anyone sees it:
``net.hrnet_explorer_widths`` holds ``{trace name: original channels}`` for every name whose width changed, found
by running the hooks over a shape-only (``meta``) forward before and after padding (which also proves the padded
widths consistent). The trace recorder (``MapRecorder(narrow=...)``) and :func:`hrnet_explorer.compiled.trace_forward`
slice with it, so names, shapes and fusion statistics are those of the unpadded copy. Numerically the padded copy
is a fast copy (the convolutions sum in another order): within ``FAST_RTOL`` of the exact trace.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from .anatomy import check_hrnet
from .hooks import MapRecorder, hooks_installed, hrnet_hooks

__all__ = [
    "PAD_MULTIPLE",
    "needs_padding",
    "pad_channels",
    "padded_width",
    "padding_growth",
    "padding_pays",
    "trace_shapes",
]

#: The channel multiple tensor cores favour (bf16/fp16 on NVIDIA GPUs).
PAD_MULTIPLE = 8


def padded_width(channels: int, multiple: int = PAD_MULTIPLE) -> int:
    """``channels`` rounded up to a multiple of ``multiple``; widths below ``multiple`` (e.g. RGB's 3) stay."""
    if channels < multiple or channels % multiple == 0:
        return channels
    return -(-channels // multiple) * multiple


def padding_growth(net: nn.Module, multiple: int = PAD_MULTIPLE) -> float:
    """The largest fraction by which :func:`pad_channels` would widen a convolution of ``net``: 0 where no width
    needs padding; w18 and w18_small_v2 1/3 (18 → 24), w30 1/15 (30 → 32), w44 1/11 (44 → 48)."""
    convs = (m for m in net.modules() if isinstance(m, nn.Conv2d))
    return max((padded_width(m.out_channels, multiple) / m.out_channels - 1 for m in convs), default=0.0)


# At batch 1 the convolutions are latency-bound: a padded copy pays only where padding adds little work. One H200,
# fp32, the trace over the frozen plain forward (benchmarks/levers.py): w30 (+1/15) 0.71x padded, 1.01x unpadded;
# w44 (+1/11) 0.96x and 0.98x; w18 and w18_small_v2 (+1/3) 1.07x and 1.15x padded, 0.99x and 0.95x unpadded. At batch
# 256 padding pays for all four (1.36-1.62x, benchmarks/README.md); batches 2-255 were not measured.
BATCH1_PAD_MAX_GROWTH = 1 / 8


def padding_pays(growth: float, batch: int) -> bool:
    """Whether a batch of this size is faster on a padded copy, for a model whose padding widens a convolution by at
    most ``growth`` (:func:`padding_growth`): wherever a width needs it from batch 2, and at batch 1 only where
    padding adds at most ``BATCH1_PAD_MAX_GROWTH`` (w30, w44; not w18, w18_small_v2)."""
    return growth > 0 and (batch > 1 or growth <= BATCH1_PAD_MAX_GROWTH)


def needs_padding(net: nn.Module, multiple: int = PAD_MULTIPLE) -> bool:
    """Whether :func:`pad_channels` would widen any convolution of ``net`` (w18, w18_small_v2, w30, w44: yes)."""
    return padding_growth(net, multiple) > 0


def trace_shapes(net: nn.Module, height: int = 64, width: int = 64) -> dict[str, tuple[int, ...]]:
    """Every trace name's shape for a 1×C×height×width input, from a shape-only forward: the parameters are
    replaced by ``meta`` tensors (no storage, no arithmetic), the trace hooks record the shapes."""
    net = check_hrnet(net)
    rec = MapRecorder("all")
    meta = {k: v.to("meta") for k, v in [*net.named_parameters(), *net.named_buffers()]}
    x = torch.empty(1, net.conv1.in_channels, height, width, device="meta")
    with hooks_installed(hrnet_hooks(net, rec)), torch.no_grad():
        rec.put("logits", functional_call(net, meta, (x,)))
    return rec.shapes


def _padded(t: torch.Tensor, shape: tuple[int, ...], fill: float = 0.0) -> nn.Parameter | torch.Tensor:
    """``t`` in the top-left corner of a tensor of ``shape`` filled with ``fill``; same dtype, device, layout."""
    out = torch.full(shape, fill, dtype=t.dtype, device=t.device)
    out[tuple(slice(0, n) for n in t.shape)] = t
    if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    if isinstance(t, nn.Parameter):
        return nn.Parameter(out, requires_grad=t.requires_grad)
    return out


def _pad_conv(conv: nn.Conv2d, pin: int, pout: int) -> None:
    if conv.groups != 1:
        raise ValueError(f"pad_channels: a grouped convolution ({conv}) cannot be padded.")
    if (pin, pout) == (conv.in_channels, conv.out_channels):
        return
    conv.weight = _padded(conv.weight, (pout, pin, *conv.weight.shape[2:]))
    if conv.bias is not None:
        conv.bias = _padded(conv.bias, (pout,))
    conv.in_channels, conv.out_channels = pin, pout


def _pad_batchnorm(bn: nn.BatchNorm2d, width: int) -> None:
    if width == bn.num_features:
        return
    for name, fill in (("weight", 0.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
        t = getattr(bn, name)
        if t is not None:
            setattr(bn, name, _padded(t, (width,), fill))
    bn.num_features = width


def pad_channels(net: nn.Module, multiple: int = PAD_MULTIPLE) -> nn.Module:
    """Pad every channel width of the timm HRNet ``net`` to a multiple of ``multiple``, in place; returns ``net``.

    Meant for a private copy (e.g. :func:`hrnet_explorer.fold.fast_copy`: with BatchNorm folded there is no
    BatchNorm left to pad). Sets ``net.hrnet_explorer_padded = multiple`` and ``net.hrnet_explorer_widths``
    (``{trace name: original channels}`` for the names whose width changed; empty when nothing needed padding).
    Raises ``TypeError`` for a model that is not a timm HRNet classifier, ``ValueError`` for ``multiple < 1``, a
    copy padded already, a grouped convolution, or a module with parameters that is not a Conv2d, BatchNorm2d or
    Linear.
    """
    net = check_hrnet(net)
    if isinstance(multiple, bool) or not isinstance(multiple, int):
        raise TypeError(f"multiple must be an int, not {type(multiple).__name__}.")
    if multiple < 1:
        raise ValueError(f"multiple must be a positive channel count (e.g. 8), got {multiple}.")
    if hasattr(net, "hrnet_explorer_padded"):
        raise ValueError("This copy is padded already (hrnet_explorer_padded is set); pad the unpadded copy.")
    for name, m in net.named_modules():
        own = [*m.parameters(recurse=False), *m.buffers(recurse=False)]
        if own and not isinstance(m, nn.Conv2d | nn.BatchNorm2d | nn.Linear):
            kind = type(m).__name__
            raise ValueError(f"pad_channels cannot pad {name!r} ({kind}): only Conv2d, BatchNorm2d and Linear.")
    before = trace_shapes(net)
    with torch.inference_mode(False), torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                pin = m.in_channels if m is net.conv1 else padded_width(m.in_channels, multiple)
                _pad_conv(m, pin, padded_width(m.out_channels, multiple))
            elif isinstance(m, nn.BatchNorm2d):
                _pad_batchnorm(m, padded_width(m.num_features, multiple))
            elif isinstance(m, nn.Linear) and padded_width(m.in_features, multiple) != m.in_features:
                m.weight = _padded(m.weight, (m.out_features, padded_width(m.in_features, multiple)))
                m.in_features = m.weight.shape[1]
    try:
        after = trace_shapes(net)
    except RuntimeError as exc:  # a width this rule does not reach (not timm's HRNet structure): the copy is spoilt
        raise ValueError(f"pad_channels: the padded copy is inconsistent; discard it ({exc})") from exc
    widths = {}
    for name, shape in before.items():
        if after[name] != shape:
            if after[name] != (shape[0], padded_width(shape[1], multiple), *shape[2:]):
                raise ValueError(f"pad_channels: {name} is {after[name]} padded, {shape} before: not a padding.")
            widths[name] = shape[1]
    net.hrnet_explorer_padded = multiple
    net.hrnet_explorer_widths = widths
    return net

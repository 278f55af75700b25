"""Shared machinery of the attribution methods: private copies of the caller's model, inputs, targets,
baselines, and the small helpers every result uses (see the package's docstring for the HRNet pitfalls)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import field
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.hrnet import HighResolutionModule, HighResolutionNet
from torch import nn

from ..anatomy import ModuleRef, check_hrnet, hr_module, module_refs, resolve_module
from ..copies import PrivateCopy, private_copy
from ..errors import ArgumentError, InputError
from ..images import ImageInput, to_batch
from ..zoo import LoadedModel, imagenet_class_names

BASELINES = ("zeros", "black", "white", "blur")  # "zeros" is the dataset-mean image (0 after normalisation)

# Pixel budget per forward/backward chunk, in 224×224 images: measured on the 2-core CPU (8 and 16
# are equally fast for w18_small, bigger chunks only cost memory); on CUDA, all steps at once.
_CPU_CHUNK_IMAGES = 8
_CUDA_CHUNK_IMAGES = 64
_REF_PIXELS = 224 * 224


def default_internal_batch_size(device: torch.device | str, n: int, image_hw: tuple[int, int] = (224, 224)) -> int:
    """How many of ``n`` interpolation steps / samples to run per forward-backward pass on ``device``."""
    budget = _CUDA_CHUNK_IMAGES if torch.device(device).type == "cuda" else _CPU_CHUNK_IMAGES
    per_chunk = max(1, int(budget * _REF_PIXELS / (image_hw[0] * image_hw[1])))
    return max(1, min(n, per_chunk))


# --------------------------------------------------------------------------------------------------
# Inputs, targets, baselines
# --------------------------------------------------------------------------------------------------


def _require_grad(what: str) -> None:
    if torch.is_inference_mode_enabled() or not torch.is_grad_enabled():
        raise RuntimeError(
            f"{what} needs gradients, but it was called under torch.no_grad() or torch.inference_mode(). "
            "Call it outside those blocks (it never updates the model)."
        )


def _prepare(
    loaded: LoadedModel, inputs: torch.Tensor | ImageInput, input_size: int | None
) -> tuple[HighResolutionNet, PrivateCopy, torch.Tensor]:
    """→ (caller's net, its exact private copy (:mod:`hrnet_explorer.copies`), a fresh fp32 1x3xHxW tensor on the
    model's device). The other copies: ``private_copy(net, "folded")``, ``private_copy(net, "padded")``."""
    if not isinstance(loaded, LoadedModel):
        raise ArgumentError(f"Expected a LoadedModel (from hrnet_explorer.load_model), got {type(loaded).__name__}.")
    net = check_hrnet(loaded.model)
    if net.training:
        raise InputError(
            "The model is in training mode (BatchNorm would update its statistics); call model.eval() first."
        )
    x = to_batch(inputs, loaded.data_config, input_size)
    if x.shape[0] != 1:
        raise InputError(f"Attribution explains one image at a time; got a batch of {x.shape[0]}.")
    param = next(net.parameters())
    # clone(): a fresh tensor, never an inference tensor nor the caller's (Captum sets requires_grad).
    x = x.detach().to(param.device, torch.float32).clone()
    return net, private_copy(net, "exact"), x


def _check_target(target: int | None, num_classes: int) -> int | None:
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, int):
        try:
            target = int(target)  # numpy / 0-dim tensor integers
        except (TypeError, ValueError):
            raise ArgumentError(f"target must be a class index (int) or None, got {type(target).__name__}.") from None
    if not 0 <= target < num_classes:
        raise InputError(f"target must be a class index in 0..{num_classes - 1}, got {target}.")
    return target


def _baseline(kind: str | torch.Tensor | float, x: torch.Tensor, loaded: LoadedModel) -> torch.Tensor:
    """A baseline image in the model's normalised input space, shaped like ``x``."""
    if isinstance(kind, torch.Tensor):
        b = kind.to(x.device, torch.float32)
        if b.ndim == 3:
            b = b.unsqueeze(0)
        if b.shape[1:] != x.shape[1:]:
            raise InputError(f"A baseline tensor must have the input's shape {tuple(x.shape)}, got {tuple(b.shape)}.")
        return b.clone()
    if isinstance(kind, (int, float)) and not isinstance(kind, bool):
        return torch.full_like(x, float(kind))
    if kind == "zeros":
        return torch.zeros_like(x)
    mean = torch.tensor(loaded.data_config["mean"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(loaded.data_config["std"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    if kind == "black":
        return ((0.0 - mean) / std).expand_as(x).clone()
    if kind == "white":
        return ((1.0 - mean) / std).expand_as(x).clone()
    if kind == "blur":
        return _blur(x, max(x.shape[-2:]) / 16)
    raise InputError(f"Unknown baseline {kind!r}; use one of {', '.join(BASELINES)}, a number or a tensor.")


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """torchvision's ``gaussian_blur(x, [k, k], [sigma, sigma])`` (k = 2⌈3σ⌉ + 1, reflect padding), computed
    as two 1-D passes, each one matrix product with a banded matrix: the same kernel, equal up to fp32
    rounding, and much faster on a CPU at the large σ of the blur baseline."""
    k = 2 * math.ceil(3 * sigma) + 1
    half = torch.linspace(-(k - 1) / 2, (k - 1) / 2, k, dtype=x.dtype, device=x.device)
    pdf = torch.exp(-0.5 * (half / sigma) ** 2)
    kernel = pdf / pdf.sum()
    pad = k // 2

    def band(n: int) -> torch.Tensor:  # [n + 2·pad, n]: column j holds the kernel at rows j … j + k − 1
        out = torch.zeros(n + 2 * pad, n, dtype=x.dtype, device=x.device)
        rows = torch.arange(k, device=x.device).view(-1, 1) + torch.arange(n, device=x.device).view(1, -1)
        out[rows, torch.arange(n, device=x.device).expand(k, n)] = kernel.view(-1, 1).expand(k, n)
        return out

    out = F.pad(x, [pad, pad, 0, 0], mode="reflect") @ band(x.shape[-1])
    out = F.pad(out, [0, 0, pad, pad], mode="reflect").transpose(-1, -2) @ band(x.shape[-2])
    return out.transpose(-1, -2).contiguous()


def _baseline_name(kind: Any) -> str | float | list:
    if isinstance(kind, torch.Tensor):
        return f"tensor{list(kind.shape)}"
    if isinstance(kind, (list, tuple)):
        return [_baseline_name(k) for k in kind]
    return kind


def _layout(x: torch.Tensor) -> torch.memory_format:
    return torch.contiguous_format if x.is_contiguous() else torch.channels_last


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).float()


def _label(target: int, class_names: Sequence[str]) -> str:
    return class_names[target] if 0 <= target < len(class_names) else f"class {target}"


class _TargetLabel:
    """``label``: the name of the explained class, for the result dataclasses that have ``target`` and
    ``class_names`` fields."""

    target: int
    class_names: tuple[str, ...]

    @property
    def label(self) -> str:
        return _label(self.target, self.class_names)


def _names_field():
    """The model's class names on a result (not in its repr: there may be 1000). A result built by hand
    without them reads ImageNet's, as results did before models had names of their own."""
    return field(default_factory=imagenet_class_names, repr=False, compare=False)


def _top1_unless(target: int | None, model: nn.Module, x: torch.Tensor) -> int:
    """``target``, or the model's top-1 class for ``x`` when it is None (one forward)."""
    return target if target is not None else int(_logits(model, x)[0].argmax())


def _resolve_module(net: HighResolutionNet, stage: int, module: int) -> tuple[ModuleRef, HighResolutionModule]:
    ref = resolve_module(module_refs(net), stage, module)
    return ref, hr_module(net, ref)

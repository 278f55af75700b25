"""What a dense explanation is about: a region of the input (a pixel, a box, a mask, a class's pixels) and a class
of the model's card; and the input, checked and on the model's device, with the backbone's private copy."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..copies import PrivateCopy, private_copy
from ..errors import ArgumentError, InputError, NotFoundError, OutOfRangeError
from ..images import ImageInput, to_batch
from ..zoo import LoadedModel
from .model import DenseHRNet, check_dense_input, to_input
from .trace import dense_of

__all__ = ["Region", "class_region", "prepare", "region_target", "resolve_class"]


@dataclass(frozen=True)
class Region:
    """Pixels of an input of ``size`` (H, W): ``mask`` [H, W] bool, never empty; ``description`` says which."""

    mask: torch.Tensor
    description: str

    @staticmethod
    def pixel(y: int, x: int, size: tuple[int, int]) -> Region:
        return Region.box(y, x, y + 1, x + 1, size, f"pixel (y={y}, x={x})")

    @staticmethod
    def box(y0: int, x0: int, y1: int, x1: int, size: tuple[int, int], description: str | None = None) -> Region:
        """Rows y0..y1-1 and columns x0..x1-1 (a box wholly inside the image)."""
        h, w = size
        if not (0 <= y0 < h and 0 <= x0 < w and 0 < y1 <= h and 0 < x1 <= w):
            raise OutOfRangeError(
                f"The region (y {y0}..{y1 - 1}, x {x0}..{x1 - 1}) lies outside the {h}×{w} input "
                f"(y in 0..{h - 1}, x in 0..{w - 1})."
            )
        if y1 <= y0 or x1 <= x0:
            raise InputError(f"The region (y {y0}..{y1 - 1}, x {x0}..{x1 - 1}) is empty: it needs y1 > y0, x1 > x0.")
        mask = torch.zeros(h, w, dtype=torch.bool)
        mask[y0:y1, x0:x1] = True
        return Region(mask, description or f"box y {y0}..{y1 - 1}, x {x0}..{x1 - 1}")

    @staticmethod
    def of_mask(mask, size: tuple[int, int], description: str = "mask") -> Region:
        m = torch.as_tensor(mask)
        if m.dtype != torch.bool:
            raise InputError(f"A region mask must be boolean, got {m.dtype}.")
        if tuple(m.shape) != tuple(size):
            raise InputError(f"A region mask must have the input's size {size[0]}×{size[1]}, got {tuple(m.shape)}.")
        if not bool(m.any()):
            raise InputError("The region mask is empty: no pixel to explain.")
        return Region(m.cpu(), description)


def resolve_class(loaded: LoadedModel, cls: int | str) -> int:
    """A class index of the model's card from an index or a name; a NotFoundError listing the classes otherwise."""
    names = loaded.class_names
    if isinstance(cls, str):
        if cls in names:
            return names.index(cls)
    elif not isinstance(cls, bool) and isinstance(cls, int) and 0 <= cls < len(names):
        return cls
    raise NotFoundError(f"No class {cls!r} in {loaded.name}: its classes are 0..{len(names) - 1}: {', '.join(names)}.")


def prepare(
    loaded: LoadedModel, inputs: torch.Tensor | ImageInput, input_size: int | None = None
) -> tuple[DenseHRNet, PrivateCopy, torch.Tensor]:
    """→ (the dense net, its backbone's private exact copy, a fresh fp32 1x3xHxW input on the model's device)."""
    if not isinstance(loaded, LoadedModel):
        raise ArgumentError(f"Expected a LoadedModel (e.g. load_model('lab-seg')), got {type(loaded).__name__}.")
    net = dense_of(loaded)
    if net.training:
        raise InputError("The model is in training mode (BatchNorm would update its statistics); call .eval() first.")
    x = inputs if isinstance(inputs, torch.Tensor) else to_batch(inputs, loaded.data_config, input_size)
    x = check_dense_input(x)
    if x.shape[0] != 1:
        raise InputError(f"Dense explanations take one image at a time; got a batch of {x.shape[0]}.")
    param = next(net.parameters())
    return net, private_copy(net.backbone, "exact"), x.detach().to(param.device, torch.float32).clone()


def region_target(
    loaded: LoadedModel, net: DenseHRNet, run: PrivateCopy, x: torch.Tensor, region: Region, cls: int | str | None
) -> tuple[int, torch.Tensor]:
    """→ (the class explained: ``cls``, or the class the model gives most of the region's pixels; the mask on
    the model's device as float)."""
    if tuple(region.mask.shape) != tuple(x.shape[-2:]):
        (rh, rw), (h, w) = region.mask.shape, x.shape[-2:]
        raise InputError(f"The region is for a {rh}×{rw} input, but the input is {h}×{w}.")
    mask = region.mask.to(x.device)
    if cls is None:
        with torch.no_grad(), run.lock:
            labels = to_input(net.head(run.net(x)), tuple(x.shape[-2:])).argmax(1)[0]
        return int(torch.mode(labels[mask]).values), mask.float()
    return resolve_class(loaded, cls), mask.float()


def class_region(loaded: LoadedModel, inputs: torch.Tensor | ImageInput, cls: int | str) -> Region:
    """Every pixel the model labels ``cls``; an InputError if there is none."""
    net, run, x = prepare(loaded, inputs)
    c = resolve_class(loaded, cls)
    with torch.no_grad(), run.lock:
        labels = to_input(net.head(run.net(x)), tuple(x.shape[-2:])).argmax(1)[0].cpu()
    if not bool((labels == c).any()):
        raise InputError(
            f"{loaded.name} labels no pixel of this image {loaded.class_names[c]!r}: no region to explain."
        )
    return Region(labels == c, f"every pixel labelled {loaded.class_names[c]!r}")

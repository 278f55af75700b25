"""Units: a channel of one traced map (:func:`~hrnet_explorer.anatomy.trace_names`), checked against the model.

A map's channel count comes from a shape-only forward (:func:`~hrnet_explorer.pad.trace_shapes`, ``meta`` tensors:
no arithmetic), memoised per model and weights; a bad name or channel is one :class:`~hrnet_explorer.errors.UserError`
that says what exists.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable

import torch
from torch import nn

from ..anatomy import check_hrnet, module_refs, resolve_module
from ..errors import ArgumentError, InputError, NotFoundError, OutOfRangeError
from ..fold import fingerprint
from ..pad import trace_shapes
from ..zoo import LoadedModel

__all__ = ["check_channels", "check_map", "map_channels", "model_key", "module_maps", "network", "stream_maps"]

_SHAPES: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, dict[str, tuple[int, ...]]]] = weakref.WeakKeyDictionary()
_KEYS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, str]] = weakref.WeakKeyDictionary()


def network(model: LoadedModel | nn.Module) -> nn.Module:
    """The timm HRNet (with its head) of a LoadedModel or of a bare model."""
    if not isinstance(model, (LoadedModel, nn.Module)):
        raise ArgumentError(f"Expected a LoadedModel or a timm HRNet, got {type(model).__name__}.")
    return check_hrnet(model.model if isinstance(model, LoadedModel) else model)


def _shapes(net: nn.Module) -> dict[str, tuple[int, ...]]:
    fp = fingerprint(net)
    hit = _SHAPES.get(net)
    if hit is None or hit[0] != fp:
        hit = _SHAPES[net] = (fp, trace_shapes(net))
    return hit[1]


def map_channels(model: LoadedModel | nn.Module) -> dict[str, int]:
    """Every trace name of ``model`` → its channel count (the head's pooled vector and the logits included)."""
    return {name: shape[1] for name, shape in _shapes(network(model)).items()}


def check_map(model: LoadedModel | nn.Module, name: str) -> int:
    """The channel count of map ``name``; a :class:`NotFoundError` naming a few that exist otherwise."""
    channels = map_channels(model)
    if not isinstance(name, str) or name not in channels:
        fused = [n for n in channels if ".fused" in n]
        raise NotFoundError(
            f"{name!r} is not a map of this model: use a trace name such as {fused[0]!r} or {fused[-1]!r} "
            "(all of them: hrnet_explorer.trace_names(model))."
        )
    return channels[name]


def check_channels(channels: int | Iterable[int] | None, count: int, name: str) -> tuple[int, ...]:
    """``channels`` (one, several, or None: all ``count``) as a tuple of distinct ints in 0..count-1."""
    if channels is None:
        return tuple(range(count))
    items = [channels] if isinstance(channels, int) else list(channels)
    if not items:
        raise InputError(f"No channels asked for in {name!r}; it has channels 0..{count - 1}.")
    for c in items:
        if isinstance(c, bool) or not isinstance(c, int):
            raise InputError(f"A channel is an int, got {c!r}.")
        if not 0 <= c < count:
            raise OutOfRangeError(f"{name!r} has channels 0..{count - 1}; channel {c} is out of range.")
    if len(set(items)) != len(items):
        raise InputError(f"Channels of {name!r} listed twice: {items}.")
    return tuple(items)


def module_maps(model: LoadedModel | nn.Module, stage: int, index: int) -> list[str]:
    """The fused outputs of one module, stream 0 (high resolution) first: the columns of the side-by-side view."""
    ref = resolve_module(module_refs(network(model)), stage, index)
    return [f"{ref.name}.fused{i}" for i in range(ref.num_streams)]


def stream_maps(model: LoadedModel | nn.Module) -> list[str]:
    """Every module's fused outputs, in forward order."""
    return [f"{r.name}.fused{i}" for r in module_refs(network(model)) for i in range(r.num_streams)]


def model_key(model: LoadedModel | nn.Module) -> str:
    """A content hash of the weights (architecture + every tensor's bytes), stable across processes and machines:
    the disk cache's model key. Memoised per model while its weights are unchanged (:func:`~hrnet_explorer.fold.
    fingerprint`)."""
    net = network(model)
    fp = fingerprint(net)
    hit = _KEYS.get(net)
    if hit is None or hit[0] != fp:
        h = hashlib.sha256(type(net).__name__.encode())
        h.update(str(net.default_cfg.get("architecture", "")).encode())
        for key, tensor in sorted(net.state_dict().items()):
            h.update(key.encode())
            t = tensor.detach().to("cpu", torch.float32 if tensor.is_floating_point() else tensor.dtype)
            h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        hit = _KEYS[net] = (fp, h.hexdigest()[:20])
    return hit[1]

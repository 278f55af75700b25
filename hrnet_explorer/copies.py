"""The one cache of private copies of a caller's HRNet: exact, BatchNorm-folded, channel-padded.

Every path that hooks, folds, pads, compiles or graphs a model works on a private copy from here, never on the
caller's model, and never with the caller's hooks (a deepcopy copies them: they are cleared). A copy is built
once per (model, kind, layout), kept while the model lives (a weak reference), and rebuilt when the model's
weights change (:func:`~hrnet_explorer.fold.fingerprint`). Each copy comes with a re-entrant lock: hold it
while running the copy, since another thread may have hooks on it meanwhile (a trace, a knockout, a capture),
and ``derived``, a dict for what is built on top of it (CUDA graphs per shape), dropped with the copy.

Kinds:
- ``"exact"``: eval mode, frozen parameters, every ReLU out of place (Captum's backward hooks need that); its
  logits are bitwise those of the original.
- ``"folded"``: BatchNorm folded into the convolutions (:func:`~hrnet_explorer.fold.fold_batchnorm`): within
  ``FAST_RTOL`` of the exact copy, module structure kept so the same hooks see the same names.
- ``"padded"``: the folded copy with every channel width padded to a multiple of 8
  (:func:`~hrnet_explorer.pad.pad_channels`); the folded copy itself where no width needs it.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import torch
from torch import nn

from .anatomy import check_hrnet
from .fold import clear_hooks, fingerprint, fold_batchnorm
from .pad import needs_padding, pad_channels

__all__ = ["CopyKind", "PrivateCopy", "clear_private_copies", "make_copy", "private_copy"]

CopyKind = Literal["exact", "folded", "padded"]
_KINDS = ("exact", "folded", "padded")
T = TypeVar("T")


@dataclass(eq=False)
class PrivateCopy:
    """A private copy of a model, the lock to hold while running or hooking it, and what was built on it."""

    net: nn.Module
    kind: CopyKind
    channels_last: bool
    lock: threading.RLock = field(default_factory=threading.RLock)
    derived: dict = field(default_factory=dict)  # e.g. CUDA graphs of this copy, per shape; guarded by `lock`

    def cached(self, name: str, key: Hashable, build: Callable[[], T], max_entries: int = 4) -> T:
        """``derived[name][key]``, made by ``build()`` on first use. At most ``max_entries`` are kept per ``name``, the
        least recently used dropped: each CUDA graph holds a memory pool of its own, and a slider in the app asks for
        a new shape at every step. Hold ``lock`` around the call and around the use of what it returns."""
        entries: OrderedDict = self.derived.setdefault(name, OrderedDict())
        if key not in entries:
            entries[key] = build()
            if len(entries) > max_entries:
                entries.popitem(last=False)
        entries.move_to_end(key)
        return entries[key]


def make_copy(net: nn.Module, kind: CopyKind = "exact", channels_last: bool = False) -> nn.Module:
    """A new private copy of ``net`` of ``kind`` (see the module's docstring); uncached. ``net`` is untouched."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, not {kind!r}.")
    # Never under the caller's inference_mode: inference-tensor weights (copied, folded, moved or padded under it)
    # cannot be saved for backward.
    with torch.inference_mode(False), torch.no_grad():
        out = copy.deepcopy(check_hrnet(net, head=False))
        clear_hooks(out)
        out.eval().requires_grad_(False)
        if kind == "exact":
            for m in out.modules():
                if isinstance(m, nn.ReLU):
                    m.inplace = False
        else:
            fold_batchnorm(out)
        if channels_last:
            out = out.to(memory_format=torch.channels_last)
        if kind == "padded" and needs_padding(out):
            pad_channels(out)
    return out


@dataclass
class _Entry:
    fingerprint: tuple
    copies: dict[tuple[str, bool], PrivateCopy] = field(default_factory=dict)


_CACHE: weakref.WeakKeyDictionary[nn.Module, _Entry] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def private_copy(net: nn.Module, kind: CopyKind = "exact", *, channels_last: bool | None = None) -> PrivateCopy:
    """The cached :func:`make_copy` of ``net``: built on first use, rebuilt when its weights change.

    ``channels_last``: the copy's memory format (default: contiguous for "exact", channels_last otherwise)."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, not {kind!r}.")
    layout = kind != "exact" if channels_last is None else bool(channels_last)
    fp = fingerprint(net)
    with _CACHE_LOCK:
        entry = _CACHE.get(net)
        if entry is None or entry.fingerprint != fp:
            entry = _CACHE[net] = _Entry(fp)
        return _cached(net, entry, kind, layout)


def _cached(net: nn.Module, entry: _Entry, kind: CopyKind, layout: bool) -> PrivateCopy:
    key = (kind, layout)
    if key not in entry.copies:
        if kind == "padded":  # padded from the folded copy, which is shared where no width needs padding
            folded = _cached(net, entry, "folded", layout)
            if not needs_padding(folded.net):
                entry.copies[key] = folded
            else:
                with torch.inference_mode(False), torch.no_grad():
                    entry.copies[key] = PrivateCopy(pad_channels(copy.deepcopy(folded.net)), kind, layout)
        else:
            entry.copies[key] = PrivateCopy(make_copy(net, kind, layout), kind, layout)
    return entry.copies[key]


def clear_private_copies() -> None:
    """Drop every cached copy (they also go when their model is garbage-collected)."""
    with _CACHE_LOCK:
        _CACHE.clear()

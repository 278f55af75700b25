"""Per-channel statistics of chosen maps, reduced while the forward runs: a unit's dataset examples start here.

:class:`UnitStats` is a client of the hook engine (:class:`~hrnet_explorer.hooks.Recorder`): for every image and every
channel of each chosen map it keeps the spatial mean, the maximum and where the maximum is (row, column in the map's
grid) — four numbers per unit, nothing map-sized — so the dataset engine (:class:`~hrnet_explorer.rows.RowEngine`)
can write them into analyze's Parquet rows, one column per unit and statistic: ``unit.{map}.c{channel}.{stat}``
(:data:`STATS`). :func:`channel_stats` runs it on a batch of images (the model's private copy, under its lock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..anatomy import ModuleRef
from ..copies import private_copy
from ..errors import InputError
from ..hooks import Recorder, hooks_installed, hrnet_hooks
from ..images import check_input_tensor
from ..pad import trace_shapes
from ..runtime import Precision, autocast
from ..zoo import LoadedModel
from .capture import FUSION_NAME
from .units import check_map, map_channels, network

__all__ = ["STATS", "ChannelStats", "UnitStats", "channel_stats", "column_names", "reduce_map"]

STATS = ("mean", "max", "y", "x")  # spatial mean, maximum, the maximum's row and column in the map's grid


def column_names(name: str, channels: int) -> list[str]:
    """The Parquet columns of map ``name``'s units, channel by channel: ``unit.{name}.c{c}.{stat}``."""
    return [f"unit.{name}.c{c}.{stat}" for c in range(channels) for stat in STATS]


def reduce_map(t: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] → [B, C, 4] float32: each channel's spatial mean, max, and the max's row and column (the first
    maximum in row-major order on ties)."""
    b, c, h, w = t.shape
    flat = t.reshape(b, c, h * w)
    peak, where = flat.max(dim=2)
    mean = flat.float().mean(dim=2)
    return torch.stack([mean, peak.float(), (where // w).float(), (where % w).float()], dim=2)


class UnitStats(Recorder):
    """The hook engine's client that reduces each of ``maps`` to :data:`STATS` per channel as the forward runs.

    ``names``: the columns, map by map (:func:`column_names`); :meth:`collect` → ``{"units": [B, len(names)]}``
    float32 on the device, in that order, and forgets the batch. ``net``'s hooks are in ``hooks``; a channel-padded
    copy (:func:`~hrnet_explorer.pad.pad_channels`) is sliced back to its widths (``hrnet_explorer_widths``)."""

    def __init__(self, net: nn.Module, maps: Sequence[str]):
        if isinstance(maps, str) or not maps:
            raise InputError("UnitStats needs a list of map names, e.g. ['stage4.module0.fused0'].")
        self.maps = tuple(maps)
        if len(set(self.maps)) != len(self.maps):
            raise InputError(f"A map is listed twice: {', '.join(self.maps)}.")
        self.narrow: dict[str, int] = dict(getattr(net, "hrnet_explorer_widths", {}))
        shapes = map_channels(net)
        self.channels: dict[str, int] = {}
        for n in self.maps:
            if n not in shapes:
                check_map(net, n)  # the error naming what exists
            if n in ("logits", "head.pooled"):
                raise InputError(f"{n!r} has no spatial extent; per-channel statistics are for 4-D maps.")
            self.channels[n] = self.narrow.get(n, shapes[n])
        self.names = [col for n in self.maps for col in column_names(n, self.channels[n])]
        self.record_maps = any(FUSION_NAME.match(n) is None for n in self.maps)
        self._wanted = set(self.maps)
        self._values: dict[str, torch.Tensor] = {}
        self.hooks = hrnet_hooks(net, self)

    def edges_for(self, ref: ModuleRef) -> bool:
        return any(n.startswith(f"{ref.name}.edge") for n in self.maps)

    def _take(self, name: str, tensor: torch.Tensor) -> None:
        if name in self._wanted:
            width = self.narrow.get(name)
            self._values[name] = reduce_map(tensor if width is None else tensor[:, :width])

    def on_map(self, name: str, tensor: torch.Tensor) -> None:
        self._take(name, tensor)

    def on_edge(self, ref: ModuleRef, source: int, target: int, tensor: torch.Tensor) -> None:
        self._take(f"{ref.name}.edge{source}to{target}", tensor)

    def on_fused(self, ref: ModuleRef, target: int, presum: torch.Tensor, fused: torch.Tensor) -> None:
        self._take(f"{ref.name}.presum{target}", presum)
        self._take(f"{ref.name}.fused{target}", fused)

    def collect(self) -> dict[str, torch.Tensor]:
        out = torch.cat([self._values[n].reshape(self._values[n].shape[0], -1) for n in self.maps], dim=1)
        self._values = {}
        return {"units": out}


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel statistics of one map over a set of images: ``mean``, ``max`` [N, C] float32 and the maximum's
    place ``y``, ``x`` [N, C] int (in the map's grid of ``map_size`` = (H, W), over an input of ``input_size``).
    ``ids``: the images' ids, ``labels`` [N] (-1: none)."""

    name: str
    mean: np.ndarray
    max: np.ndarray
    y: np.ndarray
    x: np.ndarray
    ids: tuple[str, ...]
    labels: np.ndarray
    map_size: tuple[int, int] | None = None
    input_size: tuple[int, int] | None = None

    @property
    def channels(self) -> int:
        return self.mean.shape[1]

    def __len__(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def from_columns(cls, name: str, values: np.ndarray, ids, labels, map_size=None, input_size=None) -> ChannelStats:
        """From [N, C·4] values in :func:`column_names` order."""
        v = values.reshape(values.shape[0], -1, len(STATS))
        return cls(
            name,
            v[..., 0].astype(np.float32),
            v[..., 1].astype(np.float32),
            v[..., 2].astype(np.int64),
            v[..., 3].astype(np.int64),
            tuple(ids),
            np.asarray(labels, dtype=np.int64),
            map_size,
            input_size,
        )


def channel_stats(
    loaded: LoadedModel | nn.Module,
    images: torch.Tensor,
    maps: Sequence[str],
    *,
    labels: Sequence[int] | np.ndarray | None = None,
    ids: Sequence[str] | None = None,
    batch_size: int = 32,
    precision: Precision = "fp32",
) -> dict[str, ChannelStats]:
    """:class:`ChannelStats` of each of ``maps`` over ``images`` (a preprocessed [N, 3, H, W] tensor), in batches,
    on the model's private exact copy. ``ids`` default to the images' positions."""
    net = network(loaded)
    x = check_input_tensor(images)
    n = x.shape[0]
    if n == 0:
        raise InputError("No images: per-channel statistics need at least one.")
    param = next(net.parameters())
    run = private_copy(net, "exact")
    rec = UnitStats(run.net, maps)
    parts = []
    with run.lock, hooks_installed(rec.hooks), torch.inference_mode(), autocast(param.device, precision):
        for start in range(0, n, batch_size):
            run.net(x[start : start + batch_size].to(param.device, param.dtype))
            parts.append(rec.collect()["units"].cpu())
    values = torch.cat(parts).numpy()
    shapes = trace_shapes(net, *x.shape[-2:])
    ids = tuple(ids) if ids is not None else tuple(str(i) for i in range(n))
    labels = np.full(n, -1) if labels is None else np.asarray(labels)
    out, col = {}, 0
    for name in rec.maps:
        width = rec.channels[name] * len(STATS)
        out[name] = ChannelStats.from_columns(
            name, values[:, col : col + width], ids, labels, tuple(shapes[name][-2:]), tuple(x.shape[-2:])
        )
        col += width
    return out

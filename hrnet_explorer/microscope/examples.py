"""Dataset examples per unit: the top-k images of a channel, each cropped around where the channel peaks.

The ranking reads per-channel statistics (:class:`~.stats.ChannelStats`: from :func:`~.stats.channel_stats`, or from
an analyze run's Parquet rows written with unit columns, :func:`read_channel_stats`); only the k winners per channel
are read again and run up to the map (:func:`~.capture.capture_map`) for their activation maps.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, MissingFileError, NotFoundError
from ..zoo import LoadedModel
from .capture import capture_map
from .stats import STATS, ChannelStats
from .units import check_channels, check_map, network

__all__ = [
    "BY",
    "Example",
    "crop_box",
    "dataset_examples",
    "rank",
    "read_channel_stats",
    "run_images",
    "run_model",
    "top_k",
]

BY = ("max", "mean")  # what a unit's images are ranked by


@dataclass(frozen=True)
class Example:
    """One of a unit's top images: ``index`` in the ranked set (its id, label and ``value``), the ``image`` crop
    (uint8 crop×crop×3) at ``box`` = (top, left, size) in the input's pixels, ``peak`` = the maximum's centre there,
    and the unit's ``activation`` over the same window (float32, in map cells)."""

    index: int
    image_id: str
    label: int
    value: float
    image: np.ndarray
    activation: np.ndarray
    box: tuple[int, int, int]
    peak: tuple[float, float]


def rank(stats: ChannelStats, k: int = 9, by: str = "max") -> np.ndarray:
    """[C, min(k, N)] indices of each channel's top images by ``by``, highest first; ties by index (stable)."""
    if by not in BY:
        raise InputError(f"by must be one of {', '.join(BY)}, not {by!r}.")
    if len(stats) == 0:
        raise InputError(f"No images in the statistics of {stats.name!r}: nothing to rank.")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a positive int, got {k!r}.")
    values = getattr(stats, by)
    order = np.argsort(-values, axis=0, kind="stable")  # stable: equal values keep their index order
    return order[:k].T.copy()


def top_k(stats: ChannelStats, channel: int, k: int = 9, by: str = "max") -> np.ndarray:
    """Indices of channel ``channel``'s top-``k`` images by ``by`` (see :func:`rank`)."""
    (channel,) = check_channels([channel], stats.channels, stats.name)
    return rank(stats, k, by)[channel]


def crop_box(
    y: int, x: int, map_size: tuple[int, int], input_size: tuple[int, int], crop: int
) -> tuple[int, int, float, float]:
    """(top, left) of a ``crop``-px window inside the input, centred on map cell (y, x) as far as the edges allow,
    and the cell's centre (py, px) in input pixels."""
    sy, sx = input_size[0] / map_size[0], input_size[1] / map_size[1]
    py, px = (y + 0.5) * sy, (x + 0.5) * sx
    top = int(np.clip(round(py - crop / 2), 0, input_size[0] - crop))
    left = int(np.clip(round(px - crop / 2), 0, input_size[1] - crop))
    return top, left, py, px


def dataset_examples(
    loaded: LoadedModel,
    stats: ChannelStats,
    images: Callable[[list[int]], torch.Tensor],
    channels: int | Iterable[int] | None = None,
    *,
    k: int = 9,
    by: str = "max",
    crop: int = 64,
    batch_size: int = 32,
) -> dict[int, list[Example]]:
    """The top-``k`` examples of each of ``channels`` (default: all) of ``stats``' map, each cropped around the unit's
    maximum. ``images(indices)``: those images (rows of ``stats``) as a uint8 [n, 3, H, W] tensor of the size the
    statistics were taken at (the preprocessing's crop; :func:`run_images` for an analyze run)."""
    net = network(loaded)
    count = check_map(loaded, stats.name)
    units = check_channels(channels, count, stats.name)
    if stats.channels != count:
        raise InputError(f"The statistics hold {stats.channels} channels of {stats.name!r}; the model has {count}.")
    h, w = stats.input_size
    if not isinstance(crop, int) or not 0 < crop <= min(h, w):
        raise InputError(f"crop must be an int in 1..{min(h, w)} (the input's side), got {crop!r}.")
    order = rank(stats, k, by)
    wanted = sorted({int(i) for c in units for i in order[c]})
    pixels = images(wanted)
    if tuple(pixels.shape[-2:]) != (h, w) or pixels.dtype != torch.uint8 or pixels.shape[0] != len(wanted):
        raise InputError(
            f"images() must give a uint8 [{len(wanted)}, 3, {h}, {w}] tensor, got {pixels.dtype} {tuple(pixels.shape)}."
        )
    cfg = loaded.data_config
    mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    maps = capture_map(net, (pixels.float() / 255 - mean) / std, stats.name, batch_size=batch_size)
    mh, mw = maps.shape[-2:]
    row = {i: r for r, i in enumerate(wanted)}
    values = getattr(stats, by)
    out: dict[int, list[Example]] = {}
    for c in units:
        found = []
        for i in order[c]:
            i = int(i)
            top, left, py, px = crop_box(int(stats.y[i, c]), int(stats.x[i, c]), (mh, mw), (h, w), crop)
            # the map cells under the window: stride s px per cell
            r0, r1 = int(top * mh // h), int(-(-(top + crop) * mh // h))
            c0, c1 = int(left * mw // w), int(-(-(left + crop) * mw // w))
            image = pixels[row[i], :, top : top + crop, left : left + crop].permute(1, 2, 0).numpy().copy()
            activation = maps[row[i], c, r0:r1, c0:c1].numpy().copy()
            found.append(
                Example(
                    i,
                    stats.ids[i],
                    int(stats.labels[i]),
                    float(values[i, c]),
                    image,
                    activation,
                    (top, left, crop),
                    (py, px),
                )
            )
        out[c] = found
    return out


def _run_variant(root: Path, variant: str | None) -> tuple[dict, str]:
    """An analyze run's manifest and the variant asked for (or its only one)."""
    manifest = root / "manifest.json"
    if not manifest.is_file():
        raise MissingFileError(
            f"No analyze run in {str(root)!r} (no manifest.json): run `hrnet-explorer analyze` first."
        )
    info = json.loads(manifest.read_text())
    variants = list(info.get("variants", {}))
    variant = variant or (variants[0] if len(variants) == 1 else None)
    if variant not in variants:
        raise InputError(f"The run in {str(root)!r} holds variants {', '.join(variants)}: name one (variant=…).")
    return info, variant


def run_model(run: str | os.PathLike, variant: str | None = None, device: str | None = "auto") -> LoadedModel:
    """The model an analyze run used (its variant, with the run's weights), on ``device``."""
    from ..zoo import load_model

    info, variant = _run_variant(Path(run), variant)
    return load_model(info["variants"][variant]["name"], info["settings"]["weights"], device)


def read_channel_stats(run: str | os.PathLike, name: str, variant: str | None = None) -> ChannelStats:
    """The per-channel statistics of map ``name`` from an analyze run folder (written with its unit columns)."""
    import pyarrow.parquet as pq

    root = Path(run)
    info, variant = _run_variant(root, variant)
    files = sorted((root / "rows" / variant).glob("shard-*.parquet"))
    names = pq.read_schema(files[0]).names if files else []
    prefix = f"unit.{name}.c"
    channels = sorted({int(n[len(prefix) :].split(".", 1)[0]) for n in names if n.startswith(prefix)})
    if not channels:
        raise NotFoundError(
            f"The run in {str(root)!r} has no unit statistics of {name!r}: analyze it with --unit-map {name}."
        )
    columns = [f"{prefix}{c}.{stat}" for c in channels for stat in STATS]
    table = pq.ParquetDataset(files).read(columns=["image_id", "label", *columns])
    if table.num_rows == 0:
        raise InputError(f"The run in {str(root)!r} has no rows: nothing to rank.")
    values = np.stack([table.column(c).to_numpy() for c in columns], axis=1)
    labels = table.column("label").fill_null(-1).to_numpy()
    size = int(info["variants"][variant]["preprocessing"]["input_size"][-1])
    return ChannelStats.from_columns(
        name, values, table.column("image_id").to_pylist(), labels, input_size=(size, size)
    )


def run_images(run: str | os.PathLike, loaded: LoadedModel, stats: ChannelStats) -> Callable[[list[int]], torch.Tensor]:
    """``images(rows)`` for :func:`dataset_examples` over an analyze run: the rows' images read from the run's
    source and cropped as analyze cropped them (uint8)."""
    from ..analyze.inputs import Crops
    from ..sources import open_source

    info = json.loads((Path(run) / "manifest.json").read_text())
    size = stats.input_size[0]
    src = open_source(info["settings"]["source"], size=info["settings"].get("input_size"))
    crops = Crops(src, [src.index_of(i) for i in stats.ids], loaded.data_config, size)

    def images(rows: list[int]) -> torch.Tensor:
        items = [crops[r] for r in rows]
        bad = [f"{stats.ids[r]}: {item[3]}" for r, item in zip(rows, items, strict=True) if item[3]]
        if bad:
            raise InputError(f"Images of the run can no longer be read: {'; '.join(bad[:3])}.")
        return torch.stack([item[0] for item in items])

    return images

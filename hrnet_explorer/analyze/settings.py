"""What one ``analyze`` run is asked to do, as one frozen, checked value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..images import STRIDE

DEFAULT_SHARD_SIZE = 2048
PRECISIONS = ("auto", "fp32", "bf16")
DECODES = ("pil", "gpu", "auto")  # hrnet_explorer.analyze.decode


@dataclass(frozen=True)
class RunSettings:
    """The settings of an analyze run (what :func:`~hrnet_explorer.analyze.analyze` takes), checked when made:
    a bad value is a one-line :class:`~hrnet_explorer.errors.InputError` before any model is loaded.

    ``None`` means "the default for where it runs", resolved per rank by the engine: ``variants`` empty —
    the source's own model (``lab`` for ``lab:N``) or hrnet_w18_small; ``batch_size`` — 256 on CUDA, 16 on
    the CPU; ``workers`` — the rank's share of the CPUs less one (at most 16); ``precision`` "auto" — bf16 on
    CUDA, fp32 on the CPU. ``command``: what the manifest records (default: this process's command line).
    """

    source: str  # a folder, lab:N or hf:NAME[:SPLIT] (hrnet_explorer.sources)
    variants: tuple[str, ...]
    out: Path
    weights: str = "default"  # for every variant
    reliance: bool = False  # also knock out each final stream (5 forwards per image)
    batch_size: int | None = None
    device: str | None = "auto"
    workers: int | None = None
    limit: int | None = None  # only the first N images
    input_size: int | None = None  # square crop side, a multiple of 32 (default: the weights' own)
    precision: str = "auto"
    shard_size: int = DEFAULT_SHARD_SIZE
    progress: bool = True  # a progress bar (rank 0, on a terminal) or a line every 10 s (off one)
    command: tuple[str, ...] | None = None
    unit_maps: tuple[str, ...] = ()  # per-channel statistics of these maps (hrnet_explorer.microscope.stats)
    decode: str = "pil"  # who decodes JPEGs: "pil" (workers), "gpu" (the device) or "auto"

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise the types once, here
        set_(self, "source", str(self.source))
        set_(self, "variants", tuple(self.variants or ()))
        set_(self, "out", Path(self.out))
        set_(self, "unit_maps", tuple(self.unit_maps or ()))
        if self.command is not None:
            set_(self, "command", tuple(self.command))
        if self.shard_size < 1:
            raise InputError(f"--shard-size must be at least 1, got {self.shard_size}.")
        if self.input_size is not None and (self.input_size < STRIDE or self.input_size % STRIDE):
            raise InputError(f"--input-size must be a positive multiple of {STRIDE}; got {self.input_size}.")
        if self.limit is not None and self.limit < 1:
            raise InputError(f"--limit must be at least 1, got {self.limit}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1, got {self.batch_size}.")
        if self.workers is not None and self.workers < 0:
            raise InputError(f"--workers must be 0 or more, got {self.workers}.")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}.")
        if self.decode not in DECODES:
            raise InputError(f"decode must be one of {', '.join(DECODES)}, not {self.decode!r}.")

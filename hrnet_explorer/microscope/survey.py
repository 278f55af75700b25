"""By resolution, side by side: which units of which stream are orientation-selective, which shape-selective.

One pass over labelled lab images (:func:`~hrnet_explorer.lab.render`) and one over gratings of every angle and
period (:func:`~.gratings.gratings`) give every chosen map's per-channel responses (:func:`~.stats.channel_stats`,
the spatial mean); :mod:`.selectivity` turns them into class and family selectivity and tuning curves. A unit is

- **orientation-selective** when its orientation selectivity index is at least ``osi_min`` (default 0.5: the
  response at the preferred orientation clearly dominates; a cos² tuning curve has OSI 0.5);
- **shape-selective** when it prefers a coarse (shape) class with a class selectivity index of at least
  ``class_min`` (default 0.3) and prefers the coarse family.

Nothing about where such units live is assumed: it is what the survey measures (notebooks/08_microscope.ipynb).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..zoo import LoadedModel
from .gratings import Gratings, gratings
from .selectivity import Selectivity, Tuning, class_selectivity, family_selectivity, orientation_tuning
from .stats import channel_stats
from .units import module_maps, network, stream_maps

__all__ = ["OSI_MIN", "CLASS_MIN", "StreamUnits", "Survey", "survey", "survey_module", "unit_tuning"]

OSI_MIN = 0.5
CLASS_MIN = 0.3


@dataclass(frozen=True)
class StreamUnits:
    """One map's units (a column of the side-by-side view): their tuning, class and family selectivity, and which
    of them are orientation- or shape-selective (boolean [C] masks)."""

    name: str
    tuning: Tuning
    classes: Selectivity
    families: Selectivity
    orientation_selective: np.ndarray
    shape_selective: np.ndarray

    @property
    def channels(self) -> int:
        return self.tuning.osi.size

    def summary(self) -> dict:
        """The row of :meth:`Survey.table`: counts, fractions, medians."""
        c = self.channels
        return {
            "map": self.name,
            "units": c,
            "orientation_selective": int(self.orientation_selective.sum()),
            "orientation_fraction": float(self.orientation_selective.sum() / c),
            "shape_selective": int(self.shape_selective.sum()),
            "shape_fraction": float(self.shape_selective.sum() / c),
            "median_osi": float(np.nanmedian(self.tuning.osi)) if np.isfinite(self.tuning.osi).any() else None,
            "median_class_selectivity": (
                float(np.nanmedian(self.classes.index)) if np.isfinite(self.classes.index).any() else None
            ),
        }


@dataclass(frozen=True)
class Survey:
    """Every surveyed map's :class:`StreamUnits`, the class names and families behind them, and the settings."""

    maps: dict[str, StreamUnits]
    class_names: tuple[str, ...]
    family_names: tuple[str, ...]
    images: int
    size: int
    gratings: tuple[int, int, int]  # angles, periods, phases
    osi_min: float
    class_min: float

    def table(self) -> list[dict]:
        return [units.summary() for units in self.maps.values()]

    def __getitem__(self, name: str) -> StreamUnits:
        return self.maps[name]


def _normalised(loaded: LoadedModel, images: torch.Tensor) -> torch.Tensor:
    cfg = loaded.data_config
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    return (images - mean) / std


def survey(
    loaded: LoadedModel,
    maps: Sequence[str] | None = None,
    *,
    images: int = 500,
    size: int = 224,
    split: str = "test",
    stimuli: Gratings | None = None,
    osi_min: float = OSI_MIN,
    class_min: float = CLASS_MIN,
    batch_size: int = 32,
) -> Survey:
    """Survey ``maps`` (default: every module's fused streams) of a model trained on the lab: ``images`` lab images
    of ``split`` at ``size`` px (every class equally often) and ``stimuli`` (default: :func:`~.gratings.gratings` —
    12 angles, periods 3/4/5 px, 4 phases — at ``size``)."""
    from ..lab import CLASSES, FAMILY, render

    if not isinstance(loaded, LoadedModel) or list(loaded.class_names) != list(CLASSES):
        raise InputError("The survey needs a model of the lab's classes (load_model('lab')).")
    if isinstance(images, bool) or not isinstance(images, int) or images < len(CLASSES):
        raise InputError(f"The survey needs at least {len(CLASSES)} lab images (one per class), got {images!r}.")
    maps = list(maps) if maps is not None else stream_maps(network(loaded))
    stimuli = stimuli or gratings(size=size)
    if tuple(stimuli.images.shape[-2:]) != (size, size):
        raise InputError(f"The gratings are {tuple(stimuli.images.shape[-2:])} px; the survey runs at {size} px.")
    lab = render(range(images), split, size)
    on_lab = channel_stats(loaded, _normalised(loaded, lab.images), maps, batch_size=batch_size)
    on_gratings = channel_stats(loaded, _normalised(loaded, stimuli.images), maps, batch_size=batch_size)
    families = tuple(dict.fromkeys(FAMILY[c] for c in CLASSES))  # ("fine", "coarse")
    family_of = np.array([families.index(FAMILY[c]) for c in CLASSES])
    labels = lab.labels.numpy()
    coarse = families.index("coarse")
    out = {}
    for name in maps:
        tuning = orientation_tuning(on_gratings[name].mean.T.reshape(-1, *stimuli.grid), stimuli.angles)
        classes = class_selectivity(on_lab[name].mean, labels, len(CLASSES))
        fams = family_selectivity(on_lab[name].mean, labels, family_of)
        oriented = np.nan_to_num(tuning.osi) >= osi_min
        shaped = (family_of[classes.preferred] == coarse) & (fams.preferred == coarse)
        shaped &= np.nan_to_num(classes.index) >= class_min
        out[name] = StreamUnits(name, tuning, classes, fams, oriented, shaped)
    return Survey(out, tuple(CLASSES), families, images, size, stimuli.grid, osi_min, class_min)


def survey_module(loaded: LoadedModel, stage: int, index: int, **options) -> Survey:
    """:func:`survey` of one module's fused outputs, stream 0 (high resolution) first: the side-by-side columns."""
    return survey(loaded, module_maps(loaded, stage, index), **options)


def unit_tuning(
    loaded: LoadedModel, name: str, *, stimuli: Gratings | None = None, size: int = 224, batch_size: int = 32
) -> Tuning:
    """The orientation tuning of every unit of map ``name`` (any model): its responses to ``stimuli`` (default:
    :func:`~.gratings.gratings` at ``size`` px)."""
    stimuli = stimuli or gratings(size=size)
    responses = channel_stats(loaded, _normalised(loaded, stimuli.images), [name], batch_size=batch_size)[name]
    return orientation_tuning(responses.mean.T.reshape(-1, *stimuli.grid), stimuli.angles)

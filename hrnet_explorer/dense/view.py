"""What the app's Pixels tab and the dense image report show for one image: the mask, one class's pixels split by
stream, and each stream knocked out at the head, from one call, so that both show the same numbers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from ..errors import InputError
from ..images import ImageInput, display_crop, read_image, to_batch
from ..zoo import LoadedModel
from .explain import RegionSplit, region_split
from .knockouts import DenseKnockout, knockout_table
from .predict import Segmentation, segment
from .regions import class_region, resolve_class

__all__ = ["PixelsView", "largest_class", "pixels_view"]


@dataclass(frozen=True)
class PixelsView:
    """``segmentation`` at the image's size; ``labels`` at the model's input (what ``split`` explains) and ``shown``,
    the image as the model saw it; ``split``: the class's pixels, their summed score split exactly by stream;
    ``knockouts[k]``: stream k removed at the head, against the unchanged mask."""

    segmentation: Segmentation
    labels: torch.Tensor
    shown: Image.Image
    split: RegionSplit
    knockouts: list[DenseKnockout]


def largest_class(loaded: LoadedModel, labels: torch.Tensor) -> int:
    """The class with the most pixels, the first class (the background) left out."""
    counts = torch.bincount(labels.flatten(), minlength=loaded.num_classes)
    counts[0] = 0
    if not bool(counts.any()):
        raise InputError(f"{loaded.name} labels every pixel of this image {loaded.class_names[0]!r}.")
    return int(counts.argmax())


def pixels_view(loaded: LoadedModel, image: ImageInput, cls: int | str | None = None) -> PixelsView:
    """The Pixels view of ``image`` by the dense model ``loaded``, explaining ``cls`` (default: the largest class
    other than the background)."""
    picture = read_image(image)
    x = to_batch(picture, loaded.data_config).to(loaded.device)
    seg = segment(loaded, picture)
    with torch.no_grad():
        labels = loaded.model(x).argmax(1)[0].cpu()
    target = largest_class(loaded, labels) if cls is None else resolve_class(loaded, cls)
    split = region_split(loaded, x, class_region(loaded, x, target), target)
    return PixelsView(seg, labels, display_crop(picture, loaded.data_config), split, knockout_table(loaded, x))

"""Label every pixel of an image with a dense model, at the image's own size; the mask as a palette PNG.

The image is preprocessed as the model's card says (dense cards squash the whole image to the model's input size,
``crop_mode="squash"``, so every pixel of the image is seen); the class scores are upsampled bilinearly from the
model's input to the image's size before the arg-max, so the mask has the image's size, as a Pascal VOC mask does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..images import ImageInput, read_image, to_batch
from ..zoo import LoadedModel
from .model import to_input
from .trace import dense_of

__all__ = ["Segmentation", "segment"]


@dataclass(frozen=True)
class Segmentation:
    """A label map at the image's size and what it holds."""

    labels: torch.Tensor  # [H, W] int64: class indices into class_names
    class_names: tuple[str, ...]
    palette: list[list[int]]
    input_size: tuple[int, int]  # (H, W) the model saw

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.labels.shape)

    def fractions(self) -> dict[str, float]:
        """The share of the image's pixels labelled with each class that occurs, largest first."""
        counts = torch.bincount(self.labels.flatten(), minlength=len(self.class_names)).double() / self.labels.numel()
        order = counts.argsort(descending=True)
        return {self.class_names[int(c)]: float(counts[c]) for c in order if counts[c] > 0}

    def mask_image(self) -> Image.Image:
        """A palette ("P" mode) PNG image of the class indices, coloured by the card's palette."""
        if len(self.class_names) > 256:
            raise InputError(f"A palette PNG holds at most 256 classes; this model has {len(self.class_names)}.")
        mask = Image.fromarray(self.labels.numpy().astype(np.uint8), mode="P")
        mask.putpalette([v for colour in self.palette for v in colour])
        return mask

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`mask_image` to ``path`` (PNG)."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            raise InputError(f"The mask is written as a PNG (palette image): use a .png path, not {path.name!r}.")
        self.mask_image().save(path, format="PNG")
        return path

    def to_dict(self) -> dict:
        return {
            "size": list(self.size),
            "input_size": list(self.input_size),
            "classes": [
                {"index": self.class_names.index(name), "name": name, "fraction": f}
                for name, f in self.fractions().items()
            ],
        }


@torch.inference_mode()
def segment(loaded: LoadedModel, image: ImageInput) -> Segmentation:
    """Every pixel of ``image`` (a path, PIL image, array …) labelled by the dense model ``loaded``."""
    net = dense_of(loaded)
    picture = read_image(image)
    x = to_batch(picture, loaded.data_config).to(loaded.device)
    width, height = picture.size
    scores = to_input(net.head(net.streams(x)), (height, width))  # stride 4 → the image's size, in one step
    palette = (loaded.card or {}).get("palette")
    if palette is None:
        from .card import voc_palette

        palette = voc_palette(loaded.num_classes)
    return Segmentation(scores.argmax(1)[0].cpu(), loaded.class_names, palette, tuple(x.shape[-2:]))

"""What ``analyze`` reads: a source's images as uint8 crops (in DataLoader workers), and its labels in the
model's class indices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from timm.data import ImageNetInfo, create_transform
from torch.utils.data import Dataset

from ..sources import Source


def eval_steps(data_config: dict, size: int) -> list:
    """timm's eval transform for these weights at ``size``, all but ToTensor and Normalize: the resize and crop."""
    cfg = {**data_config, "input_size": (3, size, size)}
    return create_transform(**cfg, is_training=False).transforms[:-2]


class Crops(Dataset):
    """Item k: image ``indices[k]`` of ``source``, resized and center-cropped as the weights expect, as
    uint8 [3, H, W]; with its index, label (-1: none) and the error message ("" when it was read)."""

    def __init__(self, source: Source, indices: Sequence[int], data_config: dict, size: int):
        self.source, self.indices, self.size = source, indices, size
        self.steps = eval_steps(data_config, size)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        return self.item(int(self.indices[k]))

    def item(self, i: int):
        """Image ``i`` of the source (not the k-th of ``indices``), as an item."""
        try:
            image, label = self.source.load(i)
            for step in self.steps:
                image = step(image)
            array = np.asarray(image, dtype=np.uint8)
            if array.shape != (self.size, self.size, 3):
                raise ValueError(f"preprocessing gave shape {array.shape}, not {(self.size, self.size, 3)}")
            x = torch.from_numpy(array.copy()).permute(2, 0, 1)
            return x, i, -1 if label is None else label, ""
        except Exception as exc:  # any unreadable image goes to the errors table; the run goes on
            message = f"{type(exc).__name__}: {exc}"
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), i, -1, message


def label_map(classes: list[str] | None, model_names: list[str], num_classes: int) -> np.ndarray | None:
    """Source label → model class index (-1: none), or None when the source's classes are not the model's.

    By name (the lab's classes, or ImageNet synset folders like n01440764); else, with exactly as many
    classes as the model, by position (torchvision's sorted ImageFolder convention = ImageNet's order).
    """
    if not classes:
        return None
    index = {name: i for i, name in enumerate(model_names)}
    if num_classes == 1000:
        index.update({synset: i for i, synset in enumerate(ImageNetInfo().label_names())})
    if all(c in index for c in classes):
        return np.array([index[c] for c in classes], dtype=np.int64)
    if len(classes) == num_classes:
        return np.arange(num_classes, dtype=np.int64)
    return None

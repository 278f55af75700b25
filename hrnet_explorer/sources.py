"""Where `hrnet-explorer analyze` reads images from: a folder, the resolution lab, or Hugging Face `datasets`.

    SOURCE                  images                                      labels
    path/to/folder          ImageFolder layout (one sub-folder a class)  the sub-folder's index (sorted names)
                            or a flat folder of images                   none
    lab:N                   the lab's test split, images 0..N-1          the lab's classes
    hf:NAME[:SPLIT]         a `datasets` dataset: a folder written by     its first ClassLabel column
                            ``save_to_disk``, or a hub name (the cache
                            offline, the hub online)

Every source is indexable (``load(i)`` → an RGB PIL image and a label or None) and picklable, so that
DataLoader workers can read from it. ``load`` raises on a file it cannot read; the caller records that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .errors import InputError, MissingFileError
from .images import read_image

__all__ = ["Source", "open_source", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


@dataclass
class Source:
    """A dataset of images: ``ids[i]`` names image i; ``load(i)`` reads it."""

    spec: str  # as the user wrote it
    kind: str  # "folder" | "lab" | "hf"
    length: int
    classes: list[str] | None = None  # label i is classes[i]; None: no labels
    families: dict[str, str] | None = None  # class name → family (the lab: "fine" | "coarse")
    default_variant: str | None = None  # the model this source is made for ("lab")
    details: dict[str, Any] = field(default_factory=dict)  # for the manifest
    _paths: list[str] | None = None  # folder: relative paths
    _labels: list[int] | None = None  # folder: label per path
    _data: Any = None  # lab: LabDataset; hf: datasets.Dataset
    _image_column: str | None = None
    _label_column: str | None = None
    _index: dict[str, int] | None = None

    def __len__(self) -> int:
        return self.length

    def image_id(self, i: int) -> str:
        if self.kind == "folder":
            return self._paths[i]
        if self.kind == "lab":
            return f"lab/{self.details['split']}/{i}"
        return f"{self.details['name']}/{self.details['split']}/{i}"

    def index_of(self, image_id: str) -> int:
        """The index of the image named ``image_id`` (the inverse of :meth:`image_id`)."""
        if self.kind == "folder":
            if self._index is None:
                self._index = {p: i for i, p in enumerate(self._paths)}
            return self._index[image_id]
        return int(image_id.rsplit("/", 1)[1])

    def load(self, i: int) -> tuple[Image.Image, int | None]:
        """Image ``i`` as an RGB PIL image (validated by :func:`~hrnet_explorer.images.read_image`) and its label."""
        if self.kind == "folder":
            root = self.details["root"]
            label = self._labels[i] if self._labels is not None else None
            return read_image(os.path.join(root, self._paths[i])), label
        if self.kind == "lab":
            image, label = self._data[i]
            return read_image(image), int(label)
        row = self._data[i]
        image = row[self._image_column]
        if isinstance(image, dict):  # an Image column read without decoding: {"bytes", "path"}
            image = image.get("bytes") or image.get("path")
        label = row[self._label_column] if self._label_column else None
        return read_image(image), (None if label is None or label < 0 else int(label))

    def file(self, i: int) -> tuple[str, int | None] | None:
        """Image ``i``'s file and label, nothing read (folder sources; None where images are not files): for
        readers that decode the bytes themselves (``analyze --decode gpu``)."""
        if self.kind != "folder":
            return None
        label = self._labels[i] if self._labels is not None else None
        return os.path.join(self.details["root"], self._paths[i]), label

    def describe(self) -> dict:
        """What the manifest records about the source."""
        return {
            "spec": self.spec,
            "kind": self.kind,
            "images": self.length,
            "classes": self.classes,
            "families": self.families,
            **{k: v for k, v in self.details.items() if k != "root"},
        }


def _folder(spec: str) -> Source:
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise MissingFileError(
            f"No folder {spec!r}. SOURCE is a folder of images, lab:N, or hf:NAME[:SPLIT] (a Hugging Face dataset)."
        )

    def images_in(folder: Path) -> list[Path]:
        found = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        return sorted(found, key=lambda p: p.relative_to(root).as_posix())

    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = [d.name for d in subdirs if images_in(d)]
    if classes:  # ImageFolder layout (torchvision's convention: sorted class folders, files found recursively)
        paths, labels = [], []
        for label, name in enumerate(classes):
            for p in images_in(root / name):
                paths.append(p.relative_to(root).as_posix())
                labels.append(label)
        layout = "imagefolder"
    else:
        paths = [p.relative_to(root).as_posix() for p in images_in(root)]
        labels, classes, layout = None, None, "flat"
    if not paths:
        raise InputError(f"No images in {spec!r} (looked for {', '.join(IMAGE_SUFFIXES)}).")
    return Source(
        spec,
        "folder",
        len(paths),
        classes=classes,
        details={"root": str(root.resolve()), "layout": layout},
        _paths=paths,
        _labels=labels,
    )


def _lab(spec: str, size: int | None) -> Source:
    text = spec.split(":", 1)[1]
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"lab:N takes a positive number of images, not {text!r} (e.g. lab:1000).")
    try:
        from . import lab
    except ImportError as exc:
        raise InputError(f"The resolution lab (hrnet_explorer.lab) is not available here: {exc}") from exc
    n = int(text)
    data = lab.LabDataset(n, "test", size or 224)
    return Source(
        spec,
        "lab",
        n,
        classes=list(lab.CLASSES),
        families=dict(lab.FAMILY),
        default_variant="lab",
        details={"split": "test", "size": size or 224},
        _data=data,
    )


def _hf(spec: str) -> Source:
    try:
        import datasets
    except ImportError as exc:
        raise InputError("hf:NAME needs the `datasets` package: pip install 'hrnet-explorer[datasets]'.") from exc
    rest = spec[3:]
    name, _, split = rest.partition(":") if not Path(rest).exists() else (rest, "", "")
    if not name:
        raise InputError("hf:NAME[:SPLIT] needs a dataset name or a folder written by save_to_disk.")
    if Path(name).expanduser().exists():
        data = datasets.load_from_disk(str(Path(name).expanduser()))
        origin = "disk"
    else:
        data = datasets.load_dataset(name, split=split or None)
        origin = "hub"
    if isinstance(data, datasets.DatasetDict):
        if split and split not in data:
            raise InputError(f"{name} has no split {split!r}; it has {', '.join(data)}.")
        split = split or next((s for s in ("validation", "test", "train") if s in data), next(iter(data)))
        data = data[split]
    split = split or str(getattr(data, "split", None) or "all")
    features = data.features
    image_column = next((k for k, f in features.items() if isinstance(f, datasets.Image)), None)
    if image_column is None:
        raise InputError(f"{name} has no Image column (columns: {', '.join(features)}).")
    label_column = next((k for k, f in features.items() if isinstance(f, datasets.ClassLabel)), None)
    classes = list(features[label_column].names) if label_column else None
    return Source(
        spec,
        "hf",
        len(data),
        classes=classes,
        details={"name": name, "split": split, "origin": origin, "image_column": image_column},
        _data=data,
        _image_column=image_column,
        _label_column=label_column,
    )


def open_source(spec: str, *, size: int | None = None) -> Source:
    """The :class:`Source` that ``spec`` names (see the module's table). ``size``: the lab's image size."""
    if spec.startswith("lab:"):
        return _lab(spec, size)
    if spec.startswith("hf:"):
        return _hf(spec)
    return _folder(spec)

"""The app's dense view ("Pixels"): a dense model's mask over the image, a class's pixels split stream by stream,
and each stream knocked out at the head — the core's dense API (:mod:`hrnet_explorer.dense`), one endpoint.

The dense models offered: the dense lab model (``lab-seg``) and the models of ``--models DIR`` whose card says
``"task": "segmentation"``. The image is preprocessed as the model's card says (the whole image, squashed to the
model's input size); the class explained is the one picked, or the largest class other than the first (background).
"""

from __future__ import annotations

from typing import Any

import torch

from ..dense.view import PixelsView, pixels_view
from ..errors import InputError
from ..figures.dense import pixels_figures
from ..zoo import LAB_SEG, LoadedModel, ModelFile, load_model
from .guard import user_errors

__all__ = ["LARGEST", "DenseView"]

LARGEST = "largest class"


class DenseView:
    """The dense models offered on one device, and the endpoint that explains one image with one of them."""

    def __init__(self, device: torch.device, models: dict[str, ModelFile]):
        self.device = device
        self.files = {n: m for n, m in models.items() if m.card.get("task") == "segmentation"}

    def choices(self) -> list[str]:
        return [LAB_SEG, *self.files]

    def class_names(self) -> list[str]:
        """The first dense model's class names (the menu's choices; API callers may name any model's class)."""
        return list(self.load(self.choices()[0]).class_names)

    def load(self, name: Any) -> LoadedModel:
        if name == LAB_SEG:
            return load_model(LAB_SEG, device=self.device)
        if isinstance(name, str) and name in self.files:
            return self.files[name].load(self.device)
        raise InputError(f"Unknown dense model {name!r}. Choose one of: {', '.join(self.choices())}.")

    @user_errors
    def segment(self, image: Any, model: Any = LAB_SEG, target: Any = LARGEST, plot_width: Any = 0):
        """→ (the mask over the image, the class's pixels split by stream, a Markdown table)."""
        if image is None:
            raise InputError("Upload or pick an image first.")
        loaded = self.load(model)
        view = pixels_view(loaded, image, None if target in (None, "", LARGEST) else target)
        return (*pixels_figures(view, loaded.name), _table(view))


def _table(view: PixelsView) -> str:
    split = view.split
    lines = ["| class | share of the image |", "|---|---|"]
    lines += [f"| {name} | {f:.1%} |" for name, f in view.segmentation.fractions().items()]
    parts = " · ".join(f"stream {k} {p:.4g}" for k, p in enumerate(split.parts[:-1].tolist()))
    lines += [
        "",
        f"**{split.label}**: its pixels' summed score {split.score:.4g} = {parts} · bias {float(split.parts[-1]):.4g} "
        f"(exact; error {split.error:.1e}).",
        "",
        "| stream removed at the head | pixels changed | mIoU against the unchanged mask | boundary F |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {k} | {ko.changed_fraction:.1%} | {ko.against_before.miou:.3f} | {ko.against_before.boundary_f:.3f} |"
        for k, ko in enumerate(view.knockouts)
    ]
    return "\n".join(lines)

"""Maps as pictures without plotly: a heatmap in colour, over the input crop, labelled, with a colour bar.

What ``hrnet-explorer explain --out FILE.png`` writes; any caller with a ``[H, W]`` map and the crop it
belongs to (:func:`~hrnet_explorer.images.display_crop`) can draw the same sheet. Colours follow the
figures: blue-white-red around 0 for a signed map, black-red-yellow for a non-negative one; the top
:data:`~hrnet_explorer.images.OUTLIER_PERC` % of ``|map|`` saturate (Captum's ``outlier_perc``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .images import OUTLIER_PERC, display_scale

__all__ = ["BAR_PX", "LABEL_PX", "Sheet", "colorbar", "colorize", "overlay"]

LABEL_PX = 16  # the text strip above each panel
BAR_PX = 36  # the colour bar strip below the sheet (one line of notes; 12 px more for each further line)


def colorize(heat, signed: bool, scale: float | None = None) -> np.ndarray:
    """``[H, W]`` map (tensor or array) → ``H×W×3`` uint8: blue-white-red around 0 when ``signed``, black-red-yellow
    otherwise. ``scale`` (default: the 98th percentile of ``|map|``) maps to full colour; beyond it saturates."""
    h = heat.numpy().astype(np.float64) if hasattr(heat, "numpy") else np.asarray(heat, np.float64)
    scale = scale or display_scale(h)
    if signed:
        v = np.clip(h / scale, -1, 1)[..., None]
        pos, neg = np.array([215, 48, 39]), np.array([49, 54, 149])
        rgb = np.where(v >= 0, 255 + v * (pos - 255), 255 - v * (neg - 255))
    else:
        v = np.clip(h / scale, 0, 1)
        rgb = np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], -1) * 255
    return rgb.clip(0, 255).astype(np.uint8)


def overlay(crop: Image.Image, heat, signed: bool, label: str = "", scale: float | None = None) -> Image.Image:
    """The map over the crop (60 %), under a :data:`LABEL_PX` strip that names the panel."""
    colored = Image.fromarray(colorize(heat, signed, scale)).resize(crop.size, Image.BILINEAR)
    blended = Image.blend(crop.convert("RGB"), colored, 0.6)
    panel = Image.new("RGB", (crop.width, crop.height + LABEL_PX), "white")
    panel.paste(blended, (0, LABEL_PX))
    ImageDraw.Draw(panel).text((3, 2), label, fill="black")
    return panel


def colorbar(width: int, signed: bool, scale: float | None, what: str) -> Image.Image:
    """A horizontal colour bar with its end values (``scale`` None: each panel on its own scale, its end in the
    panel's label), and what they mean, the clipping included, wrapped below it."""
    end = 1.0 if scale is None else scale
    note = textwrap.wrap(f"{what}; top {OUTLIER_PERC:g} % of |map| saturate", max(20, (width - 20) // 6))
    ramp = np.linspace(-end if signed else 0.0, end, max(width - 20, 2))[None].repeat(8, 0)
    bar = Image.new("RGB", (width, BAR_PX + 12 * (len(note) - 1)), "white")
    bar.paste(Image.fromarray(colorize(ramp, signed, end)), (10, 2))
    draw = ImageDraw.Draw(bar)
    draw.text((10, 11), "0" if not signed else f"{-end:.3g}", fill="black")
    right = "its end" if scale is None else f"{end:.3g}"
    draw.text((width - 10 - 6 * len(right), 11), right, fill="black")
    for k, line in enumerate(note):
        draw.text((10, 22 + 12 * k), line, fill="black")
    return bar


@dataclass(frozen=True)
class Sheet:
    """Panels of one size side by side, and a colour bar below them, drawn as wide as the row."""

    panels: Sequence[Image.Image]
    bar: Callable[[int], Image.Image]  # width → the bar (e.g. a :func:`colorbar` with its settings)

    def image(self) -> Image.Image:
        w, h = self.panels[0].size
        strip = self.bar(w * len(self.panels))
        sheet = Image.new("RGB", (w * len(self.panels), h + strip.height), "white")
        for k, panel in enumerate(self.panels):
            sheet.paste(panel, (k * w, 0))
        sheet.paste(strip, (0, h))
        return sheet

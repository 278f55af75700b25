"""What the figure families share: small conversions, labels and colour scales (no drawing)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # the attribution dataclasses are only read, by attribute
    from PIL import Image

    from ..attribution import KnockoutResult, PixelAttribution, StreamGradCAM, StreamShares

SEQUENTIAL = "Viridis"
DIVERGING = "RdBu_r"  # red = positive, blue = negative, white = 0
HEAT = "Inferno"


def as_numpy(t: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().float().cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def short_name(variant: str) -> str:
    return variant.removeprefix("hrnet_")


def clip_label(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` characters at a word boundary where one is near, with an ellipsis."""
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    space = cut.rfind(" ")
    if space >= width // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def padded_range(values: Sequence[float], pad: float = 0.3) -> list[float]:
    """An axis range around 0 and ``values`` with room beyond each bar end for its text label, so that labels
    drawn outside negative bars do not run into the tick labels (or get clipped)."""
    lo, hi = min(0.0, *values), max(0.0, *values)
    span = (hi - lo) or 1.0
    return [lo - pad * span if lo < 0 else lo, hi + pad * span if hi > 0 or lo == 0 else hi]


def rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[k : k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def weights_note(weights: Any) -> str:
    """'' for real weights, a loud note for random ones (``weights`` is a WeightsSource or None)."""
    return " · <b>RANDOM weights: meaningless</b>" if weights is not None and weights.is_random else ""


def image_uri(image: Image.Image | np.ndarray, size: tuple[int, int] | None = None) -> str:
    """An RGB image as a JPEG data URI (small in the figure's JSON), resized to ``size`` = (H, W)."""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    img = img.convert("RGB")
    if size is not None and (img.height, img.width) != tuple(size):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def shrink(image: torch.Tensor, max_side: int) -> torch.Tensor:
    """Average [H, W] or [H, W, 3] down so that its longer side is at most ``max_side`` (display only)."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    size = (max(1, round(h * max_side / max(h, w))), max(1, round(w * max_side / max(h, w))))
    x = image.permute(2, 0, 1)[None] if image.ndim == 3 else image[None, None]
    x = F.adaptive_avg_pool2d(x.float(), size)[0]
    return x.permute(1, 2, 0) if image.ndim == 3 else x[0]


def symmetric(values: Sequence[np.ndarray] | np.ndarray) -> float:
    arrays = values if isinstance(values, (list, tuple)) else [values]
    top = max((float(np.abs(a).max()) if a.size else 0.0) for a in arrays)
    return top if top > 0 else 1.0


def target_text(result: PixelAttribution | StreamGradCAM | StreamShares | KnockoutResult) -> str:
    """ "class 3 (stripes)": the explained class by index and by the model's name for it (once if they agree)."""
    plain = f"class {result.target}"
    return plain if result.label == plain else f"{plain} ({result.label})"

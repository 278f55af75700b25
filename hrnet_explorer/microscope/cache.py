"""The disk cache of feature visualisations: one PNG per (model key, map, settings key, channel).

The final activation rides in the PNG's text chunk, so a unit is one file, written whole (a temporary name, then
a rename): a crash leaves no half file, and two processes writing the same unit write the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

__all__ = ["CACHE_ENV", "UnitCache", "default_cache_dir"]

CACHE_ENV = "HRNET_EXPLORER_MICROSCOPE_CACHE"


def default_cache_dir() -> Path:
    """``$HRNET_EXPLORER_MICROSCOPE_CACHE``, else ``$XDG_CACHE_HOME/hrnet-explorer/microscope`` (``~/.cache``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hrnet-explorer" / "microscope"


class UnitCache:
    """Feature visualisations on disk under ``root`` (default: :func:`default_cache_dir`)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def path(self, model: str, name: str, settings: str, channel: int) -> Path:
        return self.root / model / name / settings / f"{channel:04d}.png"

    def get(self, model: str, name: str, settings: str, channel: int) -> tuple[np.ndarray, float] | None:
        """(uint8 H×W×3 image, activation) of a unit, or None when it is not cached (or unreadable)."""
        path = self.path(model, name, settings, channel)
        if not path.is_file():
            return None
        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB")).copy(), float(im.text["activation"])
        except (OSError, KeyError, ValueError):  # a damaged file is a miss: it is recomputed and rewritten
            return None

    def put(self, model: str, name: str, settings: str, channel: int, image: np.ndarray, activation: float) -> Path:
        path = self.path(model, name, settings, channel)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = PngImagePlugin.PngInfo()
        info.add_text("activation", repr(float(activation)))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        Image.fromarray(image, "RGB").save(tmp, format="PNG", pnginfo=info)
        os.replace(tmp, path)
        return path

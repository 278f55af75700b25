"""Hugging Face Spaces' ZeroGPU: ``spaces.GPU`` when the ``spaces`` package is there, a no-op otherwise."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch

try:  # present on Hugging Face Spaces (ZeroGPU); absent elsewhere
    import spaces
except ImportError:  # pragma: no cover - depends on the host
    spaces = None

__all__ = ["gpu", "ZERO_GPU", "ON_SPACES", "device_label"]

F = TypeVar("F", bound=Callable)

ON_SPACES = bool(os.environ.get("SPACE_ID"))
ZERO_GPU = spaces is not None and os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")


def gpu(fn: F, duration: int = 60) -> F:
    """``spaces.GPU(duration=...)(fn)`` when the ``spaces`` package is installed (on a non-ZeroGPU Space it
    is itself a no-op); ``fn`` unchanged otherwise."""
    if spaces is None:
        return fn
    return spaces.GPU(duration=duration)(fn)


def device_label(device: torch.device) -> str:
    """What the app runs on, in words, for the header."""
    if ZERO_GPU:
        return "ZeroGPU (a CUDA GPU is attached for each request)"
    if device.type == "cuda":
        return f"CUDA · {torch.cuda.get_device_name(device)}"
    return f"CPU · {torch.get_num_threads()} threads"

"""Device and precision: CUDA when available, CPU otherwise; fp32 or bf16 autocast."""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from .errors import InputError

Precision = Literal["fp32", "bf16"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" → CUDA if available, else CPU. A CUDA request without CUDA is an error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise InputError(f"Unknown device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"Device {device!r} asked for, but CUDA is not available here: use 'cpu' or 'auto'.")
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"Unsupported device {device!r}: use 'auto', 'cpu' or 'cuda[:N]'.")
    return dev


def autocast(device: torch.device, precision: Precision, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` for "bf16", nothing for "fp32" (``cache=False`` inside CUDA graphs)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, cache_enabled=cache)
    return contextlib.nullcontext()

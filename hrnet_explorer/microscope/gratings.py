"""Grating stimuli for orientation tuning: plain sinusoidal gratings of every angle, period and phase.

The lab's fine classes (:mod:`hrnet_explorer.lab.task`) are gratings at four orientations only; a tuning curve needs
every angle, so the stimuli are drawn here, in the lab's convention: ``angle`` is the orientation of the stripes on
screen, counter-clockwise from horizontal (the image's y axis points down), so ``stripes-horizontal`` is 0°,
``stripes-diagonal`` 45° (x + y = const), ``stripes-vertical`` 90° and ``stripes-antidiagonal`` 135° (x − y = const);
:data:`LAB_ORIENTATION` records it (tests/unit/microscope/test_microscope_selectivity.py measures it on rendered
lab images).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError

__all__ = ["LAB_ORIENTATION", "Gratings", "gratings"]

LAB_ORIENTATION = {
    "stripes-horizontal": 0.0,
    "stripes-diagonal": 45.0,
    "stripes-vertical": 90.0,
    "stripes-antidiagonal": 135.0,
}


@dataclass(frozen=True)
class Gratings:
    """``images`` [A·P·F, 3, S, S] in [0, 1], in (angle, period, phase) order; the grid behind them."""

    images: torch.Tensor
    angles: np.ndarray
    periods: np.ndarray
    phases: np.ndarray

    @property
    def grid(self) -> tuple[int, int, int]:
        return self.angles.size, self.periods.size, self.phases.size


def gratings(
    angles: int | Sequence[float] = 12,
    periods: Sequence[float] = (3.0, 4.0, 5.0),
    phases: int = 4,
    size: int = 224,
    contrast: float = 0.11,
    grey: float = 0.5,
) -> Gratings:
    """Full-field gratings ``grey + contrast · cos(2π/period · (x sin θ + y cos θ) + φ)``, the same in every colour
    channel. ``angles``: a count (evenly over [0°, 180°)) or the angles themselves; ``phases``: evenly over [0, 2π).
    Defaults: the lab's periods (3–5 px) and mid contrast (0.08–0.14)."""
    a = np.arange(angles) * 180.0 / angles if isinstance(angles, int) else np.asarray(angles, dtype=np.float64)
    p = np.asarray(periods, dtype=np.float64)
    if a.size < 1 or p.size < 1 or (p <= 2).any():
        raise InputError("gratings need at least one angle and periods above 2 px (the Nyquist limit).")
    if not isinstance(phases, int) or phases < 1:
        raise InputError(f"phases must be a positive int, got {phases!r}.")
    if not 0 < contrast <= min(grey, 1 - grey):
        raise InputError(f"contrast must be in (0, {min(grey, 1 - grey)}] so that no pixel clips, got {contrast!r}.")
    f = np.arange(phases) * 2 * math.pi / phases
    coords = torch.arange(size, dtype=torch.float64) + 0.5
    y, x = coords.view(1, size, 1), coords.view(1, 1, size)
    theta = torch.as_tensor(np.deg2rad(a)).repeat_interleave(p.size * phases).view(-1, 1, 1)
    w = torch.as_tensor(2 * math.pi / p).repeat_interleave(phases).repeat(a.size).view(-1, 1, 1)
    phi = torch.as_tensor(f).repeat(a.size * p.size).view(-1, 1, 1)
    wave = torch.cos(w * (x * torch.sin(theta) + y * torch.cos(theta)) + phi)
    images = (grey + contrast * wave).float().unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return Gratings(images, a, p, f)

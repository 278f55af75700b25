"""Selectivity per unit, as pure maths on responses: class and family selectivity, orientation tuning.

- **class selectivity** (Morcos et al. 2018, "On the importance of single directions for generalization"):
  ``(μ_max − μ_rest) / (μ_max + μ_rest)`` with ``μ_max`` the largest class-conditional mean response and
  ``μ_rest`` the mean of the other classes' means; 0 for a unit that responds alike to every class, 1 for one that
  responds to one class only. Responses are clipped at 0 first (the index is defined for ReLU outputs; a
  pre-activation map's negative part counts as silence). NaN for a unit silent on every class.
- **family selectivity**: the same index over families (the lab's fine vs coarse), with the preferred family.
- **orientation tuning** from gratings (:mod:`.gratings`): the tuning curve is the mean response per angle (over
  periods and phases); the orientation selectivity index is ``1 − circular variance`` on the doubled angle,
  ``|Σ_a T(a) e^{2iθ_a}| / Σ_a T(a)`` (0: untuned, 1: responds at one orientation only), and the preferred
  orientation is half that vector's angle, in degrees in [0, 180).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = [
    "Selectivity",
    "Tuning",
    "selectivity_index",
    "class_selectivity",
    "family_selectivity",
    "orientation_tuning",
]


@dataclass(frozen=True)
class Selectivity:
    """Per unit: ``index`` [U] (NaN: silent), ``preferred`` [U] (the group with the largest mean response), and the
    group-conditional means ``means`` [U, G] behind them."""

    index: np.ndarray
    preferred: np.ndarray
    means: np.ndarray


@dataclass(frozen=True)
class Tuning:
    """Orientation tuning per unit: ``curve`` [U, A] mean response per angle of ``angles`` (degrees), ``osi`` [U]
    (NaN: silent on every grating), ``preferred`` [U] in degrees [0, 180), and ``by_period`` [U, A, P] behind it."""

    angles: np.ndarray
    curve: np.ndarray
    osi: np.ndarray
    preferred: np.ndarray
    by_period: np.ndarray


def _responses(responses: np.ndarray, n: int | None = None) -> np.ndarray:
    r = np.asarray(responses, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2 or r.shape[0] == 0:
        raise InputError(f"responses must be [N images, U units] with N ≥ 1, got shape {np.shape(responses)}.")
    if n is not None and r.shape[0] != n:
        raise InputError(f"responses hold {r.shape[0]} images but {n} labels were given.")
    return np.clip(r, 0, None)


def selectivity_index(means: np.ndarray) -> Selectivity:
    """The index of Morcos et al. from group-conditional means [U, G ≥ 2] (already clipped at 0)."""
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or means.shape[1] < 2:
        raise InputError(f"Selectivity needs at least two groups; got means of shape {means.shape}.")
    preferred = means.argmax(1)
    top = means.max(1)
    rest = (means.sum(1) - top) / (means.shape[1] - 1)
    total = top + rest
    with np.errstate(invalid="ignore", divide="ignore"):
        index = np.where(total > 0, (top - rest) / total, np.nan)
    return Selectivity(index, preferred, means)


def _group_means(r: np.ndarray, groups: np.ndarray, count: int, what: str) -> np.ndarray:
    present = np.bincount(groups, minlength=count)
    if (present == 0).any():
        missing = np.flatnonzero(present == 0).tolist()
        raise InputError(f"Every {what} needs at least one image; none for {what}(es) {missing}.")
    sums = np.zeros((count, r.shape[1]))
    np.add.at(sums, groups, r)
    return (sums / present[:, None]).T


def class_selectivity(responses: np.ndarray, labels: Sequence[int] | np.ndarray, classes: int) -> Selectivity:
    """Class selectivity of each unit from ``responses`` [N, U] to images of ``labels`` [N] in 0..classes-1."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    r = _responses(responses, labels.size)
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise InputError(f"labels must be in 0..{classes - 1}.")
    return selectivity_index(_group_means(r, labels, classes, "class"))


def family_selectivity(
    responses: np.ndarray, labels: Sequence[int] | np.ndarray, family_of: Sequence[int] | np.ndarray
) -> Selectivity:
    """Family selectivity: ``family_of[k]`` is class k's family (0..F-1); each family's mean is over its images."""
    family_of = np.asarray(family_of, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= family_of.size):
        raise InputError(f"labels must be in 0..{family_of.size - 1} (one family per class).")
    r = _responses(responses, labels.size)
    return selectivity_index(_group_means(r, family_of[labels], int(family_of.max()) + 1, "family"))


def orientation_tuning(responses: np.ndarray, angles: Sequence[float] | np.ndarray) -> Tuning:
    """Orientation tuning from ``responses`` [U, A, P, F] (units; angles of ``angles`` degrees, periods, phases — the
    order of :func:`~.gratings.gratings`) or [U, A]. ``angles`` should cover [0°, 180°) evenly (at least 3)."""
    angles = np.asarray(angles, dtype=np.float64).reshape(-1)
    r = np.clip(np.asarray(responses, dtype=np.float64), 0, None)
    if r.ndim == 2:
        r = r[:, :, None, None]
    if r.ndim != 4 or r.shape[1] != angles.size or angles.size < 3:
        raise InputError(
            f"responses must be [U, {angles.size} angles, periods, phases] with at least 3 angles; "
            f"got shape {np.shape(responses)}."
        )
    by_period = r.mean(3)
    curve = by_period.mean(2)
    phasor = (curve * np.exp(2j * np.deg2rad(angles))[None]).sum(1)
    total = curve.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        osi = np.where(total > 0, np.abs(phasor) / total, np.nan)
    preferred = np.rad2deg(np.angle(phasor) / 2) % 180.0
    return Tuning(angles, curve, osi, preferred, by_period)

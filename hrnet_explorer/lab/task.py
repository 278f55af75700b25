"""The resolution lab's task: procedural images whose class evidence is known by construction.

Ten classes in two families:

- **fine** (``stripes-horizontal``, ``stripes-vertical``, ``stripes-diagonal``, ``stripes-antidiagonal``,
  ``checker``): a zero-mean grating of period ``PERIOD`` = 3–5 px inside an elliptical region. A stripe class
  is one plane wave of that period at its orientation; ``checker`` is the product of two axis-aligned
  waves, scaled so that its two Fourier components (on the diagonals) have the same period and together the
  same energy as one stripe grating: every fine class has in-mask variance ``contrast² / 2``. The grating
  fades in over ``TAPER`` px inside the ellipse's edge (an erf profile), so the outline carries no trace of
  the orientation. The region's outline, size, place, colour, the grating's contrast, period and phase are
  drawn from one distribution for all five.
- **coarse** (``disk``, ``square``, ``triangle``, ``ring``, ``cross``): the large-scale shape of a plainly
  coloured region. Shapes have equal area; size, place and rotation come from one distribution for all five.

Every image is class-independent clutter — a smooth colour field (4×4 and 8×8 grids, bilinearly upsampled)
and isotropic Gaussian pixel noise truncated at 3σ — with one evidence region painted on it. The noise is
added after the region is painted, so it is the same inside and outside. The region's colour is drawn from
one distribution for all ten classes, inside ``COLOUR_RANGE``, chosen with the largest grating excursion
and the noise bound so that **no pixel ever clips** at 0 or 1 (clipping would shift the mean colour of a
strongly modulated region, and so tell the classes apart by colour).

Ground truth, true by construction and checked on rendered pixels by ``tests/unit/lab/test_lab_truth.py``:

1. Only the pixels of the evidence region (``LabSample.mask``) carry class information: the clutter is
   drawn independently of the label, so redrawing the region as the clutter beneath it (``evidence=False``)
   leaves nothing to classify (chance, 10 %). A sample rendered with another label (``labels=``) differs
   from it only inside the two classes' regions.
2. The fine classes' information lies only at spatial frequencies of 1/5–1/3 cycles per pixel: a Gaussian
   blur of sigma ``BLUR_SIGMA`` = 3 px scales a period-5 grating by exp(-2π²σ²/P²) < 1e-3, and the taper
   keeps the edge from leaking the grating into low frequencies. After that blur a classifier on the
   region's mean colour, on a gradient-orientation histogram of the blurred region or on a 7×7 low-pass
   image stays at chance among the fine classes (measured in the tests). The coarse classes' shapes
   (≥ 40 px across) survive the blur.

Not true by construction, and so measured rather than assumed: which of HRNet's streams a trained model
uses for either family, or for each class.

:func:`render_scenes` paints two evidence regions in one image — one fine, one coarse, in opposite halves —
for checks that a map follows the class it explains rather than the most salient blob.

Every random draw is a counter-based hash of (split, index, what is drawn, element), computed with integer
tensor arithmetic, so a sample depends only on (split, index, size) and a whole batch renders in one
vectorised pass (on the GPU during training). The hash is exact everywhere; the float maths after it rounds
slightly differently across devices and thread counts, which moves a rare pixel by one 8-bit level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ArgumentError, InputError, OutOfRangeError

__all__ = [
    "BLUR_SIGMA",
    "CLASSES",
    "COARSE",
    "COLOUR_RANGE",
    "CONTRAST",
    "FAMILY",
    "FINE",
    "PERIOD",
    "SPLITS",
    "TAPER",
    "LabBatch",
    "LabSample",
    "LabScenes",
    "LabDataset",
    "gaussian_blur",
    "render",
    "render_scenes",
    "sample",
    "to_pil",
]

FINE = ["stripes-horizontal", "stripes-vertical", "stripes-diagonal", "stripes-antidiagonal", "checker"]
COARSE = ["disk", "square", "triangle", "ring", "cross"]
CLASSES: list[str] = FINE + COARSE
FAMILY: dict[str, str] = {**dict.fromkeys(FINE, "fine"), **dict.fromkeys(COARSE, "coarse")}
SPLITS: dict[str, int] = {"train": 1, "val": 2, "test": 3}
BLUR_SIGMA = 3.0  # px; removes the fine classes' gratings (period ≤ 5 px), keeps the coarse shapes
PERIOD = (3.0, 5.0)  # px, the fine gratings' period range (every class, the checker's components too)
CONTRAST = (0.08, 0.14)  # the gratings' amplitude: a stripe spans colour ± contrast, the checker ± √2 contrast
TAPER = 2.5  # px: sigma of the erf edge over which a grating fades in; half amplitude 2.5 TAPER inside the edge
NOISE = (0.02, 0.04)  # pixel noise sigma, truncated at 3 sigma
# The region colour's range per channel: the largest excursion (checker peak √2 · 0.14) plus the noise bound
# (3 · 0.04) from either end, with a margin of 3 grey levels, so that no pixel reaches 0 or 1.
COLOUR_RANGE = (0.33, 0.67)
_CLUTTER_BASE = (0.35, 0.3)  # base colour 0.35 + 0.3 u per channel; the smooth fields add at most ± 0.15
_TAPER_OFFSET = 2.5  # the taper's centre, in TAPER units inside the edge: at the edge the grating is Φ(-2.5) = 0.6 %

# What is drawn: each draw has its own stream of the hash.
_U_SIZE, _U_X, _U_Y, _U_ROT, _U_ASPECT, _U_PERIOD, _U_PHASE1, _U_PHASE2, _U_CONTRAST = range(9)
_U_OFFSET, _U_NOISE, _U_SIDE, _U_AXIS = 10, 11, 12, 13  # _U_OFFSET: one per colour channel (element)
_F_COARSE_GRID, _F_FINE_GRID, _F_BASE, _F_NOISE = 20, 21, 22, 23  # fields (one value per element)
_SCENE = 5000  # scenes' regions: key (split, index, _SCENE + j), apart from single samples' (split, index)
_M32 = 0xFFFFFFFF


def _mix(x):
    """A 32-bit integer hash (a "lowbias32"-style finaliser) on ints or int64 tensors; products stay < 2**59."""
    x = x ^ (x >> 16)
    x = (x * 0x045D9F3B) & _M32
    x = x ^ (x >> 16)
    x = (x * 0x045D9F3B) & _M32
    return x ^ (x >> 16)


def _hash(*keys: torch.Tensor | int) -> torch.Tensor:
    """Chain the keys through the hash; tensor keys broadcast, so one call hashes a whole field."""
    h: torch.Tensor | int = 0x2545F491
    for key in keys:
        h = _mix(((h ^ key) + 0x9E3779B9) & _M32)
    return torch.as_tensor(h, dtype=torch.int64)


def _uniform(*keys: torch.Tensor | int) -> torch.Tensor:
    """Uniform floats in (0, 1), exact in float32 (24 bits of the hash)."""
    return ((_hash(*keys) >> 8).float() + 0.5) * (1.0 / (1 << 24))


def _normal(*keys: torch.Tensor | int) -> torch.Tensor:
    """Standard normal floats by Box–Muller from two hash streams."""
    u1 = _uniform(*keys, 1)
    u2 = _uniform(*keys, 2)
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)


@dataclass(frozen=True)
class LabBatch:
    """A rendered batch: images (B, 3, S, S) float in [0, 1] on 8-bit levels, labels (B,), masks (B, S, S)."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor


@dataclass(frozen=True)
class LabScenes:
    """Two-evidence scenes: images (B, 3, S, S); labels (B, 2) and masks (B, 2, S, S), [fine, coarse] each."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor


def _smooth_field(key: tuple, grid: int, size: int, device: torch.device) -> torch.Tensor:
    """(B, 3, S, S) bilinear upsampling of a (grid × grid) field of uniform values in [-1, 1]."""
    element = torch.arange(3 * grid * grid, device=device).view(1, 3, grid, grid)
    values = 2.0 * _uniform(*key, element) - 1.0
    return F.interpolate(values, size=(size, size), mode="bilinear", align_corners=False)


def _shape_masks(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor, aspect: torch.Tensor) -> torch.Tensor:
    """(6, B, S, S) region masks in rotated coordinates: the five coarse shapes and the fine ellipse.

    Every shape has the area of a disk of radius ``r`` (so area says nothing about the class) and
    fits inside a circle of radius 1.6 r.
    """
    rho2 = u * u + v * v
    disk = rho2 <= r * r
    half_side = r * math.sqrt(math.pi) / 2
    square = torch.maximum(u.abs(), v.abs()) <= half_side
    circum = r * math.sqrt(4 * math.pi / (3 * math.sqrt(3)))  # equilateral triangle of area π r²
    triangle = torch.ones_like(disk)
    for k in range(3):
        angle = math.pi / 2 + 2 * math.pi * k / 3
        triangle &= u * math.cos(angle) + v * math.sin(angle) <= circum / 2
    outer = r / math.sqrt(0.75)  # annulus with inner radius half the outer one
    ring = (rho2 <= outer * outer) & (rho2 >= (outer / 2) ** 2)
    arm = r * math.sqrt(9 * math.pi / 20)  # plus sign of arm half-length L and half-width L/3
    cross = ((u.abs() <= arm) & (v.abs() <= arm / 3)) | ((u.abs() <= arm / 3) & (v.abs() <= arm))
    ellipse = (u / (r * aspect)) ** 2 + (v * aspect / r) ** 2 <= 1.0
    return torch.stack([disk, square, triangle, ring, cross, ellipse])


def _taper(u: torch.Tensor, v: torch.Tensor, r: torch.Tensor, aspect: torch.Tensor) -> torch.Tensor:
    """(B, S, S) the fine gratings' envelope: an erf edge of sigma ``TAPER`` px inside the ellipse's outline.

    The distance to the outline is the first-order one, (1 - F) / |∇F| with F the ellipse's quadratic form:
    exact at the edge, where it matters (a hard-edged grating leaks into low frequencies along every stretch
    of outline parallel to its stripes, and that leak survives any blur).
    """
    a2, b2 = (r * aspect) ** 2, (r / aspect) ** 2
    quadratic = u * u / a2 + v * v / b2
    gradient = 2 * torch.sqrt((u / a2) ** 2 + (v / b2) ** 2)
    distance = (1 - quadratic) / gradient.clamp_min(1e-6)
    return 0.5 * (1 + torch.erf((distance / TAPER - _TAPER_OFFSET) / math.sqrt(2)))


def _grating(x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor, period, phase1, phase2) -> torch.Tensor:
    """(B, S, S) zero-mean fine pattern of variance 1/2 for each sample's fine class (unused for coarse ones)."""
    w = 2 * math.pi / period
    diag = w / math.sqrt(2)  # a wave along a diagonal, or each axis factor of the checker: period `period`
    shape = torch.broadcast_shapes(x.shape, y.shape, period.shape)
    patterns = torch.stack(
        [
            p.expand(shape)
            for p in (
                torch.cos(w * y + phase1),
                torch.cos(w * x + phase1),
                torch.cos(diag * (x + y) + phase1),
                torch.cos(diag * (x - y) + phase1),
                # cos·cos = (cos(diagonal) + cos(antidiagonal)) / 2, both of period `period`; √2 gives the
                # pair the variance of one stripe grating (1/2), at a peak of √2.
                math.sqrt(2) * torch.cos(diag * x + phase1) * torch.cos(diag * y + phase2),
            )
        ]
    )
    index = labels.clamp(max=len(FINE) - 1).view(1, -1, 1, 1).expand(1, *patterns.shape[1:])
    return patterns.gather(0, index)[0]


def _region(
    key: tuple,
    own: torch.Tensor,
    labels: torch.Tensor,
    r: torch.Tensor,
    cx: torch.Tensor,
    cy: torch.Tensor,
    size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One evidence region per sample, (B, S, S) masks and (B, 3, S, S) pixels, at radius ``r`` and centre.

    ``own``: the sample's own clutter base colour (normalised, in (0, 1)), which the region's colour is set
    off from; ``key`` draws everything else (rotation, aspect, colour offset, the grating)."""
    b = labels.numel()

    def draw(what: int) -> torch.Tensor:  # one uniform per sample, shape (B, 1, 1)
        return _uniform(*key, what).view(b, 1, 1)

    theta = 2 * math.pi * draw(_U_ROT)
    aspect = 1.0 + 0.5 * draw(_U_ASPECT)
    coords = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    y, x = coords.view(1, size, 1), coords.view(1, 1, size)
    u = (x - cx) * torch.cos(theta) + (y - cy) * torch.sin(theta)
    v = -(x - cx) * torch.sin(theta) + (y - cy) * torch.cos(theta)
    shapes = _shape_masks(u, v, r, aspect)
    fine = labels < len(FINE)
    shape_index = torch.where(fine, len(COARSE), labels - len(FINE))
    masks = shapes.gather(0, shape_index.view(1, b, 1, 1).expand(1, b, size, size))[0]

    # Colour: per channel a third to two thirds of the way round the colour range from the clutter's own
    # base (modulo the range), so the region always stands off its surround by ≥ 0.35 of the range.
    channels = torch.arange(3, device=device).view(1, 3, 1, 1)
    offset = 0.35 + 0.3 * _uniform(*key, _U_OFFSET, channels)
    lo, hi = COLOUR_RANGE
    region = (lo + (hi - lo) * torch.frac(own + offset)).expand(b, 3, size, size)
    if bool(fine.any()):
        period = PERIOD[0] + (PERIOD[1] - PERIOD[0]) * draw(_U_PERIOD)
        contrast = CONTRAST[0] + (CONTRAST[1] - CONTRAST[0]) * draw(_U_CONTRAST)
        pattern = _grating(x, y, labels, period, 2 * math.pi * draw(_U_PHASE1), 2 * math.pi * draw(_U_PHASE2))
        envelope = _taper(u, v, r, aspect)
        region = region + (fine.view(b, 1, 1) * contrast * envelope * pattern).unsqueeze(1)
    return masks, region


def _checked_indices(indices, split: str, size: int, device) -> tuple[torch.Tensor, torch.device]:
    if split not in SPLITS:
        raise InputError(f"Unknown lab split {split!r}: use one of {', '.join(SPLITS)}.")
    if not 32 <= size <= 1024:
        raise InputError(f"Lab images are 32..1024 px, got {size}.")
    device = torch.device(device)
    index = torch.as_tensor(indices, dtype=torch.int64, device=device).reshape(-1)
    if index.numel() == 0 or int(index.min()) < 0:
        raise InputError("Lab indices must be a non-empty list of non-negative integers.")
    return index, device


def _clutter(back: tuple, size: int, device: torch.device) -> torch.Tensor:
    """(B, 3, S, S) the label-free colour field, within [0.2, 0.8]."""
    channels = torch.arange(3, device=device).view(1, 3, 1, 1)
    base = _CLUTTER_BASE[0] + _CLUTTER_BASE[1] * _uniform(*back, _F_BASE, channels)
    return (
        base
        + 0.1 * _smooth_field((*back, _F_COARSE_GRID), 4, size, device)
        + 0.05 * _smooth_field((*back, _F_FINE_GRID), 8, size, device)
    )


def _finish(image: torch.Tensor, back: tuple, size: int, device: torch.device) -> torch.Tensor:
    """Add the truncated pixel noise and quantise to 8-bit levels (no clamp needed: nothing reaches 0 or 1)."""
    b = image.shape[0]
    sigma = NOISE[0] + (NOISE[1] - NOISE[0]) * _uniform(*back, _U_NOISE).view(b, 1, 1, 1)
    element = torch.arange(3 * size * size, device=device).view(1, 3, size, size)
    image = image + sigma * _normal(*back, _F_NOISE, element).clamp(-3, 3)
    return torch.round(image * 255) / 255  # what an 8-bit image file holds


def render(
    indices: torch.Tensor | Sequence[int] | range,
    split: str = "test",
    size: int = 224,
    device: str | torch.device = "cpu",
    *,
    evidence: bool = True,
    clutter: int = 0,
    labels: torch.Tensor | Sequence[int] | None = None,
) -> LabBatch:
    """Render the samples ``indices`` of ``split`` in one vectorised pass on ``device``.

    Sample ``i`` has label ``i % 10`` (``CLASSES`` order). ``evidence=False`` redraws the region as the clutter
    beneath it (the label and mask are kept: the mask says where the evidence *was*). ``clutter`` picks the
    background: 0 is the sample's own, any other number a new, independent background behind the same
    evidence. ``labels`` (one per index) overrides the label: the same sample — place, size, rotation,
    colour, grating draws, clutter, noise — painted as another class, so two such renders differ exactly
    where either class's region lies.
    """
    index, device = _checked_indices(indices, split, size, device)
    b = index.numel()
    if labels is None:
        label = index % len(CLASSES)
    else:
        label = torch.as_tensor(labels, dtype=torch.int64, device=device).reshape(-1)
        if label.numel() != b or int(label.min()) < 0 or int(label.max()) >= len(CLASSES):
            raise InputError(f"labels must be {b} class indices in 0..{len(CLASSES) - 1}, one per index.")
    key = (SPLITS[split], index.view(b, 1, 1, 1))
    back = (SPLITS[split], index.view(b, 1, 1, 1), 1000 + clutter)
    field = _clutter(back, size, device)
    # Region geometry, in pixels; sizes scale with the image, the fine period does not.
    r = size * (0.11 + 0.09 * _uniform(*key, _U_SIZE).view(b, 1, 1))
    extent = 1.6 * r + 2
    cx = extent + (size - 2 * extent) * _uniform(*key, _U_X).view(b, 1, 1)
    cy = extent + (size - 2 * extent) * _uniform(*key, _U_Y).view(b, 1, 1)
    # The colour is set off from the sample's own clutter (clutter 0), so a replaced background leaves the
    # evidence exactly as it was.
    own = _uniform(*key, 1000, _F_BASE, torch.arange(3, device=device).view(1, 3, 1, 1))
    masks, region = _region(key, own, label, r, cx, cy, size, device)
    image = torch.where(masks.unsqueeze(1), region, field) if evidence else field
    return LabBatch(_finish(image, back, size, device), label, masks)


def render_scenes(
    indices: torch.Tensor | Sequence[int] | range,
    split: str = "test",
    size: int = 224,
    device: str | torch.device = "cpu",
) -> LabScenes:
    """Two-evidence scenes: one fine and one coarse region in one image, on the clutter of sample ``i``.

    Scene ``i`` holds fine class ``i % 5`` and coarse class ``5 + (i // 5) % 5`` (every pair once in 25
    scenes). The two regions lie in opposite halves of the image (left/right or top/bottom, which one and
    which side drawn per scene) at the small end of the training sizes (radius 0.11–0.13 of the image), each
    drawn as a single sample's region is. Only the two regions carry class information, each its own class.
    """
    index, device = _checked_indices(indices, split, size, device)
    b = index.numel()
    labels = torch.stack([index % 5, len(FINE) + (index // 5) % 5], dim=1)
    back = (SPLITS[split], index.view(b, 1, 1, 1), 1000)
    scene = (SPLITS[split], index.view(b, 1, 1, 1), _SCENE)
    image = _clutter(back, size, device)
    own = _uniform(
        SPLITS[split], index.view(b, 1, 1, 1), 1000, _F_BASE, torch.arange(3, device=device).view(1, 3, 1, 1)
    )
    vertical = _uniform(*scene, _U_AXIS).view(b, 1, 1) < 0.5  # True: halves are top/bottom
    fine_first = _uniform(*scene, _U_SIDE).view(b, 1, 1) < 0.5  # True: the fine region in the first half
    masks = []
    for j in range(2):
        key = (SPLITS[split], index.view(b, 1, 1, 1), _SCENE + 1 + j)
        r = size * (0.11 + 0.02 * _uniform(*key, _U_SIZE).view(b, 1, 1))
        extent = 1.6 * r + 2
        across = extent + (size - 2 * extent) * _uniform(*key, _U_X).view(b, 1, 1)  # anywhere across
        first = fine_first if j == 0 else ~fine_first
        start = torch.where(first, extent, size / 2 + extent)  # along: within its own half
        along = start + (size / 2 - 2 * extent) * _uniform(*key, _U_Y).view(b, 1, 1)
        cx, cy = torch.where(vertical, across, along), torch.where(vertical, along, across)
        mask, region = _region(key, own, labels[:, j], r, cx, cy, size, device)
        image = torch.where(mask.unsqueeze(1), region, image)
        masks.append(mask)
    return LabScenes(_finish(image, back, size, device), labels, torch.stack(masks, dim=1))


def gaussian_blur(images: torch.Tensor, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) images, reflect-padded, kernel radius ceil(3 sigma)."""
    if sigma <= 0:
        return images
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


@dataclass(frozen=True)
class LabSample:
    """One lab image with its label, its evidence mask (True on the region) and its family."""

    image: Image.Image
    label: int
    mask: np.ndarray
    family: str

    @property
    def class_name(self) -> str:
        return CLASSES[self.label]


def to_pil(image: torch.Tensor) -> Image.Image:
    """A (3, H, W) float image on 8-bit levels → an RGB PIL image holding exactly those levels."""
    array = torch.round(image.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def sample(index: int, split: str = "test", size: int = 224) -> LabSample:
    """Sample ``index`` of ``split``: always the same image for the same (split, index, size)."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise ArgumentError(f"index must be an int, got {type(index).__name__}.")
    batch = render([int(index)], split, size)
    label = int(batch.labels[0])
    return LabSample(to_pil(batch.images[0]), label, batch.masks[0].numpy(), FAMILY[CLASSES[label]])


class LabDataset(torch.utils.data.Dataset):
    """The first ``n`` samples of a split as a torch Dataset of ``(image, label)``.

    ``image`` is a PIL image, or ``transform(image)`` when a transform is given (e.g. a loaded
    model's ``transform``).
    """

    def __init__(self, n: int, split: str = "test", size: int = 224, transform=None):
        if n < 1:
            raise InputError(f"A lab dataset needs n ≥ 1, got {n}.")
        if split not in SPLITS:
            raise InputError(f"Unknown lab split {split!r}: use one of {', '.join(SPLITS)}.")
        self.n, self.split, self.size, self.transform = n, split, size, transform

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise OutOfRangeError(f"index {i} out of range for a lab dataset of {self.n}")
        s = sample(i, self.split, self.size)
        return (self.transform(s.image) if self.transform else s.image), s.label

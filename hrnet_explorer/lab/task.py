"""The resolution lab's task: procedural images whose class evidence is known by construction.

Ten classes in two families:

- **fine** (``stripes-horizontal``, ``stripes-vertical``, ``stripes-diagonal``, ``stripes-antidiagonal``,
  ``checker``): a zero-mean sinusoidal grating of period 3–5 px inside an elliptical region. The
  grating's orientation (or the checker's two orientations) is the class; the region's outline, size,
  place, colour, the grating's contrast, period and phase are drawn from one distribution for all five.
- **coarse** (``disk``, ``square``, ``triangle``, ``ring``, ``cross``): the large-scale shape of a plainly
  coloured region. Shapes have equal area; size, place, rotation and colour come from one distribution
  for all five.

Every image is class-independent clutter — a smooth colour field (4×4 and 8×8 grids, bilinearly
upsampled) and isotropic Gaussian pixel noise — with one evidence region painted on it. The noise is
added after the region is painted, so it is the same inside and outside.

Ground truth, true by construction:

1. Only the pixels of the evidence region (``LabSample.mask``) carry class information: the clutter
   is drawn independently of the label, so redrawing the region as the clutter beneath it
   (``evidence=False``) leaves nothing to classify (accuracy falls to chance, 10 %).
2. The fine classes' information lies only at spatial frequencies of 1/5–1/3 cycles per pixel: a
   Gaussian blur of sigma ``BLUR_SIGMA`` = 3 px scales a period-5 grating by exp(-2π²σ²/P²) < 1e-3, so
   blurred fine images differ only in outline-free noise. The coarse classes' shapes (≥ 40 px across)
   survive that blur.

Not true by construction, and so measured rather than assumed: which of HRNet's streams a trained
model uses for either family.

Every random draw is a counter-based hash of (split, index, what is drawn, element), computed with
integer tensor arithmetic, so a sample depends only on (split, index, size) and a whole batch renders
in one vectorised pass (on the GPU during training). The hash is exact everywhere; the float maths after
it rounds slightly differently across devices and thread counts, which moves a rare pixel by one 8-bit
level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "BLUR_SIGMA",
    "CLASSES",
    "FAMILY",
    "SPLITS",
    "LabBatch",
    "LabSample",
    "LabDataset",
    "gaussian_blur",
    "render",
    "sample",
]

FINE = ["stripes-horizontal", "stripes-vertical", "stripes-diagonal", "stripes-antidiagonal", "checker"]
COARSE = ["disk", "square", "triangle", "ring", "cross"]
CLASSES: list[str] = FINE + COARSE
FAMILY: dict[str, str] = {**dict.fromkeys(FINE, "fine"), **dict.fromkeys(COARSE, "coarse")}
SPLITS: dict[str, int] = {"train": 1, "val": 2, "test": 3}
BLUR_SIGMA = 3.0  # px; removes the fine classes' gratings (period ≤ 5 px), keeps the coarse shapes

# What is drawn: each draw has its own stream of the hash.
_U_SIZE, _U_X, _U_Y, _U_ROT, _U_ASPECT, _U_PERIOD, _U_PHASE1, _U_PHASE2, _U_CONTRAST = range(9)
_U_OFFSET_MAG, _U_NOISE, _U_DIRECTION = 10, 11, 12  # _U_DIRECTION + 0, 1, 2: one per colour channel
_F_COARSE_GRID, _F_FINE_GRID, _F_BASE, _F_NOISE = 20, 21, 22, 23  # fields (one value per element)
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


def _grating(x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor, period, phase1, phase2) -> torch.Tensor:
    """(B, S, S) zero-mean fine pattern in [-1, 1] of each sample's fine class (unused for coarse ones)."""
    w = 2 * math.pi / period
    diag = w / math.sqrt(2)
    shape = torch.broadcast_shapes(x.shape, y.shape, period.shape)
    patterns = torch.stack(
        [
            p.expand(shape)
            for p in (
                torch.cos(w * y + phase1),
                torch.cos(w * x + phase1),
                torch.cos(diag * (x + y) + phase1),
                torch.cos(diag * (x - y) + phase1),
                # Two axis-aligned gratings multiplied: equal energy, mean zero, no single orientation.
                2.0 * torch.cos(w * x + phase1) * torch.cos(w * y + phase2),
            )
        ]
    )
    index = labels.clamp(max=len(FINE) - 1).view(1, -1, 1, 1).expand(1, *patterns.shape[1:])
    return patterns.gather(0, index)[0]


def render(
    indices: torch.Tensor | list[int] | range,
    split: str = "test",
    size: int = 224,
    device: str | torch.device = "cpu",
    *,
    evidence: bool = True,
    clutter: int = 0,
) -> LabBatch:
    """Render the samples ``indices`` of ``split`` in one vectorised pass on ``device``.

    ``evidence=False`` redraws the region as the clutter beneath it (the label and mask are kept: the
    mask says where the evidence *was*). ``clutter`` picks the background: 0 is the sample's own, any
    other number a new, independent background behind the same evidence.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown lab split {split!r}: use one of {', '.join(SPLITS)}.")
    if not 32 <= size <= 1024:
        raise ValueError(f"Lab images are 32..1024 px, got {size}.")
    device = torch.device(device)
    index = torch.as_tensor(indices, dtype=torch.int64, device=device).reshape(-1)
    if index.numel() == 0 or int(index.min()) < 0:
        raise ValueError("Lab indices must be a non-empty list of non-negative integers.")
    b = index.numel()
    labels = index % len(CLASSES)
    key = (SPLITS[split], index.view(b, 1, 1, 1))
    back = (SPLITS[split], index.view(b, 1, 1, 1), 1000 + clutter)

    def draw(what: int) -> torch.Tensor:  # one uniform per sample, shape (B, 1, 1)
        return _uniform(*key, what).view(b, 1, 1)

    # Clutter: base colour, two smooth colour fields, noise; none of it depends on the label.
    channels = torch.arange(3, device=device).view(1, 3, 1, 1)
    base = 0.25 + 0.5 * _uniform(*back, _F_BASE, channels)
    field = (
        base
        + 0.15 * _smooth_field((*back, _F_COARSE_GRID), 4, size, device)
        + 0.07 * _smooth_field((*back, _F_FINE_GRID), 8, size, device)
    )

    # Evidence region geometry, in pixels; sizes scale with the image, the fine period does not.
    r = size * (0.11 + 0.09 * draw(_U_SIZE))
    extent = 1.6 * r + 2
    cx = extent + (size - 2 * extent) * draw(_U_X)
    cy = extent + (size - 2 * extent) * draw(_U_Y)
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

    # Region colour: the sample's own mean clutter colour pushed by 0.3–0.5 in a random direction (its own:
    # a replaced background leaves the evidence exactly as it was).
    own_base = 0.25 + 0.5 * _uniform(*key, 1000, _F_BASE, channels)
    direction = torch.stack([_normal(*key, _U_DIRECTION + c) for c in range(3)], dim=1).view(b, 3, 1, 1)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-6)
    colour = (own_base + (0.3 + 0.2 * draw(_U_OFFSET_MAG)).unsqueeze(1) * direction).clamp(0.05, 0.95)
    region = colour.expand(b, 3, size, size)
    if bool(fine.any()):
        period = 3.0 + 2.0 * draw(_U_PERIOD)
        contrast = 0.12 + 0.1 * draw(_U_CONTRAST)
        pattern = _grating(x, y, labels, period, 2 * math.pi * draw(_U_PHASE1), 2 * math.pi * draw(_U_PHASE2))
        region = region + (fine.view(b, 1, 1) * contrast * pattern).unsqueeze(1)

    image = torch.where(masks.unsqueeze(1), region, field) if evidence else field
    sigma = 0.02 + 0.04 * _uniform(*back, _U_NOISE).view(b, 1, 1, 1)
    element = torch.arange(3 * size * size, device=device).view(1, 3, size, size)
    image = image + sigma * _normal(*back, _F_NOISE, element)
    image = torch.round(image.clamp(0, 1) * 255) / 255  # what an 8-bit image file holds
    return LabBatch(image, labels, masks)


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
        raise TypeError(f"index must be an int, got {type(index).__name__}.")
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
            raise ValueError(f"A lab dataset needs n ≥ 1, got {n}.")
        if split not in SPLITS:
            raise ValueError(f"Unknown lab split {split!r}: use one of {', '.join(SPLITS)}.")
        self.n, self.split, self.size, self.transform = n, split, size, transform

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for a lab dataset of {self.n}")
        s = sample(i, self.split, self.size)
        return (self.transform(s.image) if self.transform else s.image), s.label

"""The resolution lab: a task with known ground truth, an HRNet trained on it, and checks of the explorer.

See :mod:`hrnet_explorer.lab.task` for what is true by construction.
"""

from .task import (
    BLUR_SIGMA,
    CLASSES,
    COARSE,
    COLOUR_RANGE,
    CONTRAST,
    FAMILY,
    FINE,
    PERIOD,
    SPLITS,
    TAPER,
    LabBatch,
    LabDataset,
    LabSample,
    LabScenes,
    gaussian_blur,
    render,
    render_scenes,
    sample,
)

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
    "LabDataset",
    "LabSample",
    "LabScenes",
    "gaussian_blur",
    "render",
    "render_scenes",
    "sample",
]

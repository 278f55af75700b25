"""The resolution lab: a task with known ground truth, an HRNet trained on it, and checks of the explorer.

See :mod:`hrnet_explorer.lab.task` for what is true by construction.
"""

from .task import BLUR_SIGMA, CLASSES, FAMILY, SPLITS, LabBatch, LabDataset, LabSample, gaussian_blur, render, sample

__all__ = [
    "BLUR_SIGMA",
    "CLASSES",
    "FAMILY",
    "SPLITS",
    "LabBatch",
    "LabDataset",
    "LabSample",
    "gaussian_blur",
    "render",
    "sample",
]

"""The one place that reads timm's private HRNet table, ``timm.models.hrnet.cfg_cls``.

timm builds each HRNet from a plain dict per architecture: ``stem_width`` and, per stage, ``num_modules``,
``num_branches``, ``block_type``, ``num_blocks``, ``num_channels`` and ``fuse_method``. It is not public API,
so nothing else in the package (or its benchmarks) touches it: they ask here, and tests/unit/test_zoo.py checks
the contract against models timm builds, for the pinned range (``timm>=1.0.31,<1.1``, pyproject.toml).
With a timm that lacks the table, :func:`architecture_config` returns None and callers build the model.
"""

from __future__ import annotations

import copy
from typing import Any

import timm.models.hrnet

from .variants import base_variant

STAGES = (1, 2, 3, 4)


def architecture_config(architecture: str) -> dict[str, Any] | None:
    """timm's build config of ``architecture`` (one of the nine, or an ssld sibling, which shares its base's),
    as a copy the caller may change; None when this timm has no such table or no such entry."""
    table = getattr(timm.models.hrnet, "cfg_cls", None)
    cfg = table.get(base_variant(architecture)) if isinstance(table, dict) else None
    return copy.deepcopy(cfg) if cfg is not None else None


def module_counts(architecture: str) -> dict[int, int] | None:
    """How many HighResolutionModules stages 2, 3 and 4 hold (stage → count), without building the model;
    None when timm's table does not say (build it and count, then)."""
    cfg = architecture_config(architecture)
    return None if cfg is None else {s: cfg[f"stage{s}"]["num_modules"] for s in (2, 3, 4)}

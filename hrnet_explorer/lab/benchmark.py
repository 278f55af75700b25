"""Which explanation to trust, on the lab: every pixel method scored on N lab test images against the known
evidence and by its faithfulness, beside the baselines a reader needs to judge the numbers.

Per method (each image explains its true class, at the model's input size):

- ground truth (:mod:`hrnet_explorer.attribution.groundtruth`): ``mass_in_mask``, ``rank_accuracy``,
  ``pointing_game`` (the share of images whose most relevant pixel lies in the evidence);
- faithfulness (:mod:`hrnet_explorer.attribution.faithfulness`): ``deletion_auc`` and ``insertion_auc``
  (normalised by each image's p(input)) and their raw means (``*_raw``, probabilities);
- ``randomisation_similarity``: the cascading randomisation test's Spearman similarity once every layer
  group is random, averaged over the first ``randomisation_n`` images (the cascade is run once per step for
  all of them), with the mean after each step.

Baselines: the same scores for a seeded uniform random map (``random_map``), and the mean area fraction of the
evidence masks (``mask_area_fraction``: what an uninformed map scores on mass and rank accuracy).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..attribution import (
    PIXEL_METHODS,
    RANDOMISATION_LAYERS,
    attribute_pixels,
    deletion_insertion,
    mask_fraction,
    mass_in_mask,
    pointing_game,
    random_map,
    randomised_models,
    rank_accuracy,
    spearman,
)
from ..zoo import LoadedModel
from .task import CLASSES, FAMILY, render

__all__ = ["LabBenchmark", "benchmark"]

_SCORES = (
    "mass_in_mask",
    "rank_accuracy",
    "pointing_game",
    "deletion_auc",
    "insertion_auc",
    "deletion_auc_raw",
    "insertion_auc_raw",
)


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


@dataclass
class _Rows:
    """Per-image scores of one method (or the random map)."""

    values: dict[str, list] = field(default_factory=lambda: {k: [] for k in _SCORES})
    families: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, family: str, **scores) -> None:
        self.families.append(family)
        for key, value in scores.items():
            self.values[key].append(value)

    def summary(self, family: str | None = None) -> dict:
        pick = [family is None or f == family for f in self.families]
        col = {k: [v for v, p in zip(vs, pick, strict=True) if p] for k, vs in self.values.items()}
        out = {k: _mean([float(v) for v in col[k]]) for k in _SCORES}
        out["n"] = sum(pick)
        return out


@dataclass(frozen=True)
class LabBenchmark:
    """The table of ``hrnet-explorer lab benchmark``."""

    n: int
    methods: tuple[str, ...]
    steps: int
    baseline: str
    randomisation_n: int
    per_method: dict[str, dict]  # method → scores (+ "family": {fine: …, coarse: …})
    random_map: dict
    mask_area_fraction: float
    device: str
    seconds: float
    phases: dict[str, float]  # seconds per phase: attribution, faithfulness, randomisation, rendering

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "split": "test",
            "methods": {m: self.per_method[m] for m in self.methods},
            "baselines": {"random_map": self.random_map, "mask_area_fraction": self.mask_area_fraction},
            "steps": self.steps,
            "baseline": self.baseline,
            "randomisation_n": self.randomisation_n,
            "randomisation_layers": list(RANDOMISATION_LAYERS),
            "device": self.device,
            "seconds": self.seconds,
            "phases": self.phases,
        }


def benchmark(
    loaded: LoadedModel,
    n: int = 200,
    methods: Sequence[str] = PIXEL_METHODS,
    *,
    steps: int = 20,
    baseline: str = "blur",
    randomisation_n: int | None = 20,
    method_options: Mapping[str, Mapping] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> LabBenchmark:
    """Score ``methods`` on the first ``n`` lab test images with the lab model ``loaded`` (see the module).
    ``randomisation_n``: images for the randomisation test (``None``: all ``n``; 0: skip it)."""
    if list(loaded.class_names) != CLASSES:
        raise ValueError(f"{loaded.name} is not a lab model: its classes are not {', '.join(CLASSES)}.")
    methods = tuple(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in PIXEL_METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be some of {', '.join(PIXEL_METHODS)}, got {list(methods)!r}.")
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}.")
    r_n = n if randomisation_n is None else min(int(randomisation_n), n)
    if r_n < 0:
        raise ValueError(f"randomisation_n must be ≥ 0, got {randomisation_n}.")
    options = {m: dict((method_options or {}).get(m, {})) for m in methods}
    config = loaded.data_config
    size = config["input_size"][-1]
    device = loaded.device
    mean = torch.tensor(config["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(config["std"], device=device).view(1, 3, 1, 1)
    rows = {m: _Rows() for m in (*methods, "random")}
    originals: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    kept: list[tuple[torch.Tensor, int]] = []  # the images of the randomisation test
    areas, phases = [], {"rendering": 0.0, "attribution": 0.0, "faithfulness": 0.0, "randomisation": 0.0}
    start = time.perf_counter()
    bar = _bar(n + r_n * len(RANDOMISATION_LAYERS), progress)
    for first in range(0, n, 50):
        t = time.perf_counter()
        batch = render(range(first, min(first + 50, n)), "test", size, device)
        images = (batch.images - mean) / std
        phases["rendering"] += time.perf_counter() - t
        for k in range(images.shape[0]):
            index = first + k
            x, label, mask = images[k : k + 1], int(batch.labels[k]), batch.masks[k].cpu()
            family = FAMILY[CLASSES[label]]
            areas.append(mask_fraction(mask))
            for method in (*methods, "random"):
                t = time.perf_counter()
                if method == "random":
                    heat = random_map(mask.shape, seed + index)
                else:
                    heat = attribute_pixels(loaded, x, method, label, **options[method]).heatmap
                    if index < r_n:
                        originals[method].append(heat)
                phases["attribution"] += time.perf_counter() - t
                rows[method].seconds += time.perf_counter() - t
                t = time.perf_counter()
                faith = deletion_insertion(loaded, x, heat, label, steps=steps, baseline=baseline, seed=seed)
                phases["faithfulness"] += time.perf_counter() - t
                rows[method].add(
                    family,
                    mass_in_mask=mass_in_mask(heat, mask),
                    rank_accuracy=rank_accuracy(heat, mask),
                    pointing_game=pointing_game(heat, mask),
                    deletion_auc=faith.deletion.auc,
                    insertion_auc=faith.insertion.auc,
                    deletion_auc_raw=faith.deletion.auc_raw,
                    insertion_auc_raw=faith.insertion.auc_raw,
                )
            if index < r_n:
                kept.append((x, label))
            bar.update()
    similarity = {m: [[] for _ in RANDOMISATION_LAYERS] for m in methods}
    if r_n:
        t = time.perf_counter()
        for step, (_, randomised) in enumerate(randomised_models(loaded, RANDOMISATION_LAYERS, seed=seed)):
            for i, (x, label) in enumerate(kept):
                for method in methods:
                    heat = attribute_pixels(randomised, x, method, label, **options[method]).heatmap
                    similarity[method][step].append(spearman(originals[method][i].abs(), heat.abs()))
                bar.update()
        phases["randomisation"] = time.perf_counter() - t
    bar.close()
    per_method = {}
    for method in methods:
        steps_mean = [_mean(s) for s in similarity[method]]
        per_method[method] = {
            **rows[method].summary(),
            "randomisation_similarity": steps_mean[-1] if r_n else None,
            "randomisation_by_layer": dict(zip(RANDOMISATION_LAYERS, steps_mean, strict=True)) if r_n else None,
            "attribution_seconds": rows[method].seconds,
            "family": {f: rows[method].summary(f) for f in ("fine", "coarse")},
            "options": options[method],
        }
    random_row = {**rows["random"].summary(), "family": {f: rows["random"].summary(f) for f in ("fine", "coarse")}}
    return LabBenchmark(
        n=n,
        methods=methods,
        steps=steps,
        baseline=baseline,
        randomisation_n=r_n,
        per_method=per_method,
        random_map=random_row,
        mask_area_fraction=float(np.mean(areas)),
        device=str(device),
        seconds=time.perf_counter() - start,
        phases=phases,
    )


def _bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="lab benchmark", unit="image", disable=not enabled, leave=False)

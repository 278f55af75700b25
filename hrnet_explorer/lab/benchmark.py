"""Which explanation to trust, on the lab: every pixel method scored on N lab test images against the known
evidence and by its faithfulness, beside the baselines a reader needs to judge the numbers.

Per method (each image explains its true class, at the model's input size):

- ground truth (:mod:`hrnet_explorer.attribution.groundtruth`): ``mass_in_mask``, ``rank_accuracy``,
  ``pointing_game`` (the share of images whose most relevant pixel lies in the evidence) and
  ``boundary_contrast`` (relevance density in the mask's core against a 3-px ring outside it); the same two
  scores of the map moved by ``SHIFT`` px (``*_shifted``, the mean over the four directions): a score that
  cannot tell a misaligned map from an aligned one says little about where a map points;
- faithfulness (:mod:`hrnet_explorer.attribution.faithfulness`): ``deletion_auc`` and ``insertion_auc``
  (normalised by each image's p(input)) and their raw means (``*_raw``, probabilities);
- ``randomisation_similarity``: the cascading randomisation test's Spearman similarity once every layer
  group is random, averaged over the first ``randomisation_n`` images (the cascade is run once per step for
  all of them), with the mean after each step;
- ``scenes``: on ``scenes_n`` two-evidence scenes (:func:`~hrnet_explorer.lab.task.render_scenes`: one fine and
  one coarse region), each explained once for either class: the share of explanations whose map puts more
  mass in the explained class's region than in the other (``follows``), the share of scenes where both do
  (``both_follow``), and the mean mass in either region. A map that only finds the salient blob cannot follow
  the target: the model-free maps score 0.5 and 0 by construction.

Baselines (the same scores): a seeded uniform random map (``random_map``), and two maps that never look at the
model (``model_free``: colour distance from the image's median colour, Sobel edges) — in the lab the evidence is
the most salient blob by construction, so these are the bars a method's mask scores have to clear — and the mean
area fraction of the evidence masks (``mask_area_fraction``: what an uninformed map scores on mass and rank).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..attribution import (
    MODEL_FREE_MAPS,
    PIXEL_METHODS,
    RANDOM_MAP,
    RANDOMISATION_LAYERS,
    attribute_pixels,
    boundary_contrast,
    deletion_insertion,
    mask_fraction,
    mass_in_mask,
    model_free_map,
    pointing_game,
    random_map,
    randomised_models,
    rank_accuracy,
    spearman,
)
from ..errors import InputError
from ..progress import Progress, Steps
from ..zoo import LoadedModel
from .task import CLASSES, FAMILY, render, render_scenes

__all__ = ["SHIFT", "LabBenchmark", "benchmark"]

SHIFT = 3  # px: the misalignment the shifted scores apply

_SCORES = (
    "mass_in_mask",
    "rank_accuracy",
    "pointing_game",
    "boundary_contrast",
    "mass_in_mask_shifted",
    "boundary_contrast_shifted",
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
    """Per-image scores of one method (or a reference map)."""

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


def _mask_scores(heat: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """The ground-truth scores of a map, and of the map moved ``SHIFT`` px (mean of the four directions)."""
    moved = [torch.roll(heat, s, d) for s in (SHIFT, -SHIFT) for d in (0, 1)]
    return {
        "mass_in_mask": mass_in_mask(heat, mask),
        "rank_accuracy": rank_accuracy(heat, mask),
        "pointing_game": pointing_game(heat, mask),
        "boundary_contrast": boundary_contrast(heat, mask),
        "mass_in_mask_shifted": float(np.mean([mass_in_mask(m, mask) for m in moved])),
        "boundary_contrast_shifted": float(np.mean([boundary_contrast(m, mask) for m in moved])),
    }


@dataclass
class _SceneRows:
    """Per-explanation results on the two-evidence scenes of one method (or a reference map)."""

    target_mass: list[float] = field(default_factory=list)
    other_mass: list[float] = field(default_factory=list)

    def summary(self) -> dict | None:
        if not self.target_mass:
            return None
        target, other = np.array(self.target_mass), np.array(self.other_mass)
        follows = target > other
        return {
            "n_scenes": len(target) // 2,
            "follows": float(follows.mean()),
            "both_follow": float(follows.reshape(-1, 2).all(1).mean()),
            "mass_in_target": float(target.mean()),
            "mass_in_other": float(other.mean()),
        }


@dataclass(frozen=True)
class LabBenchmark:
    """The table of ``hrnet-explorer lab benchmark``."""

    n: int
    methods: tuple[str, ...]
    steps: int
    baseline: str
    randomisation_n: int
    per_method: dict[str, dict]  # method → scores (+ "family": {fine: …, coarse: …}, "scenes": {…})
    random_map: dict
    model_free: dict[str, dict]  # MODEL_FREE_MAPS → the same scores
    mask_area_fraction: float
    scenes_n: int
    scene_model: dict | None  # how the model reads the scenes: both classes in its top 2, each class's rank
    device: str
    seconds: float
    phases: dict[str, float]  # seconds per phase: attribution, faithfulness, randomisation, rendering, scenes

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "split": "test",
            "methods": {m: self.per_method[m] for m in self.methods},
            "baselines": {
                "random_map": self.random_map,
                **self.model_free,
                "mask_area_fraction": self.mask_area_fraction,
            },
            "shift_px": SHIFT,
            "steps": self.steps,
            "baseline": self.baseline,
            "randomisation_n": self.randomisation_n,
            "randomisation_layers": list(RANDOMISATION_LAYERS),
            "scenes_n": self.scenes_n,
            "scene_model": self.scene_model,
            "device": self.device,
            "seconds": self.seconds,
            "phases": self.phases,
        }


def _reference_map(name: str, image: torch.Tensor, shape: tuple[int, int], seed: int) -> torch.Tensor:
    return random_map(shape, seed) if name == RANDOM_MAP else model_free_map(image, name)


def benchmark(
    loaded: LoadedModel,
    n: int = 200,
    methods: Sequence[str] = PIXEL_METHODS,
    *,
    steps: int = 20,
    baseline: str = "blur",
    randomisation_n: int | None = 20,
    scenes_n: int = 50,
    method_options: Mapping[str, Mapping] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> LabBenchmark:
    """Score ``methods`` on the first ``n`` lab test images with the lab model ``loaded`` (see the module).
    ``randomisation_n``: images for the randomisation test (``None``: all ``n``; 0: skip it). ``scenes_n``:
    two-evidence scenes (0: skip them). ``progress(done, total)``: images scored, over the passes (the test
    images, each randomisation stage's images, the scenes)."""
    if list(loaded.class_names) != CLASSES:
        raise InputError(f"{loaded.name} is not a lab model: its classes are not {', '.join(CLASSES)}.")
    methods = tuple(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in PIXEL_METHODS]
    if unknown or not methods:
        raise InputError(f"methods must be some of {', '.join(PIXEL_METHODS)}, got {list(methods)!r}.")
    if n < 1:
        raise InputError(f"n must be ≥ 1, got {n}.")
    r_n = n if randomisation_n is None else min(int(randomisation_n), n)
    if r_n < 0:
        raise InputError(f"randomisation_n must be ≥ 0, got {randomisation_n}.")
    if scenes_n < 0:
        raise InputError(f"scenes_n must be ≥ 0, got {scenes_n}.")
    options = {m: dict((method_options or {}).get(m, {})) for m in methods}
    config = loaded.data_config
    size = config["input_size"][-1]
    device = loaded.device
    mean = torch.tensor(config["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(config["std"], device=device).view(1, 3, 1, 1)
    references = (RANDOM_MAP, *MODEL_FREE_MAPS)
    rows = {m: _Rows() for m in (*methods, *references)}
    originals: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    kept: list[tuple[torch.Tensor, int]] = []  # the images of the randomisation test
    areas = []
    phases = {"rendering": 0.0, "attribution": 0.0, "faithfulness": 0.0, "randomisation": 0.0, "scenes": 0.0}
    start = time.perf_counter()
    steps_done = Steps(progress, n + r_n * len(RANDOMISATION_LAYERS) + scenes_n)  # images, per pass
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
            for method in (*methods, *references):
                t = time.perf_counter()
                if method in references:
                    heat = _reference_map(method, batch.images[k].cpu(), tuple(mask.shape), seed + index)
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
                    **_mask_scores(heat, mask),
                    deletion_auc=faith.deletion.auc,
                    insertion_auc=faith.insertion.auc,
                    deletion_auc_raw=faith.deletion.auc_raw,
                    insertion_auc_raw=faith.insertion.auc_raw,
                )
            if index < r_n:
                kept.append((x, label))
            steps_done.advance()
    similarity = {m: [[] for _ in RANDOMISATION_LAYERS] for m in methods}
    if r_n:
        t = time.perf_counter()
        for step, (_, randomised) in enumerate(randomised_models(loaded, RANDOMISATION_LAYERS, seed=seed)):
            for i, (x, label) in enumerate(kept):
                for method in methods:
                    heat = attribute_pixels(randomised, x, method, label, **options[method]).heatmap
                    similarity[method][step].append(spearman(originals[method][i].abs(), heat.abs()))
                steps_done.advance()
        phases["randomisation"] = time.perf_counter() - t
    scenes, scene_model = _scenes(loaded, methods, references, options, scenes_n, size, mean, std, seed, steps_done)
    phases["scenes"] = scene_model.pop("seconds") if scene_model else 0.0
    steps_done.finish()
    per_method = {}
    for method in methods:
        steps_mean = [_mean(s) for s in similarity[method]]
        per_method[method] = {
            **rows[method].summary(),
            "randomisation_similarity": steps_mean[-1] if r_n else None,
            "randomisation_by_layer": dict(zip(RANDOMISATION_LAYERS, steps_mean, strict=True)) if r_n else None,
            "attribution_seconds": rows[method].seconds,
            "family": {f: rows[method].summary(f) for f in ("fine", "coarse")},
            "scenes": scenes[method].summary(),
            "options": options[method],
        }

    def reference_row(name: str) -> dict:
        row = rows[name]
        return {
            **row.summary(),
            "family": {f: row.summary(f) for f in ("fine", "coarse")},
            "scenes": scenes[name].summary(),
        }

    return LabBenchmark(
        n=n,
        methods=methods,
        steps=steps,
        baseline=baseline,
        randomisation_n=r_n,
        per_method=per_method,
        random_map=reference_row(RANDOM_MAP),
        model_free={name: reference_row(name) for name in MODEL_FREE_MAPS},
        mask_area_fraction=float(np.mean(areas)),
        scenes_n=scenes_n,
        scene_model=scene_model,
        device=str(device),
        seconds=time.perf_counter() - start,
        phases=phases,
    )


def _scenes(loaded, methods, references, options, scenes_n, size, mean, std, seed, steps_done: Steps):
    """Explain each two-evidence scene once per class it holds; → per-method _SceneRows, the model's reading."""
    rows = {m: _SceneRows() for m in (*methods, *references)}
    if not scenes_n:
        return rows, None
    t = time.perf_counter()
    scenes = render_scenes(range(scenes_n), "test", size, loaded.device)
    images = (scenes.images - mean) / std
    with torch.inference_mode():
        logits = torch.cat([loaded.model(chunk) for chunk in images.split(50)]).cpu()
    ranks = (logits.argsort(1, descending=True).argsort(1)).gather(1, scenes.labels.cpu())  # (N, 2): 0 = top-1
    for i in range(scenes_n):
        x, masks = images[i : i + 1], scenes.masks[i].cpu()
        for j in range(2):
            target = int(scenes.labels[i, j])
            for method in (*methods, *references):
                if method in references:
                    heat = _reference_map(method, scenes.images[i].cpu(), tuple(masks.shape[1:]), seed + i)
                else:
                    heat = attribute_pixels(loaded, x, method, target, **options[method]).heatmap
                rows[method].target_mass.append(mass_in_mask(heat, masks[j]))
                rows[method].other_mass.append(mass_in_mask(heat, masks[1 - j]))
        steps_done.advance()
    model = {
        "both_in_top2": float((ranks.max(1).values <= 1).double().mean()),
        "mean_rank": {"fine": float(ranks[:, 0].double().mean()), "coarse": float(ranks[:, 1].double().mean())},
        "seconds": time.perf_counter() - t,
    }
    return rows, model

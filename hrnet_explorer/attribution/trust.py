"""Which explanation to trust: every score of every pixel method on one image, in one table.

:func:`score_attribution` explains one image with one method and scores the map three ways — deletion and
insertion AUCs (:mod:`.faithfulness`), the cascading randomisation test (:mod:`.randomisation`) and, where a
ground-truth mask is known (the lab's evidence region, or yours), mass in mask, rank accuracy and the pointing
game (:mod:`.groundtruth`). ``method="random"`` scores a seeded uniform random map the same way: the row a
method has to beat. :func:`trust_report` does it for several methods (the app's Trust view, ``explain
--score``, ``lab benchmark``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..images import ImageInput
from ..zoo import LoadedModel
from ._core import _check_target, _logits, _names_field, _prepare, _TargetLabel
from .faithfulness import DEFAULT_STEPS, Faithfulness, StreamAgreement, deletion_insertion, random_map, stream_agreement
from .groundtruth import check_map_and_mask, mask_fraction, mass_in_mask, pointing_game, rank_accuracy
from .pixels import PIXEL_METHODS, attribute_pixels
from .randomisation import RANDOMISATION_LAYERS, RandomisationTest, randomisation_test

__all__ = ["RANDOM_MAP", "TRUST_METHODS", "MethodScores", "TrustReport", "score_attribution", "trust_report"]

RANDOM_MAP = "random"  # the reference row: a seeded uniform random map
TRUST_METHODS = (*PIXEL_METHODS, RANDOM_MAP)


@dataclass(frozen=True)
class MethodScores(_TargetLabel):
    """One method's map of one image, scored: faithfulness, randomisation, and ground truth if a mask is known."""

    method: str  # one of PIXEL_METHODS, or "random"
    target: int
    faithfulness: Faithfulness
    randomisation: RandomisationTest | None  # None: not asked for, or the random map (it ignores the model)
    mass_in_mask: float | None = None  # None: no mask given
    rank_accuracy: float | None = None
    pointing_game: bool | None = None
    mask_fraction: float | None = None  # the mask's area share: what an uninformed map scores
    attribution_seconds: float = 0.0
    heatmap: torch.Tensor | None = field(default=None, repr=False, compare=False)  # the map scored, [H, W]
    class_names: tuple[str, ...] = _names_field()

    @property
    def deletion_auc(self) -> float:
        return self.faithfulness.deletion_auc

    @property
    def insertion_auc(self) -> float:
        return self.faithfulness.insertion_auc

    @property
    def randomisation_similarity(self) -> float | None:
        """Spearman(|map|, |map of the fully randomised model|): near 0 passes the sanity check."""
        return None if self.randomisation is None else self.randomisation.final_similarity

    def scores(self) -> dict:
        """The headline numbers, flat (the table's row)."""
        return {
            "deletion_auc": self.deletion_auc,
            "insertion_auc": self.insertion_auc,
            "deletion_auc_raw": self.faithfulness.deletion.auc_raw,
            "insertion_auc_raw": self.faithfulness.insertion.auc_raw,
            "randomisation_similarity": self.randomisation_similarity,
            "mass_in_mask": self.mass_in_mask,
            "rank_accuracy": self.rank_accuracy,
            "pointing_game": self.pointing_game,
        }

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "target": self.target,
            "label": self.label,
            **self.scores(),
            "mask_fraction": self.mask_fraction,
            "attribution_seconds": self.attribution_seconds,
            "faithfulness": self.faithfulness.to_dict(),
            "randomisation": None if self.randomisation is None else self.randomisation.to_dict(),
        }


def _mask_at(mask, hw: tuple[int, int]) -> torch.Tensor | None:
    if mask is None:
        return None
    where = torch.as_tensor(mask)
    if tuple(where.shape) != tuple(hw):
        raise ValueError(
            f"The mask is {'×'.join(map(str, where.shape))} but the model's input is {hw[0]}×{hw[1]}: "
            "give the mask at the input size."
        )
    check_map_and_mask(torch.zeros(hw), where)  # boolean, non-empty, not everything
    return where


def score_attribution(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    method: str = "saliency",
    target: int | None = None,
    *,
    mask=None,
    steps: int = DEFAULT_STEPS,
    baseline: str | float | torch.Tensor = "blur",
    randomisation: bool = True,
    layers: Sequence[str] = RANDOMISATION_LAYERS,
    seed: int = 0,
    method_options: Mapping | None = None,
    input_size: int | None = None,
) -> MethodScores:
    """Explain ``inputs`` with ``method`` (or a random map, ``"random"``) and score the map.

    ``mask``: a boolean [H, W] ground-truth mask at the model's input size (optional). ``steps``,
    ``baseline``: of the deletion and insertion curves (:func:`deletion_insertion`). ``randomisation``: run
    the cascading randomisation test over ``layers`` (one more attribution per layer group).
    ``method_options``: passed to :func:`attribute_pixels`.
    """
    if method not in TRUST_METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of: {', '.join(TRUST_METHODS)}.")
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    hw = (x.shape[-2], x.shape[-1])
    where = _mask_at(mask, hw)
    options = dict(method_options or {})
    start = time.perf_counter()
    if method == RANDOM_MAP:
        if options:
            raise ValueError(f"The random map takes no method options, got {', '.join(options)}.")
        if target is None:
            with entry.lock:
                target = int(_logits(entry.net, x)[0].argmax())
        heat = random_map(hw, seed)
    else:
        attribution = attribute_pixels(loaded, x, method, target, **options)
        heat, target = attribution.heatmap, attribution.target
    attribution_seconds = time.perf_counter() - start
    faith = deletion_insertion(loaded, x, heat, target, steps=steps, baseline=baseline, method=method, seed=seed)
    rand = None
    if randomisation and method != RANDOM_MAP:
        rand = randomisation_test(loaded, x, method, target, layers=layers, seed=seed, original=heat, **options)
    truth = {}
    if where is not None:
        truth = {
            "mass_in_mask": mass_in_mask(heat, where),
            "rank_accuracy": rank_accuracy(heat, where),
            "pointing_game": pointing_game(heat, where),
            "mask_fraction": mask_fraction(where),
        }
    return MethodScores(
        method=method,
        target=target,
        faithfulness=faith,
        randomisation=rand,
        attribution_seconds=attribution_seconds,
        heatmap=heat,
        class_names=loaded.class_names,
        **truth,
    )


@dataclass(frozen=True)
class TrustReport(_TargetLabel):
    """Every method's scores on one image and class, the random map's beside them."""

    target: int
    rows: tuple[MethodScores, ...]  # in the order asked; the random map last (if asked)
    streams: StreamAgreement | None = None
    class_names: tuple[str, ...] = _names_field()

    def row(self, method: str) -> MethodScores:
        for r in self.rows:
            if r.method == method:
                return r
        raise KeyError(f"No row for {method!r}; rows: {', '.join(r.method for r in self.rows)}.")

    def to_dict(self) -> dict:
        first = self.rows[0].faithfulness if self.rows else None
        return {
            "target": self.target,
            "label": self.label,
            "baseline": None if first is None else first.baseline,
            "steps": None if first is None else first.steps,
            "mask_fraction": self.rows[0].mask_fraction if self.rows else None,
            "methods": {r.method: r.to_dict() for r in self.rows},
            "stream_agreement": None if self.streams is None else self.streams.to_dict(),
        }


def trust_report(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    methods: Sequence[str] = PIXEL_METHODS,
    target: int | None = None,
    *,
    mask=None,
    steps: int = DEFAULT_STEPS,
    baseline: str | float | torch.Tensor = "blur",
    randomisation: bool = True,
    random_baseline: bool = True,
    streams: bool = False,
    seed: int = 0,
    method_options: Mapping[str, Mapping] | None = None,
    input_size: int | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> TrustReport:
    """:func:`score_attribution` for each of ``methods`` (one class for all: ``target``, default the top-1),
    then the random map (``random_baseline``) and, with ``streams=True``, :func:`stream_agreement`.
    ``method_options``: per method, e.g. ``{"ig": {"n_steps": 16}}``. ``progress(fraction, text)`` is called
    before each method."""
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in PIXEL_METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be some of {', '.join(PIXEL_METHODS)}, got {methods!r}.")
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    if target is None:
        with entry.lock:
            target = int(_logits(entry.net, x)[0].argmax())
    todo = methods + ([RANDOM_MAP] if random_baseline else [])
    rows = []
    for k, method in enumerate(todo):
        if progress is not None:
            progress(k / (len(todo) + streams), f"scoring {method} ({k + 1}/{len(todo)})")
        rows.append(
            score_attribution(
                loaded,
                x,
                method,
                target,
                mask=mask,
                steps=steps,
                baseline=baseline,
                randomisation=randomisation,
                seed=seed,
                method_options=(method_options or {}).get(method),
            )
        )
    agreement = None
    if streams:
        if progress is not None:
            progress(len(todo) / (len(todo) + 1), "stream shares vs knockouts")
        agreement = stream_agreement(loaded, x, target)
    return TrustReport(target=target, rows=tuple(rows), streams=agreement, class_names=loaded.class_names)

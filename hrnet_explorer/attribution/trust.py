"""Which explanation to trust: every score of every pixel method on one image, in one table.

:func:`score_attribution` explains one image with one method and scores the map three ways — deletion and
insertion AUCs (:mod:`.faithfulness`), the cascading randomisation test (:mod:`.randomisation`) and, where a
ground-truth mask is known (the lab's evidence region, or yours), mass in mask, rank accuracy, the pointing
game and the boundary contrast (:mod:`.groundtruth`). Reference rows are scored the same
way: ``"random"``, a seeded uniform random map, and two maps that never look at the model (:data:`MODEL_FREE_MAPS`, from
:func:`model_free_map`): each pixel's colour distance from the image's median colour, and a Sobel edge map.
Where the evidence is the most salient blob of the image (as in the lab) those score high on the mask scores by
construction: a method has to beat them, not only the random map, before its mask scores say anything.
:func:`trust_report` does it for several methods (the app's Trust view, ``explain --score``, ``lab
benchmark``). :data:`TABLE_COLUMNS` and :data:`MASK_COLUMNS` name the table's columns (the scores' keys), and
:attr:`MethodScores.display_name` the rows, so a table drawn from them follows the dataclass.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..display import METHOD_MENU_NAMES
from ..errors import InputError
from ..images import ImageInput
from ..progress import Phases, Progress
from ..zoo import LoadedModel
from ._core import _check_target, _logits, _names_field, _prepare, _TargetLabel
from .faithfulness import (
    DEFAULT_STEPS,
    Faithfulness,
    StreamAgreement,
    curve_batches,
    deletion_insertion,
    random_map,
    stream_agreement,
)
from .groundtruth import (
    boundary_contrast,
    check_map_and_mask,
    mask_fraction,
    mass_in_mask,
    pointing_game,
    rank_accuracy,
)
from .pixels import PIXEL_METHODS, attribute_pixels
from .randomisation import RANDOMISATION_LAYERS, RandomisationTest, _check_layers, randomisation_test

__all__ = [
    "MASK_COLUMNS",
    "MODEL_FREE_MAPS",
    "RANDOM_MAP",
    "REFERENCE_MAPS",
    "TABLE_COLUMNS",
    "TRUST_METHODS",
    "MethodScores",
    "TrustReport",
    "model_free_map",
    "row_name",
    "score_attribution",
    "trust_report",
]

RANDOM_MAP = "random"  # the reference row: a seeded uniform random map
MODEL_FREE_MAPS = ("colour_distance", "edges")  # reference rows drawn from the image alone
REFERENCE_MAPS = (RANDOM_MAP, *MODEL_FREE_MAPS)
TRUST_METHODS = (*PIXEL_METHODS, *REFERENCE_MAPS)
_ROW_NAMES = {
    RANDOM_MAP: "random map (reference)",
    "colour_distance": "colour distance (no model)",
    "edges": "Sobel edges (no model)",
}
# (key of MethodScores.scores(), column title): the table without a mask, and the columns a mask adds.
TABLE_COLUMNS = (
    ("deletion_auc", "deletion AUC ↓"),
    ("insertion_auc", "insertion AUC ↑"),
    ("randomisation_similarity", "similarity when randomised ↓"),
)
MASK_COLUMNS = (
    ("mass_in_mask", "mass in mask ↑"),
    ("rank_accuracy", "rank accuracy ↑"),
    ("pointing_game", "pointing game"),
    ("boundary_contrast", "core vs ring ↑"),
)


def row_name(method: str) -> str:
    """A row's name in a table: a pixel method as the app's pickers name it (:data:`~hrnet_explorer.display.METHODS`:
    "Integrated Gradients", not "ig"), a reference map by what it is ("random map (reference)")."""
    return _ROW_NAMES.get(method) or METHOD_MENU_NAMES.get(method, method)


def model_free_map(image: torch.Tensor, name: str) -> torch.Tensor:
    """A [H, W] map of a (3, H, W) image in [0, 1] that never looks at a model (one of :data:`MODEL_FREE_MAPS`).

    ``colour_distance``: each pixel's Euclidean distance from the image's per-channel median colour (a plain
    region on clutter stands out). ``edges``: the Sobel gradient magnitude of the grey image (replicate-padded).
    """
    if name not in MODEL_FREE_MAPS:
        raise InputError(f"Unknown model-free map {name!r}; choose one of: {', '.join(MODEL_FREE_MAPS)}.")
    image = torch.as_tensor(image).detach().float().cpu()
    if image.dim() != 3 or image.shape[0] != 3:
        raise InputError(f"A model-free map needs a (3, H, W) image, got shape {tuple(image.shape)}.")
    if name == "colour_distance":
        median = image.flatten(1).median(1).values.view(3, 1, 1)
        return (image - median).pow(2).sum(0).sqrt()
    grey = F.pad(image.mean(0)[None, None], (1, 1, 1, 1), mode="replicate")
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    gx = F.conv2d(grey, sobel[None, None])
    gy = F.conv2d(grey, sobel.T[None, None])
    return torch.sqrt(gx**2 + gy**2)[0, 0]


@dataclass(frozen=True)
class MethodScores(_TargetLabel):
    """One method's map of one image, scored: faithfulness, randomisation, and ground truth if a mask is known."""

    method: str  # one of PIXEL_METHODS, or a reference map (REFERENCE_MAPS)
    target: int
    faithfulness: Faithfulness
    randomisation: RandomisationTest | None  # None: not asked for, or a reference map (it ignores the model)
    mass_in_mask: float | None = None  # None: no mask given
    rank_accuracy: float | None = None
    pointing_game: bool | None = None
    boundary_contrast: float | None = None
    mask_fraction: float | None = None  # the mask's area share: what an uninformed map scores
    attribution_seconds: float = 0.0
    heatmap: torch.Tensor | None = field(default=None, repr=False, compare=False)  # the map scored, [H, W]
    class_names: tuple[str, ...] = _names_field()

    @property
    def display_name(self) -> str:
        """The row's name in a table (:func:`row_name`): the method as the pickers name it, or what a reference
        map is."""
        return row_name(self.method)

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
            "boundary_contrast": self.boundary_contrast,
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
    progress: Progress | None = None,
) -> MethodScores:
    """Explain ``inputs`` with ``method`` (or draw a reference map: ``"random"``, :data:`MODEL_FREE_MAPS`) and
    score the map.

    ``mask``: a boolean [H, W] ground-truth mask at the model's input size (optional). ``steps``,
    ``baseline``: of the deletion and insertion curves (:func:`deletion_insertion`). ``randomisation``: run
    the cascading randomisation test over ``layers`` (one more attribution per layer group).
    ``method_options``: passed to :func:`attribute_pixels`.

    ``progress(done, total)``, if given, counts the steps of the three phases: the attribution's batches (a
    reference map: one step), the curves' forwards (:func:`~.faithfulness.curve_batches`) and the
    randomisation test's attributions (one per layer group). The later phases' sizes are known up front, so
    the total is fixed once the attribution starts and the fraction done never falls.
    """
    if method not in TRUST_METHODS:
        raise ValueError(f"Unknown method {method!r}; choose one of: {', '.join(TRUST_METHODS)}.")
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    hw = (x.shape[-2], x.shape[-1])
    where = _mask_at(mask, hw)
    options = dict(method_options or {})
    randomise = randomisation and method not in REFERENCE_MAPS
    if randomise:
        layers = _check_layers(layers)
    sizes = [1, curve_batches(x, steps)] + ([len(layers)] if randomise else [])
    phases = Phases(progress, sizes)
    start = time.perf_counter()
    if method in REFERENCE_MAPS:
        if options:
            raise InputError(f"The {_ROW_NAMES[method]} takes no method options, got {', '.join(options)}.")
        if target is None:
            with entry.lock:
                target = int(_logits(entry.net, x)[0].argmax())
        if method == RANDOM_MAP:
            heat = random_map(hw, seed)
        else:  # the image as the model's preprocessing saw it, back in [0, 1]
            config = loaded.data_config
            mean = torch.tensor(config["mean"], device=x.device).view(3, 1, 1)
            std = torch.tensor(config["std"], device=x.device).view(3, 1, 1)
            heat = model_free_map(x[0] * std + mean, method)
    else:
        attribution = attribute_pixels(loaded, x, method, target, progress=phases.batches, **options)
        heat, target = attribution.heatmap, attribution.target
    attribution_seconds = time.perf_counter() - start
    phases.next()
    faith = deletion_insertion(
        loaded, x, heat, target, steps=steps, baseline=baseline, method=method, seed=seed, progress=phases.batches
    )
    phases.next()
    rand = None
    if randomise:
        rand = randomisation_test(
            loaded, x, method, target, layers=layers, seed=seed, original=heat, progress=phases.batches, **options
        )
        phases.next()
    truth = {}
    if where is not None:
        truth = {
            "mass_in_mask": mass_in_mask(heat, where),
            "rank_accuracy": rank_accuracy(heat, where),
            "pointing_game": pointing_game(heat, where),
            "boundary_contrast": boundary_contrast(heat, where),
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
    """Every method's scores on one image and class, the reference maps' beside them."""

    target: int
    rows: tuple[MethodScores, ...]  # in the order asked; then the random map and the model-free maps (if asked)
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
    model_free: bool = False,
    streams: bool = False,
    seed: int = 0,
    method_options: Mapping[str, Mapping] | None = None,
    input_size: int | None = None,
    progress: Progress | None = None,
) -> TrustReport:
    """:func:`score_attribution` for each of ``methods`` (one class for all: ``target``, default the top-1),
    then the random map (``random_baseline``), the model-free maps (``model_free``) and, with ``streams=True``,
    :func:`stream_agreement`.
    ``method_options``: per method, e.g. ``{"ig": {"n_steps": 16}}``. ``progress(done, total)``: a
    :class:`~hrnet_explorer.progress.Phases` over the rows (each row's steps, as :func:`score_attribution`
    reports them; the total grows as each row starts) and the stream agreement (one step)."""
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in PIXEL_METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be some of {', '.join(PIXEL_METHODS)}, got {methods!r}.")
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    if target is None:
        with entry.lock:
            target = int(_logits(entry.net, x)[0].argmax())
    todo = methods + ([RANDOM_MAP] if random_baseline else []) + (list(MODEL_FREE_MAPS) if model_free else [])
    rows = []
    phases = Phases(progress, len(todo) + streams)
    for method in todo:
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
                progress=phases.batches,
            )
        )
        phases.next()
    agreement = None
    if streams:
        agreement = stream_agreement(loaded, x, target)
        phases.next()
    return TrustReport(target=target, rows=tuple(rows), streams=agreement, class_names=loaded.class_names)

"""The cascading model-parameter randomisation test (Adebayo et al., 2018, "Sanity Checks for Saliency Maps").

An explanation of a model's decision must depend on the model. Re-initialise its weights group by group from
the head backwards — the head (incre, downsample and final layers, classifier), then stage 4, 3, 2 (each with
the transition that feeds it), then the stem (two strided convs and layer1) — and after each step explain the
same image and class again. A faithful method's map moves away from the original: its Spearman rank
correlation with the original (of |map|, ties sharing their average rank) falls towards 0. A method whose map
barely changes behaves like an edge detector, whatever the weights.

Re-initialisation follows timm's own for HRNet (``HighResolutionNet.init_weights``): convolutions Kaiming-normal
(fan-out, ReLU), BatchNorm weight 1 and bias 0 with running statistics reset (mean 0, variance 1), the
classifier as ``nn.Linear`` initialises itself; seeded by ``seed`` without touching the global RNG. It happens
on a private copy: the caller's model and its cached attribution copies are never changed.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from timm.models.hrnet import HighResolutionNet
from torch import nn

from ..anatomy import check_hrnet
from ..copies import private_copy
from ..errors import ArgumentError, InputError
from ..images import ImageInput
from ..progress import Progress, Steps
from ..zoo import LoadedModel
from ._core import _check_target, _names_field, _prepare, _TargetLabel
from .faithfulness import spearman
from .pixels import PIXEL_METHODS, attribute_pixels

__all__ = [
    "RANDOMISATION_LAYERS",
    "RandomisationTest",
    "layer_groups",
    "randomised_models",
    "randomisation_test",
]

RANDOMISATION_LAYERS = ("head", "stage4", "stage3", "stage2", "stem")  # the cascade's order, top-down


def layer_groups(net: HighResolutionNet) -> dict[str, list[nn.Module]]:
    """The modules of each randomisation group; together they hold every parameter of the network."""
    head = [net.incre_modules, net.downsamp_modules, net.final_layer, net.classifier]
    return {
        "head": [m for m in head if m is not None],
        "stage4": [net.stage4, net.transition3],
        "stage3": [net.stage3, net.transition2],
        "stage2": [net.stage2, net.transition1],
        "stem": [net.conv1, net.bn1, net.conv2, net.bn2, net.layer1],
    }


def _reinitialise(modules: Sequence[nn.Module], generator: torch.Generator) -> None:
    with torch.no_grad():
        for module in modules:
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                    if m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.BatchNorm2d):
                    m.weight.fill_(1.0)
                    m.bias.zero_()
                    m.reset_running_stats()
                elif isinstance(m, nn.Linear):  # nn.Linear.reset_parameters, with our generator
                    nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                    if m.bias is not None:
                        bound = 1 / math.sqrt(m.weight.shape[1])
                        nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def _check_layers(layers: Sequence[str]) -> tuple[str, ...]:
    layers = tuple(layers)
    unknown = [name for name in layers if name not in RANDOMISATION_LAYERS]
    if unknown or not layers or len(set(layers)) != len(layers):
        raise InputError(
            f"layers must be distinct names from {', '.join(RANDOMISATION_LAYERS)} (cascade order), got {layers!r}."
        )
    return layers


def randomised_models(
    loaded: LoadedModel, layers: Sequence[str] = RANDOMISATION_LAYERS, *, seed: int = 0
) -> Iterator[tuple[str, LoadedModel]]:
    """Yield ``(layer, model)`` with the groups ``layers[:k+1]`` re-initialised, k = 0, 1, …: the cascade.

    One private copy of the network is made and randomised further at each step (the yielded model is that
    copy: use it before advancing the iterator). ``loaded.model`` is never changed.
    """
    layers = _check_layers(layers)
    if not isinstance(loaded, LoadedModel):
        raise ArgumentError(f"Expected a LoadedModel (from hrnet_explorer.load_model), got {type(loaded).__name__}.")
    entry = private_copy(check_hrnet(loaded.model), "exact")
    with entry.lock, torch.inference_mode(False), torch.no_grad():
        net = copy.deepcopy(entry.net)  # ReLUs not in-place, no hooks, frozen, eval
    generator = torch.Generator(device=next(net.parameters()).device).manual_seed(seed)
    groups = layer_groups(net)
    randomised = dataclasses.replace(loaded, model=net)
    for name in layers:
        _reinitialise(groups[name], generator)
        yield name, randomised


@dataclass(frozen=True)
class RandomisationTest(_TargetLabel):
    """How much a method's map changes as the model is randomised from the head down."""

    method: str
    target: int
    layers: tuple[str, ...]  # cascade order: after step k, layers[:k+1] are random
    similarity: tuple[float | None, ...]  # Spearman(|original map|, |map after step k|); None: a constant map
    seed: int
    seconds: float
    class_names: tuple[str, ...] = _names_field()

    @property
    def final_similarity(self) -> float | None:
        """The similarity once every group is random (the last step)."""
        return self.similarity[-1]

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "target": self.target,
            "label": self.label,
            "metric": "spearman(|map|)",
            "layers": list(self.layers),
            "similarity": list(self.similarity),
            "final_similarity": self.final_similarity,
            "seed": self.seed,
            "seconds": self.seconds,
        }


def randomisation_test(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    method: str = "saliency",
    target: int | None = None,
    *,
    layers: Sequence[str] = RANDOMISATION_LAYERS,
    seed: int = 0,
    original: torch.Tensor | None = None,
    input_size: int | None = None,
    progress: Progress | None = None,
    **options,
) -> RandomisationTest:
    """The cascading randomisation test of one pixel ``method`` (with its ``options``, as for
    :func:`attribute_pixels`) on one image, for ``target`` (default: the original model's top-1; it stays fixed
    while the model changes). ``original``: the original model's heatmap, if already computed with the same
    options (saves one attribution). ``progress(done, total)``, if given, is called as each attribution
    completes: one per layer group, and the original's first when it is computed here."""
    if method not in PIXEL_METHODS:
        raise InputError(f"Unknown method {method!r}; choose one of: {', '.join(PIXEL_METHODS)}.")
    layers = _check_layers(layers)
    net, _, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    start = time.perf_counter()
    steps = Steps(progress, len(layers) + (original is None or target is None))
    if original is None or target is None:
        first = attribute_pixels(loaded, x, method, target, **options)
        target, original = first.target, first.heatmap if original is None else original
        steps.advance()
    if tuple(original.shape) != tuple(x.shape[-2:]):
        raise InputError(f"original is {tuple(original.shape)}, the input {tuple(x.shape[-2:])}: one input size.")
    similarity = []
    for _, randomised in randomised_models(loaded, layers, seed=seed):
        heat = attribute_pixels(randomised, x, method, target, **options).heatmap
        if not bool(torch.isfinite(heat).all()):
            raise FloatingPointError(f"{method} on the randomised model gave non-finite values.")
        similarity.append(spearman(original.abs(), heat.abs()))
        steps.advance()
    return RandomisationTest(
        method=method,
        target=target,
        layers=layers,
        similarity=tuple(similarity),
        seed=seed,
        seconds=time.perf_counter() - start,
        class_names=loaded.class_names,
    )

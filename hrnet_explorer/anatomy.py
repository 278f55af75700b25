"""How a timm HRNet is put together — the one module that knows (timm's FeatureInfo idea, applied to HRNet).

Every other module asks this one where things are: the HighResolutionModules of stages 2–4 (:class:`ModuleRef`),
their fuse edges (:func:`fuse_edges`), the shared ReLU that fires once per target stream (:class:`SharedReLU`),
the transitions that create a stream, the classification head, and the names a full trace holds
(:func:`trace_names`). Nothing here runs a forward or installs a hook; the hook engine (:mod:`hrnet_explorer.trace`)
and the explicit forward (:mod:`hrnet_explorer.compiled`) are its two clients that touch modules.

The facts (timm 1.0.31's hrnet.py; ../shared/HRNET_IN_TIMM.md):
- ``stage{s}[m]`` is a ``HighResolutionModule``; ``fuse_layers[i][j]`` is the edge from stream j into stream i
  (``nn.Identity`` for j == i), and ``fused_i = fuse_act(Σ_j fuse_layers[i][j](branch_j))`` with ONE ``fuse_act``
  ReLU reused for every i, in order i = 0..N−1.
- ``transition{t}[k]`` creates stream k where it is not an ``nn.Identity`` (those are never called).
- ``downsamp_modules[k]`` is called through ``.forward``: hooks belong on its children.
- A features-only model (``features_only=True``) has the same stages and no classification head.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from timm.models.hrnet import HighResolutionModule, HighResolutionNet
from torch import nn

from .errors import ArgumentError, InputError, NotFoundError

__all__ = [
    "ModuleRef",
    "ModuleNotFoundInStage",
    "SharedReLU",
    "STAGES",
    "check_hrnet",
    "fuse_edges",
    "shared_relu",
    "has_head",
    "hr_module",
    "hr_modules",
    "module_refs",
    "resolve_module",
    "stream_transitions",
    "trace_names",
]

STAGES = (2, 3, 4)  # the fusing stages; stage s has s streams


@dataclass(frozen=True)
class ModuleRef:
    """Where one HighResolutionModule sits: ``stage`` 2..4, ``index`` within it, its stream count."""

    stage: int
    index: int
    num_streams: int

    @property
    def name(self) -> str:
        return f"stage{self.stage}.module{self.index}"


class ModuleNotFoundInStage(InputError, NotFoundError):
    """No such (stage, module): a user's mistake; a ``ValueError`` and a ``KeyError`` alike (both were raised)."""


def has_head(net: HighResolutionNet) -> bool:
    """Whether ``net`` has timm's classification head (``incre_modules`` … ``classifier``)."""
    return getattr(net, "incre_modules", None) is not None and getattr(net, "downsamp_modules", None) is not None


def check_hrnet(model: nn.Module, *, head: bool = True) -> HighResolutionNet:
    """``model`` itself if it is a timm HighResolutionNet (with its classification head, unless ``head=False``)."""
    if not isinstance(model, HighResolutionNet):
        raise ArgumentError(f"Expected a timm HighResolutionNet, got {type(model).__name__}.")
    if head and not has_head(model):
        raise InputError(
            "The model has no classification head (features_only?); build it with timm.create_model(name)."
        )
    return model


def hr_module(net: HighResolutionNet, ref: ModuleRef) -> HighResolutionModule:
    return getattr(net, f"stage{ref.stage}")[ref.index]


def hr_modules(net: HighResolutionNet) -> Iterator[tuple[ModuleRef, HighResolutionModule]]:
    """Every HighResolutionModule of stages 2–4 with its :class:`ModuleRef`, in forward order."""
    for s in STAGES:
        for m, mod in enumerate(getattr(net, f"stage{s}")):
            yield ModuleRef(s, m, mod.num_branches), mod


def module_refs(model: nn.Module) -> list[ModuleRef]:
    """Every HighResolutionModule of stages 2–4, in forward order."""
    return [ref for ref, _ in hr_modules(check_hrnet(model, head=False))]


def fuse_edges(mod: HighResolutionModule) -> Iterator[tuple[int, int, nn.Module]]:
    """``(source j, target i, fuse_layers[i][j])`` for every fuse edge of one module, target by target."""
    for i, row in enumerate(mod.fuse_layers):
        for j, edge in enumerate(row):
            yield j, i, edge


def shared_relu(mod: HighResolutionModule) -> nn.Module:
    """The ReLU shared by all target streams of ``mod`` (see :class:`SharedReLU`)."""
    return mod.fuse_act


class SharedReLU:
    """Which target stream a call of a module's shared ``fuse_act`` is for.

    ``fuse_act`` fires once per target stream, i = 0..N−1, within one module call: :meth:`start` at the module's
    forward pre-hook, :meth:`next` in ``fuse_act``'s forward hook → i. One counter for all modules of a net."""

    def __init__(self) -> None:
        self._calls: dict[str, int] = {}

    def start(self, ref: ModuleRef) -> None:
        self._calls[ref.name] = 0

    def next(self, ref: ModuleRef) -> int:
        i = self._calls[ref.name]
        self._calls[ref.name] = i + 1
        return i


def stream_transitions(net: HighResolutionNet) -> Iterator[tuple[int, int, nn.Module]]:
    """``(t, k, transition{t}[k])`` for every transition layer that is called (the ``nn.Identity`` ones are not)."""
    for t in (1, 2, 3):
        for k, layer in enumerate(getattr(net, f"transition{t}")):
            if not isinstance(layer, nn.Identity):
                yield t, k, layer


def resolve_module(refs: list[ModuleRef], stage: int, index: int) -> ModuleRef:
    """Module ``index`` of ``stage`` among ``refs``; negative indices count from the stage's end (-1: its last).

    Raises :class:`ModuleNotFoundInStage` (a ``ValueError`` and a ``KeyError``) naming what exists."""
    if isinstance(stage, bool) or not isinstance(stage, int) or stage not in STAGES:
        raise ModuleNotFoundInStage(f"No stage {stage!r}: HRNet's fusing stages are 2, 3 and 4.")
    in_stage = [r for r in refs if r.stage == stage]
    if isinstance(index, bool) or not isinstance(index, int) or not -len(in_stage) <= index < len(in_stage):
        raise ModuleNotFoundInStage(
            f"No module {index!r} in stage {stage}: it has {len(in_stage)} module(s) "
            f"({', '.join(r.name for r in in_stage)}); module must be in {-len(in_stage)}..{len(in_stage) - 1}."
        )
    return in_stage[index]


def trace_names(model: nn.Module) -> list[str]:
    """The names a full trace of ``model`` (a timm HRNet, or a LoadedModel) holds, in forward order, without running
    it. A features-only model's names stop at the last stage's fused maps."""
    net = check_hrnet(getattr(model, "model", model), head=False)
    names = ["stem", "layer1"] + [f"transition1.stream{k}" for k in range(len(net.transition1))]
    for ref in module_refs(net):
        if ref.index == 0 and ref.stage > 2:
            names.append(f"transition{ref.stage - 1}.stream{ref.num_streams - 1}")
        n, p = ref.num_streams, ref.name
        names += [f"{p}.branch{i}" for i in range(n)]
        for i in range(n):
            names += [f"{p}.edge{j}to{i}" for j in range(n)] + [f"{p}.presum{i}", f"{p}.fused{i}"]
    if not has_head(net):
        return names
    k = len(net.incre_modules)
    names.append("head.incre0")
    for i in range(1, k):  # incre_i(stream i) + down_{i-1}(merge_{i-1}), evaluated left to right
        names += [f"head.incre{i}", f"head.merge{i - 1}", f"head.down{i - 1}"]
    return names + [f"head.merge{k - 1}", "head.final", "head.pooled", "logits"]

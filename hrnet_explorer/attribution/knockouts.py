"""Knockouts: zero fuse edges (one stream's, or one edge) and report what changes in the prediction."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from timm.models.hrnet import HighResolutionNet

from ..anatomy import ModuleRef, module_refs
from ..copies import PrivateCopy
from ..errors import InputError
from ..hooks import hooks_installed, knockout_hooks, stream_edges
from ..images import ImageInput
from ..predict import ClassScore, topk_from_logits
from ..zoo import LoadedModel
from ._core import _check_target, _names_field, _prepare, _resolve_module, _TargetLabel

__all__ = ["KnockoutResult", "knockout", "resolution_reliance"]


@dataclass(frozen=True)
class KnockoutResult(_TargetLabel):
    """What zeroing some fuse edges does to the target's logit and probability, and the new top-k."""

    target: int
    description: str  # e.g. "stream 2 removed everywhere", "edge 3→0 removed in stage4.module2"
    logit_before: float
    logit_after: float
    prob_before: float
    prob_after: float
    top_after: list[ClassScore]
    top_before: list[ClassScore] = field(default_factory=list)
    stream: int | None = None
    edge: tuple[int, int] | None = None  # (source, target)
    modules: tuple[str, ...] = ()  # modules where edges were zeroed
    edges_removed: int = 0  # number of fuse edges zeroed in all
    class_names: tuple[str, ...] = _names_field()

    @property
    def logit_delta(self) -> float:
        return self.logit_after - self.logit_before

    @property
    def prob_delta(self) -> float:
        return self.prob_after - self.prob_before

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "label": self.label,
            "description": self.description,
            "stream": self.stream,
            "edge": list(self.edge) if self.edge else None,
            "modules": list(self.modules),
            "edges_removed": self.edges_removed,
            "logit_before": self.logit_before,
            "logit_after": self.logit_after,
            "logit_delta": self.logit_delta,
            "prob_before": self.prob_before,
            "prob_after": self.prob_after,
            "prob_delta": self.prob_delta,
            "top_after": [vars(s) for s in self.top_after],
        }


def _select_modules(net: HighResolutionNet, stage: int | None, module: int | None) -> tuple[list[ModuleRef], str]:
    refs = module_refs(net)
    if stage is None:
        if module is not None:
            raise InputError("module= needs stage= too (e.g. stage=4, module=0); leave both out for every module.")
        return refs, "everywhere"
    if stage not in (2, 3, 4):
        raise InputError(f"No stage {stage!r}: HRNet's fusing stages are 2, 3 and 4.")
    if module is None:
        chosen = [r for r in refs if r.stage == stage]
        return chosen, (f"in {chosen[0].name}" if len(chosen) == 1 else f"in stage {stage} (all {len(chosen)} modules)")
    ref, _ = _resolve_module(net, stage, module)
    return [ref], f"in {ref.name}"


def _edges_to_zero(
    net: HighResolutionNet,
    stream: int | None,
    edge: tuple[int, int] | None,
    stage: int | None,
    module: int | None,
    self_edge: bool,
) -> tuple[list[tuple[ModuleRef, int, int]], str, tuple[str, ...]]:
    """→ ([(module, source, target)], description, module names)."""
    if stream is not None and edge is not None:
        raise InputError("Knock out a stream or an edge, not both.")
    refs, where = _select_modules(net, stage, module)
    if stream is None and edge is None:
        return [], "nothing removed", ()
    everywhere = stage is None
    if stream is not None:
        if isinstance(stream, bool) or not isinstance(stream, int) or stream < 0:
            raise InputError(f"stream must be a stream index ≥ 0, got {stream!r}.")
        needed, what = stream, f"stream {stream}"
    else:
        if (
            not isinstance(edge, (tuple, list))
            or len(edge) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in edge)
        ):
            raise InputError(f"edge must be a (source, target) pair of stream indices, got {edge!r}.")
        needed, what = max(edge), f"edge {edge[0]}→{edge[1]}"
    usable = [r for r in refs if needed < r.num_streams]
    if not usable or (not everywhere and len(usable) != len(refs)):
        have = sorted({r.num_streams for r in refs})
        raise InputError(
            f"No {what} {where}: the module(s) there have {'/'.join(map(str, have))} streams (0..{max(have) - 1}). "
            "Streams: stage 2 has 0–1, stage 3 has 0–2, stage 4 has 0–3."
        )
    edges = stream_edges(usable, stream, self_edge) if stream is not None else [(r, edge[0], edge[1]) for r in usable]
    removed = "removed" if stream is None or not self_edge else "removed (its own path too)"
    return edges, f"{what} {removed} {where}", tuple(r.name for r in usable)


def _knockout_logits(exact: PrivateCopy, x: torch.Tensor, edges: list[tuple[ModuleRef, int, int]]) -> torch.Tensor:
    with exact.lock, hooks_installed(knockout_hooks(exact.net, edges)), torch.inference_mode():
        return exact.net(x)[0].float().cpu()


def _knockout_result(
    loaded: LoadedModel, target, logits_before, logits_after, description, topk, **extra
) -> KnockoutResult:
    p_before, p_after = logits_before.softmax(-1), logits_after.softmax(-1)
    names = loaded.class_names
    return KnockoutResult(
        target=target,
        description=description,
        logit_before=float(logits_before[target]),
        logit_after=float(logits_after[target]),
        prob_before=float(p_before[target]),
        prob_after=float(p_after[target]),
        top_after=topk_from_logits(logits_after, topk, names),
        top_before=topk_from_logits(logits_before, topk, names),
        class_names=names,
        **extra,
    )


def knockout(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    *,
    stream: int | None = None,
    edge: tuple[int, int] | None = None,
    stage: int | None = None,
    module: int | None = None,
    target: int | None = None,
    topk: int = 5,
    self_edge: bool = False,
    input_size: int | None = None,
) -> KnockoutResult:
    """Zero fuse edges and report the change in the ``target`` class (default: the top-1 before).

    ``stream=k``: every edge leaving stream k into another stream (k→i, i ≠ k; with
    ``self_edge=True`` also k→k, the stream's own continuation). ``edge=(source, target)``: that one
    edge. Where: ``stage``/``module`` (``module`` may be negative; ``stage`` alone: all its modules;
    neither: every module that has the streams). Neither ``stream`` nor ``edge``: nothing is
    removed, and the logits are exactly the original ones. Runs on the private exact copy: the
    caller's model is never hooked.
    """
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    edges, description, names = _edges_to_zero(entry.net, stream, edge, stage, module, self_edge)
    before = _knockout_logits(entry, x, [])
    target = int(before.argmax()) if target is None else target
    after = _knockout_logits(entry, x, edges)  # no edges: the same hook-free forward again
    return _knockout_result(
        loaded,
        target,
        before,
        after,
        description,
        topk,
        stream=stream,
        edge=tuple(edge) if edge else None,
        modules=names,
        edges_removed=len(edges),
    )


def resolution_reliance(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    target: int | None = None,
    *,
    topk: int = 5,
    self_edge: bool = False,
    input_size: int | None = None,
) -> list[KnockoutResult]:
    """For each final stream k (0 = highest resolution), the result of knocking it out everywhere.

    ``result[k].logit_delta`` is the target's logit change when stream k stops feeding the other
    streams in every module (``self_edge=True``: its own path too).
    """
    net, entry, x = _prepare(loaded, inputs, input_size)
    target = _check_target(target, net.num_classes)
    before = _knockout_logits(entry, x, [])
    target = int(before.argmax()) if target is None else target
    results = []
    for k in range(module_refs(entry.net)[-1].num_streams):
        edges, description, names = _edges_to_zero(entry.net, k, None, None, None, self_edge)
        after = _knockout_logits(entry, x, edges)
        results.append(
            _knockout_result(
                loaded, target, before, after, description, topk, stream=k, modules=names, edges_removed=len(edges)
            )
        )
    return results

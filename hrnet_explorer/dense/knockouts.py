"""Knockouts in a dense HRNet: a stream removed at the head's input, from every fuse edge, or both; or one fuse
edge — and how the predicted mask changes (pixels changed, IoU per class, boundary F; against the unchanged
prediction and, given one, a reference label map). Zeroing fuse edges uses the hook engine's knockout hooks on the
backbone's private copy; the caller's model is never hooked."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..anatomy import module_refs
from ..copies import PrivateCopy
from ..errors import InputError
from ..hooks import hooks_installed, knockout_hooks, stream_edges
from ..images import ImageInput
from ..zoo import LoadedModel
from .metrics import SegmentationScores, score_labels
from .model import DenseHRNet, to_input
from .regions import prepare
from .trace import dense_of

__all__ = ["KNOCKOUT_PLACES", "DenseKnockout", "dense_knockout", "knocked_out_scores", "knockout_table"]


@dataclass(frozen=True)
class DenseKnockout:
    """What a knockout does to the predicted mask: the share of pixels whose label changed, the new labels scored
    against the unchanged prediction, and (with a reference label map) both scored against the reference."""

    description: str
    changed_fraction: float
    against_before: SegmentationScores
    labels_before: torch.Tensor  # [H, W] int64
    labels_after: torch.Tensor
    before: SegmentationScores | None = None  # the unchanged prediction against the reference
    after: SegmentationScores | None = None  # the knocked-out prediction against the reference

    def to_dict(self) -> dict:
        out = {"description": self.description, "changed_fraction": self.changed_fraction}
        out["against_before"] = self.against_before.to_dict()
        if self.before is not None:
            out["before"], out["after"] = self.before.to_dict(), self.after.to_dict()
        return out


KNOCKOUT_PLACES = ("head", "fusion", "everywhere")


def _knockout_edges(net, stream: int | None, edge: tuple[int, int] | None, at: str, stage: int | None):
    refs = module_refs(net)
    if stage is not None:
        refs = [r for r in refs if r.stage == stage]
        if not refs:
            raise InputError(f"No stage {stage!r}: HRNet's fusing stages are 2, 3 and 4.")
    if edge is not None:
        if not (
            isinstance(edge, (tuple, list))
            and len(edge) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in edge)
        ):
            raise InputError(f"edge must be a (source, target) pair of stream indices, got {edge!r}.")
        j, i = edge
        chosen = [(r, j, i) for r in refs if max(j, i) < r.num_streams]
        if not chosen:
            raise InputError(f"No edge {j}→{i}: streams are 0..{max(r.num_streams for r in refs) - 1} there.")
        return chosen
    if at == "head":
        return []
    chosen = stream_edges(refs, stream)
    if not chosen:
        raise InputError(f"No fuse edge leaves stream {stream} in stage {stage}: it has streams 0..{stage - 1}.")
    return chosen


def knocked_out_scores(
    net: DenseHRNet,
    run: PrivateCopy,
    x: torch.Tensor,
    *,
    stream: int | None = None,
    edge: tuple[int, int] | None = None,
    at: str = "head",
    stage: int | None = None,
) -> tuple[torch.Tensor, str]:
    """The class scores [B, classes, H, W] of a batch ``x`` with a knockout (see :func:`dense_knockout`), and what
    was knocked out, in words. ``run``: the backbone's private copy (its lock is taken here)."""
    if (stream is None) == (edge is None):
        raise InputError("Knock out a stream or an edge (one of them).")
    if at not in KNOCKOUT_PLACES:
        raise InputError(f"at must be one of {', '.join(KNOCKOUT_PLACES)}, not {at!r}.")
    k = len(net.head.channels)
    if stream is not None and (isinstance(stream, bool) or not isinstance(stream, int) or not 0 <= stream < k):
        raise InputError(f"stream must be a stream index in 0..{k - 1}, got {stream!r}.")
    edges = _knockout_edges(run.net, stream, edge, at, stage)
    with torch.no_grad(), run.lock:
        with hooks_installed(knockout_hooks(run.net, edges)):
            streams = run.net(x)
        if stream is not None and at in ("head", "everywhere"):
            streams = [torch.zeros_like(s) if i == stream else s for i, s in enumerate(streams)]
        scores = to_input(net.head(streams), tuple(x.shape[-2:]))
    where = f" in stage {stage}" if stage is not None else " in every module"
    if edge is not None:
        what = f"edge {edge[0]}→{edge[1]} removed{where}"
    elif at == "head":
        what = f"stream {stream} removed at the head's input"
    else:
        also = " and at the head's input" if at == "everywhere" else ""
        what = f"stream {stream}'s fuse edges removed{where}{also}"
    return scores, what


def dense_knockout(
    loaded: LoadedModel,
    inputs: torch.Tensor | ImageInput,
    *,
    stream: int | None = None,
    edge: tuple[int, int] | None = None,
    at: str = "head",
    stage: int | None = None,
    reference: torch.Tensor | None = None,
) -> DenseKnockout:
    """Knock out ``stream`` — ``at`` "head" (its input to the head zeroed), "fusion" (every fuse edge out of it
    into another stream zeroed, in every module or in ``stage``'s) or "everywhere" (both) — or one fuse ``edge``
    (source, target) in every module (or ``stage``'s) that has it; predict again and score the change.
    ``reference``: an [H, W] label map (the truth) to score both predictions against."""
    net, run, x = prepare(loaded, inputs)
    size = tuple(x.shape[-2:])
    ref = None
    if reference is not None:
        ref = torch.as_tensor(reference).long().cpu()
        if tuple(ref.shape) != size:
            raise InputError(f"The reference label map must be {size[0]}×{size[1]}, got {tuple(ref.shape)}.")
    scores, what = knocked_out_scores(net, run, x, stream=stream, edge=edge, at=at, stage=stage)
    after = scores.argmax(1)[0].cpu()
    with torch.no_grad(), run.lock:
        before = to_input(net.head(run.net(x)), size).argmax(1)[0].cpu()
    names = list(loaded.class_names)
    result = {}
    if ref is not None:
        result = {"before": score_labels(before, ref, names), "after": score_labels(after, ref, names)}
    return DenseKnockout(
        description=what,
        changed_fraction=float((before != after).double().mean()),
        against_before=score_labels(after, before, names),
        labels_before=before,
        labels_after=after,
        **result,
    )


def knockout_table(
    loaded: LoadedModel, inputs: torch.Tensor | ImageInput, reference: torch.Tensor | None = None, at: str = "head"
) -> list[DenseKnockout]:
    """Each stream knocked out in turn (``at`` as in :func:`dense_knockout`)."""
    k = len(dense_of(loaded).head.channels)
    return [dense_knockout(loaded, inputs, stream=s, at=at, reference=reference) for s in range(k)]

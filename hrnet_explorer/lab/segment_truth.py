"""What the dense lab lets us check, measured on a dense lab model (none of it is assumed):

- :func:`knockout_truth` — each stream removed (at the head's input, or from every fuse edge): which family's
  pixels does it cost (IoU of the fine classes vs the coarse), and does removing stream 0 cost boundary F more than
  interior IoU?
- :func:`share_truth` — the head split's per-pixel stream shares (ReLU share of the head's activation, and each
  stream's part of the true class's score) averaged over fine-class, coarse-class and background pixels: does
  stream 0 carry more at fine-class pixels?
- :func:`attribution_truth` — a pixel attribution of each evidence region's own score (its true class summed over
  the region): how much of the map's mass stays inside the region, against the region's area.

Each runs on the first ``n`` clean test samples (:func:`hrnet_explorer.lab.render`) at the model's input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..copies import private_copy
from ..dense.analyses import head_split
from ..dense.knockouts import knocked_out_scores
from ..dense.metrics import score_labels
from ..dense.model import to_input
from ..dense.trace import dense_of, dense_trace
from ..zoo import LoadedModel
from .segment import SEG_CLASSES, SEG_FAMILY, family_iou, label_maps
from .task import render

__all__ = ["FAMILIES", "attribution_truth", "knockout_truth", "share_truth"]

FAMILIES = ("fine", "coarse", "background")


def _batches(loaded: LoadedModel, n: int, batch_size: int):
    """(normalised images, label maps, lab batch) of the first ``n`` test samples, on the model's device."""
    size = loaded.data_config["input_size"][-1]
    device = next(loaded.model.parameters()).device
    mean = torch.tensor(loaded.data_config["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(loaded.data_config["std"], device=device).view(1, 3, 1, 1)
    for start in range(0, n, batch_size):
        batch = render(range(start, min(n, start + batch_size)), "test", size, device)
        yield (batch.images - mean) / std, label_maps(batch), batch


def _row(pred: torch.Tensor, ref: torch.Tensor) -> dict:
    s = score_labels(pred, ref, SEG_CLASSES)
    fam = family_iou(s.per_class)
    return {
        "miou": s.miou,
        "fine_iou": fam.get("fine"),
        "coarse_iou": fam.get("coarse"),
        "background_iou": fam.get("background"),
        "boundary_f": s.boundary_f,
        "interior_miou": s.interior_miou,
        "per_class": s.per_class,
    }


@torch.no_grad()
def knockout_truth(
    loaded: LoadedModel, n: int = 200, *, places: Sequence[str] = ("head", "fusion"), batch_size: int = 25
) -> dict:
    """Scores against the truth with nothing removed, then with each stream removed at each of ``places``."""
    net = dense_of(loaded)
    run = private_copy(net.backbone, "exact")
    k = len(net.head.channels)
    keys = [(None, None)] + [(s, at) for at in places for s in range(k)]
    preds: dict = {key: [] for key in keys}
    refs = []
    for x, ref, _ in _batches(loaded, n, batch_size):
        refs.append(ref.cpu())
        with run.lock:
            preds[(None, None)].append(to_input(net.head(run.net(x)), tuple(x.shape[-2:])).argmax(1).cpu())
        for s, at in keys[1:]:
            preds[(s, at)].append(knocked_out_scores(net, run, x, stream=s, at=at)[0].argmax(1).cpu())
    ref = torch.cat(refs)
    base = _row(torch.cat(preds[(None, None)]), ref)
    rows = []
    for s, at in keys[1:]:
        row = _row(torch.cat(preds[(s, at)]), ref)
        row.update(stream=s, at=at)
        for metric in ("miou", "fine_iou", "coarse_iou", "boundary_f", "interior_miou"):
            row[f"{metric}_drop"] = base[metric] - row[metric]
        rows.append(row)
    return {"n": n, "intact": base, "knockouts": rows}


def _family_masks(ref: torch.Tensor) -> dict[str, torch.Tensor]:
    fam = torch.tensor([FAMILIES.index(SEG_FAMILY[c]) for c in SEG_CLASSES], device=ref.device)[ref]
    return {name: fam == i for i, name in enumerate(FAMILIES)}


def share_truth(loaded: LoadedModel, n: int = 100, *, batch_size: int = 10) -> dict:
    """Per family of pixels (by the truth): the mean ReLU share of each stream (and the bias) in the head's
    activation, and each stream's mean part of the true class's score (the exact split), with the split's error."""
    net = dense_of(loaded)
    k = len(net.head.channels)
    sums = {f: torch.zeros(2, k + 1, dtype=torch.float64) for f in FAMILIES}  # [ReLU share, score part]
    counts = dict.fromkeys(FAMILIES, 0)
    worst = 0.0
    for x, ref, _ in _batches(loaded, n, batch_size):
        split = head_split(net, dense_trace(net, x))
        worst = max(worst, split.presum_error, split.scores_error)
        size = tuple(x.shape[-2:])
        relu = to_input(split.relu_share, size)  # [B, K+1, H, W]
        b, parts, classes = split.score_parts.shape[:3]
        every = to_input(split.score_parts.flatten(1, 2), size).view(b, parts, classes, *size)
        true = every.gather(2, ref[:, None, None].expand(-1, parts, 1, -1, -1))[:, :, 0]  # the true class's parts
        for fam, mask in _family_masks(ref).items():
            w = mask[:, None].double()
            sums[fam][0] += (relu.double() * w).sum((0, 2, 3)).cpu()
            sums[fam][1] += (true.double() * w).sum((0, 2, 3)).cpu()
            counts[fam] += int(mask.sum())
    out = {"n": n, "split_error": worst, "families": {}}
    for fam in FAMILIES:
        c = max(counts[fam], 1)
        relu, part = (sums[fam] / c).tolist()
        streams = sum(part[:k])
        out["families"][fam] = {
            "pixels": counts[fam],
            "relu_share": relu,  # streams 0..K-1, then the bias
            "score_part": part,  # the true class's score: streams 0..K-1, then the bias
            "score_fraction": [p / streams for p in part[:k]] if streams else None,
        }
    return out


def attribution_truth(
    loaded: LoadedModel, n: int = 20, *, methods: Sequence[str] = ("ig", "saliency"), n_steps: int = 32
) -> dict:
    """For each of the first ``n`` test samples: a pixel attribution of its evidence region's own score, and the
    share of the map's mass inside that region (beside the region's area fraction)."""
    from ..dense.explain import region_pixels
    from ..dense.regions import Region

    rows = {m: [] for m in methods}
    for x, _, batch in _batches(loaded, n, 1):
        region = Region.of_mask(batch.masks[0].cpu(), tuple(x.shape[-2:]), "the evidence region")
        cls = int(batch.labels[0]) + 1
        for method in methods:
            r = region_pixels(loaded, x, region, cls, method=method, n_steps=n_steps)
            rows[method].append(
                {"family": SEG_FAMILY[SEG_CLASSES[cls]], "mass": r.mass_in_region, "area": r.area_fraction}
            )
    out = {"n": n, "n_steps": n_steps, "methods": {}}
    for method, items in rows.items():
        summary = {}
        for fam in ("fine", "coarse"):
            chosen = [r for r in items if r["family"] == fam]
            if chosen:
                summary[fam] = {
                    "images": len(chosen),
                    "mass_in_region": sum(r["mass"] for r in chosen) / len(chosen),
                    "area_fraction": sum(r["area"] for r in chosen) / len(chosen),
                }
        out["methods"][method] = summary
    return out

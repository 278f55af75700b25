"""``explain --score``: how far to trust what ``explain`` computed."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from ..progress import progress_bar
from ..zoo import LoadedModel
from .options import MAPLESS, pixel_options


def _num(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def score(args: argparse.Namespace, loaded: LoadedModel, x: torch.Tensor, result: Any, lines: list[str]) -> dict:
    """Deletion/insertion and the randomisation test for pixel maps; deletion/insertion per stream for Grad-CAM;
    shares vs knockouts for the per-stream methods. Appends its text to ``lines``; returns the JSON part."""
    from .. import attribution as attr

    steps, baseline = args.score_steps or 20, args.score_baseline or "blur"

    def curves(heat: Any, method: str) -> dict:  # a map, or a pixel result (its heatmap)
        f = attr.deletion_insertion(loaded, x, heat, result.target, steps=steps, baseline=baseline, method=method)
        return f.to_dict()

    if args.method in MAPLESS:
        agreement = attr.stream_agreement(loaded, x, result.target)
        lines.append(
            f"faithfulness: stream shares vs knockouts, Spearman {_num(agreement.spearman)}, "
            f"same top stream: {'yes' if agreement.same_top else 'no'}"
        )
        return {"stream_agreement": agreement.to_dict(), "spearman": agreement.spearman}
    reference = curves(attr.random_map(tuple(x.shape[-2:])), "random")
    out: dict = {"baseline": baseline, "steps": steps}
    if args.method == "gradcam-streams":
        out["streams"] = [{"stream": k} | curves(m, f"gradcam stream {k}") for k, m in enumerate(result.maps)]
        for s in out["streams"]:
            lines.append(
                f"faithfulness of stream {s['stream']}'s map: deletion AUC {_num(s['deletion_auc'])}, "
                f"insertion AUC {_num(s['insertion_auc'])}"
            )
    else:
        out |= curves(result, args.method)
        with progress_bar(f"randomisation test ({args.method})", "map", quiet=args.quiet) as progress:
            test = attr.randomisation_test(
                loaded, x, args.method, result.target, original=result.heatmap, progress=progress, **pixel_options(args)
            )
        out["randomisation_similarity"] = test.final_similarity
        out["randomisation"] = test.to_dict()
        lines.append(
            f"faithfulness ({baseline} baseline, {steps} steps; p / p(input)): deletion AUC "
            f"{_num(out['deletion_auc'])} (lower is better), insertion AUC {_num(out['insertion_auc'])} "
            "(higher is better)"
        )
        lines.append(
            "randomisation test: Spearman similarity to the original map as layers are randomised "
            + ", ".join(f"{layer} {_num(v)}" for layer, v in zip(test.layers, test.similarity, strict=True))
        )
    out["random_map"] = {
        k: reference[k] for k in ("deletion_auc", "insertion_auc", "deletion_auc_raw", "insertion_auc_raw")
    }
    lines.append(
        f"random map for reference: deletion AUC {_num(reference['deletion_auc'])}, "
        f"insertion AUC {_num(reference['insertion_auc'])}"
    )
    return out

"""``explain``: one small function per method (pixel maps, per-stream Grad-CAM, stream shares, knockouts),
each returning what the command prints, saves and scores."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import InputError
from ..images import display_scale
from ..progress import progress_bar
from ..render import Sheet, colorbar, overlay
from ..zoo import LoadedModel, class_index
from .common import QUIET_HELP, add_model_args, header, load, print_json
from .options import MAPLESS, PIXEL_EXPLAINERS, pixel_options
from .score import score

OUT_SUFFIXES = (".json", ".npz", ".png")


@dataclass
class Explained:
    """What one method gave: the result to score, its JSON body, its arrays, its text, its PNG sheet."""

    result: Any  # what --score scores (knockouts: the first, whose target they all share)
    body: dict
    arrays: dict[str, torch.Tensor]
    lines: list[str] = field(default_factory=list)
    sheet: Sheet | None = None  # the map(s) over the crop, when there is a crop (--out)


def _grid(heatmap: torch.Tensor, cells: int = 7) -> list[list[float]]:
    """The heatmap averaged over a cells×cells grid (for text and JSON)."""
    return F.adaptive_avg_pool2d(heatmap[None, None], cells)[0, 0].tolist()


def _pixels(
    args: argparse.Namespace, loaded: LoadedModel, x: torch.Tensor, target: int | None, crop: Image.Image | None
) -> Explained:
    from .. import attribution as attr

    with progress_bar(args.method, quiet=args.quiet) as progress:
        result = attr.attribute_pixels(loaded, x, args.method, target, progress=progress, **pixel_options(args))
    grid = _grid(result.heatmap)
    out = Explained(
        result,
        result.to_dict() | {"heatmap_7x7": grid},
        {"attributions": result.attributions, "heatmap": result.heatmap},
    )
    if crop is not None:
        signed = result.settings["reduction"] in ("sum", "mean")
        scale = display_scale(result.heatmap)
        label = f"{result.method} · class {result.target} {result.label}"[:40]
        what = "attribution" + (" (red > 0 > blue)" if signed else "")
        out.sheet = Sheet(
            [overlay(crop, result.heatmap, signed, label, scale)], lambda w: colorbar(w, signed, scale, what)
        )
    out.lines.append(f"{result.method} · target {result.target} {result.label!r} · {result.seconds:.2f} s")
    if result.delta is not None:
        gap = result.logit - result.baseline_logit if result.baseline_logit is not None else None
        out.lines.append(
            f"convergence delta {result.delta:+.3e}"
            + (f" (f(x) − f(baseline) = {gap:+.4f})" if gap is not None else "")
        )
    out.lines.append(f"heatmap ({result.settings['reduction']} over channels), mean over a 7×7 grid:")
    out.lines += ["  " + " ".join(f"{v:+9.2e}" for v in row) for row in grid]
    return out


def _gradcam(
    args: argparse.Namespace, loaded: LoadedModel, x: torch.Tensor, target: int | None, crop: Image.Image | None
) -> Explained:
    from .. import attribution as attr

    module = -1 if args.module is None else args.module
    result = attr.gradcam_streams(loaded, x, target, stage=args.stage or 4, module=module)
    body = result.to_dict()
    arrays = {f"map{k}": m for k, m in enumerate(result.maps)} | {f"raw{k}": r for k, r in enumerate(result.raw)}
    out = Explained(result, body, arrays)
    if crop is not None:
        # each stream on its own scale (the fine streams' maps are far smaller), its end in the label
        panels = [
            overlay(crop, m, False, f"Grad-CAM stream {k} (1/{4 * 2**k}): 0 - {display_scale(m):.2g}")
            for k, m in enumerate(result.maps)
        ]
        out.sheet = Sheet(panels, lambda w: colorbar(w, False, None, "Grad-CAM, each stream on its own scale"))
    out.lines.append(f"Grad-CAM per stream of {result.name} · target {result.target} {body['label']!r}")
    for s in body["streams"]:
        out.lines.append(
            f"  stream {s['stream']} {s['resolution'][0]}×{s['resolution'][1]}: max {s['max']:.3e} "
            f"mean {s['mean']:.3e} peak at input {s['peak_at_input']}"
        )
    return out


def _shares(
    args: argparse.Namespace, loaded: LoadedModel, x: torch.Tensor, target: int | None, crop: Image.Image | None
) -> Explained:
    from .. import attribution as attr

    with progress_bar("stream shares", quiet=args.quiet) as progress:
        result = attr.stream_shares(loaded, x, target, n_steps=args.steps or 32, progress=progress)
    body = result.to_dict()
    arrays = {"shares": result.shares} | {f"attributions{k}": a for k, a in enumerate(result.attributions)}
    out = Explained(result, body, arrays)
    out.lines.append(
        f"share of logit {result.logit:.4f} − baseline {result.baseline_logit:.4f} · target "
        f"{result.target} {body['label']!r} (Layer IG, {result.n_steps} steps)"
    )
    for k, (v, f) in enumerate(zip(body["shares"], body["fractions"], strict=True)):
        out.lines.append(f"  stream {k}: {v:+.4f} ({f:+.1%})")
    out.lines.append(f"completeness delta {result.delta:+.3e} ({result.relative_delta:.2e} relative)")
    return out


def _knockout(
    args: argparse.Namespace, loaded: LoadedModel, x: torch.Tensor, target: int | None, crop: Image.Image | None
) -> Explained:
    from .. import attribution as attr

    if args.stream is not None or args.edge is not None:
        where = {"stream": args.stream, "edge": args.edge, "stage": args.stage, "module": args.module}
        results = [attr.knockout(loaded, x, **where, target=target, topk=args.topk)]
    else:
        results = attr.resolution_reliance(loaded, x, target, topk=args.topk)
    arrays = {
        "logit_delta": torch.tensor([r.logit_delta for r in results]),
        "prob_delta": torch.tensor([r.prob_delta for r in results]),
    }
    first = results[0]
    out = Explained(first, {"results": [r.to_dict() for r in results]}, arrays)
    out.lines.append(
        f"target {first.target} {first.label!r}: logit {first.logit_before:.4f}, p {first.prob_before:.2%}"
    )
    for r in results:
        out.lines.append(
            f"  {r.description:<40} Δlogit {r.logit_delta:+.4f}  Δp {r.prob_delta:+.2%}  "
            f"top-1 after: {r.top_after[0].label}"
        )
    return out


# (arguments, model, input, target class or None for the top-1, the crop to draw on or None) → what it gave
Method = Callable[[argparse.Namespace, LoadedModel, torch.Tensor, "int | None", "Image.Image | None"], Explained]
METHODS: dict[str, Method] = {m: _pixels for m in PIXEL_EXPLAINERS} | {
    "gradcam-streams": _gradcam,
    "stream-shares": _shares,
    "knockout": _knockout,
}


def _edge_arg(text: str) -> tuple[int, int]:
    parts = text.replace("→", ",").replace("to", ",").replace("->", ",").split(",")
    try:
        source, target = (int(p) for p in parts if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--edge takes SOURCE,TARGET (e.g. 3,0), not {text!r}") from None
    return source, target


def check_args(args: argparse.Namespace) -> None:
    """Reject option mixes that would be ignored, and --out files we cannot write, before any work."""
    if args.method != "knockout" and (args.stream is not None or args.edge is not None):
        raise InputError("--stream and --edge belong to --method knockout.")
    if args.method not in ("knockout", "gradcam-streams") and (args.stage is not None or args.module is not None):
        raise InputError("--stage and --module belong to --method gradcam-streams or knockout.")
    if args.steps is not None and args.method not in ("ig", "stream-shares"):
        raise InputError("--steps belongs to --method ig or stream-shares.")
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps must be ≥ 1, got {args.steps}.")
    if not args.score and (args.score_steps is not None or args.score_baseline is not None):
        raise InputError("--score-steps and --score-baseline belong to --score.")
    if args.out:
        out = Path(args.out)
        suffix = out.suffix.lower()
        if suffix not in OUT_SUFFIXES:
            raise InputError(f"--out must end in {', '.join(OUT_SUFFIXES)}; got {args.out!r}.")
        if suffix == ".png" and args.method in MAPLESS:
            raise InputError(f"--method {args.method} has no map to draw: use --out FILE.json or FILE.npz.")
        if out.is_dir():
            raise InputError(f"--out {args.out!r} is a folder: name a file in it, e.g. {out / ('explain' + suffix)}.")
        if not out.parent.is_dir():
            raise InputError(f"--out {args.out!r}: the folder {str(out.parent)!r} does not exist.")


def _save(path: str, summary: dict, explained: Explained) -> None:
    """.json: the summary; .npz: the arrays; .png: the map(s) over the input crop, side by side."""
    import numpy as np

    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        Path(path).write_text(json.dumps(summary, indent=2))
    elif suffix == ".npz":
        np.savez_compressed(path, **{k: v.numpy() for k, v in explained.arrays.items()})
    else:
        explained.sheet.image().save(path)


def explain(args: argparse.Namespace) -> None:
    from ..images import display_crop, preprocess

    check_args(args)
    loaded = load(args)
    target = class_index(args.target, loaded.class_names) if args.target is not None else None
    x = preprocess(args.image, loaded.data_config, args.input_size)
    crop = display_crop(args.image, loaded.data_config, args.input_size) if args.out else None
    explained = METHODS[args.method](args, loaded, x, target, crop)
    summary = {
        "model": loaded.name,
        "variant": loaded.variant.name,
        "num_classes": loaded.num_classes,
        "weights": {"kind": loaded.weights.kind, "detail": loaded.weights.detail, "tag": loaded.weights.tag},
        "random_weights": loaded.weights.is_random,
        "device": str(loaded.device),
        "input_size": list(x.shape[-2:]),
        "method": args.method,
        "result": explained.body,
    }
    if args.score:
        summary["faithfulness"] = score(args, loaded, x, explained.result, explained.lines)
    if args.out:
        _save(args.out, summary, explained)
    if args.json:
        print_json(summary)
        return
    print(header(loaded, f"input {x.shape[-2]}×{x.shape[-1]}"))
    print("\n".join(explained.lines))
    if args.out:
        print(f"wrote {args.out}")


def add_command(sub) -> None:
    """Register ``explain``."""
    p = sub.add_parser("explain", help="attribution: pixel maps, per-stream Grad-CAM and shares, knockouts")
    add_model_args(p)
    p.add_argument("--method", "-m", default="ig", choices=tuple(METHODS), help="what to compute")
    p.add_argument("--target", "-t", default=None, help="class index or class name (default: top-1)")
    p.add_argument("--out", "-o", default=None, help="FILE.json (summary), FILE.npz (arrays) or FILE.png (overlay)")
    p.add_argument("--steps", type=int, default=None, help="integration steps (ig, stream-shares; default 32)")
    p.add_argument("--stage", type=int, default=None, help="gradcam-streams/knockout: stage 2, 3 or 4")
    p.add_argument("--module", type=int, default=None, help="gradcam-streams/knockout: module index in the stage")
    p.add_argument("--stream", type=int, default=None, help="knockout: stream to remove (default: every stream)")
    p.add_argument("--edge", type=_edge_arg, default=None, help="knockout: one edge SOURCE,TARGET, e.g. 3,0")
    p.add_argument(
        "--score",
        action="store_true",
        help="also score the result: deletion/insertion AUCs and the randomisation test (pixel maps, Grad-CAM), "
        'stream shares vs knockouts (stream-shares, knockout); adds "faithfulness" to --json',
    )
    p.add_argument("--score-steps", type=int, default=None, help="--score: deletion/insertion steps (default 20)")
    p.add_argument(
        "--score-baseline",
        default=None,
        choices=("blur", "zeros", "mean"),
        help="--score: what deleted pixels become (default blur)",
    )
    p.add_argument("--topk", "-k", type=int, default=5, help="how many classes to list")
    p.add_argument("--quiet", "-q", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=explain)

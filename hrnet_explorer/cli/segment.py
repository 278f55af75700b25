"""``hrnet-explorer segment IMAGE``: every pixel's class by a dense model, and the mask as a palette PNG; with
``--explain CLASS``, the pixels labelled CLASS explained stream by stream (the exact head split and layer IG)."""

from __future__ import annotations

import argparse
import os

from ..dense.explain import region_split, region_stream_shares
from ..dense.model import DenseHRNet
from ..dense.predict import segment
from ..dense.regions import class_region, resolve_class
from ..errors import InputError
from ..images import read_image
from ..zoo import LAB_SEG, class_index, load_model
from .common import print_json

__all__ = ["add_command"]

_NOT_DENSE = (
    "segment needs a dense model: --variant lab-seg (the dense lab model), or --variant V --weights PATH of a "
    'checkpoint whose card says "task": "segmentation"'
)


def run(args: argparse.Namespace) -> None:
    image = read_image(args.image)  # a bad image fails before any model is loaded
    if args.variant != LAB_SEG and not (os.sep in args.weights or args.weights.endswith((".safetensors", ".pth"))):
        raise InputError(f"{_NOT_DENSE}; got --variant {args.variant} --weights {args.weights}.")
    loaded = load_model(args.variant, args.weights, args.device)
    if not isinstance(loaded.model, DenseHRNet):
        raise InputError(f"{_NOT_DENSE}; {args.weights} is a classifier.")
    cls = None if args.explain is None else resolve_class(loaded, class_index(args.explain, loaded.class_names))
    result = segment(loaded, image)
    explained = None if cls is None else _explain(loaded, image, cls, args.ig_steps)
    out = str(result.save(args.out)) if args.out else None
    if args.json:
        where = {"image": str(args.image), "model": loaded.name, "weights": loaded.weights.detail}
        print_json({**where, **result.to_dict(), "mask": out, **({"explain": explained} if explained else {})})
        return
    h, w = result.size
    print(f"{args.image} · {loaded.name} ({loaded.weights.describe()}) · {w}×{h} px, seen at {result.input_size[1]}×"
          f"{result.input_size[0]}")  # fmt: skip
    for name, fraction in result.fractions().items():
        print(f"  {name:<24}{fraction:8.2%}")
    if out:
        print(f"mask: {out} (palette PNG of class indices, {w}×{h})")
    if explained:
        _print_explained(explained)


def _explain(loaded, image, cls: int, ig_steps: int) -> dict:
    """The pixels labelled ``cls``: their summed class score split exactly by stream, and layer IG's stream shares."""
    region = class_region(loaded, image, cls)
    split = region_split(loaded, image, region, cls)
    shares = region_stream_shares(loaded, image, region, cls, n_steps=ig_steps)
    return {"pixels": int(region.mask.sum()), "split": split.to_dict(), "ig": shares.to_dict()}


def _print_explained(explained: dict) -> None:
    split, ig = explained["split"], explained["ig"]
    print(f"\n{split['region']} ({explained['pixels']} px of the model's input): score {split['score']:.4g}")
    print(f"  {'stream':<8}{'exact part':>12}{'share':>9}{'layer IG':>12}{'share':>9}")
    for k, (part, frac, share, ig_frac) in enumerate(
        zip(split["parts"][:-1], split["stream_fractions"], ig["shares"], ig["fractions"], strict=True)
    ):
        print(f"  {k:<8}{part:12.4g}{frac:9.1%}{share:12.4g}{ig_frac:9.1%}")
    print(f"  {'bias':<8}{split['parts'][-1]:12.4g}")
    print(
        f"  exact split: error {split['error']:.1e}; IG ({ig['n_steps']} steps, zero baseline): completeness "
        f"error {ig['relative_delta']:.1e}, baseline score {ig['baseline_score']:.4g}"
    )


def add_command(sub) -> None:
    """Register ``segment``."""
    p = sub.add_parser("segment", help="every pixel's class by a dense model (lab-seg, or a segmentation checkpoint)")
    p.add_argument("image", help="image file (JPEG, PNG, WebP, BMP, TIFF, GIF)")
    p.add_argument("--variant", "-v", default=LAB_SEG, help=f"{LAB_SEG} (the dense lab model), or a dense checkpoint's")
    p.add_argument("--weights", "-w", default="default", help="default | PATH (a checkpoint with a segmentation card)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--out", "-o", default=None, help="the mask: a palette PNG of class indices at the image's size")
    p.add_argument(
        "--explain",
        metavar="CLASS",
        default=None,
        help="explain the pixels labelled CLASS (a name or an index of the card): their score split by stream",
    )
    p.add_argument("--ig-steps", type=int, default=32, help="--explain: layer IG's steps over the streams")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)

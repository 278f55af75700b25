"""``hrnet-explorer segment IMAGE``: every pixel's class by a dense model, and the mask as a palette PNG."""

from __future__ import annotations

import argparse
import os

from ..dense.model import DenseHRNet
from ..dense.predict import segment
from ..errors import InputError
from ..images import read_image
from ..zoo import LAB_SEG, load_model
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
    result = segment(loaded, image)
    out = str(result.save(args.out)) if args.out else None
    if args.json:
        where = {"image": str(args.image), "model": loaded.name, "weights": loaded.weights.detail}
        print_json({**where, **result.to_dict(), "mask": out})
        return
    h, w = result.size
    print(f"{args.image} · {loaded.name} ({loaded.weights.describe()}) · {w}×{h} px, seen at {result.input_size[1]}×"
          f"{result.input_size[0]}")  # fmt: skip
    for name, fraction in result.fractions().items():
        print(f"  {name:<24}{fraction:8.2%}")
    if out:
        print(f"mask: {out} (palette PNG of class indices, {w}×{h})")


def add_command(sub) -> None:
    """Register ``segment``."""
    p = sub.add_parser("segment", help="every pixel's class by a dense model (lab-seg, or a segmentation checkpoint)")
    p.add_argument("image", help="image file (JPEG, PNG, WebP, BMP, TIFF, GIF)")
    p.add_argument("--variant", "-v", default=LAB_SEG, help=f"{LAB_SEG} (the dense lab model), or a dense checkpoint's")
    p.add_argument("--weights", "-w", default="default", help="default | PATH (a checkpoint with a segmentation card)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--out", "-o", default=None, help="the mask: a palette PNG of class indices at the image's size")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)

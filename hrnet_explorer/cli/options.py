"""What ``explain`` and its ``--score`` both read from the command line: which methods draw a map, and the
method's own options as the attribution functions take them."""

from __future__ import annotations

import argparse

# = attribution.PIXEL_METHODS (tests check it), spelled out so that building the parser imports no Captum
PIXEL_EXPLAINERS = ("ig", "saliency", "smoothgrad", "gradshap", "occlusion")
MAPLESS = ("stream-shares", "knockout")  # methods with no map to draw (or to delete pixels by)


def pixel_options(args: argparse.Namespace) -> dict:
    """The pixel method's own options from the command line: IG's steps."""
    return {"n_steps": args.steps} if args.steps and args.method == "ig" else {}

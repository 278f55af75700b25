"""``report``: one self-contained HTML file, of an ``analyze`` run or of one image."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..progress import progress_bar


def report(args: argparse.Namespace) -> None:
    from ..report import dataset_report, image_report  # plotly: only when a page is drawn

    target = Path(args.target)
    if target.is_dir():
        print(f"wrote {dataset_report(target, args.out)}")
        return
    with progress_bar("report", "step", quiet=args.quiet) as progress:
        paths = image_report(
            args.target,
            args.variant or "hrnet_w18_small",
            args.out or "report.html",
            weights=args.weights,
            device=args.device,
            input_size=args.input_size,
            keep=args.keep,
            progress=progress,
            trust=args.trust,
        )
    for path in paths.values():
        print(f"wrote {path}")


def add_command(sub) -> None:
    """Register ``report``."""
    p = sub.add_parser(
        "report",
        help="one self-contained HTML file: of an analyze run (DIR) or of one image (IMAGE --variant V)",
    )
    p.add_argument("target", help="an analyze output folder, or an image file")
    p.add_argument("--out", "-o", default=None, help="the HTML file (default: DIR/report.html or report.html)")
    p.add_argument("--variant", "-v", default=None, help="IMAGE: the model (default hrnet_w18_small)")
    p.add_argument("--weights", "-w", default="default", help="IMAGE: default | TAG | PATH | random")
    p.add_argument("--device", default="auto", help="IMAGE: auto | cpu | cuda[:N]")
    p.add_argument("--input-size", type=int, default=None, help="IMAGE: square crop size, a multiple of 32")
    p.add_argument("--keep", default="outputs", choices=("outputs", "all"), help="IMAGE: the maps saved beside")
    p.add_argument(
        "--trust",
        action="store_true",
        help="IMAGE: also the Trust view's figures (deletion/insertion curves of saliency, IG and a random map; "
        "saliency's randomisation test)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="IMAGE: no progress bar (none either off a terminal)")
    p.set_defaults(func=report)

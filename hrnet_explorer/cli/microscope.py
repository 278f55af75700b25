"""``microscope``: a map's units from an analyze run — the top-k images per channel cropped at the maximum, each
unit's feature visualisation and orientation tuning — as one self-contained HTML page (and an index)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from ..progress import progress_bar
from .common import QUIET_HELP


def parse_channels(text: str | None) -> list[int] | None:
    """ "0-7,12" → [0, …, 7, 12]; None: every channel."""
    if text is None:
        return None
    out: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            raise InputError(f"--channels takes numbers and ranges like 0-7,12; got {text!r}.")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def microscope(args: argparse.Namespace) -> None:
    from ..microscope import FVSettings, dataset_examples, read_channel_stats, run_images, unit_tuning, visualise
    from ..microscope.examples import run_model
    from ..microscope.html import export_html

    channels = parse_channels(args.channels)
    fields = {"steps": args.steps, "size": args.size, "compiled": args.compile}
    FVSettings(**fields)  # checked before any model is loaded
    stats = read_channel_stats(args.dir, args.map, args.variant)
    loaded = run_model(args.dir, args.variant, args.device)
    examples = dataset_examples(loaded, stats, run_images(args.dir, loaded, stats), channels, k=args.k, crop=args.crop)
    units = sorted(examples)
    for c in units:
        tops = ", ".join(f"{e.image_id} ({e.value:.3g})" for e in examples[c])
        print(f"{args.map} c{c}: {tops}")
    with progress_bar("feature visualisation", "step", quiet=args.quiet) as progress:
        settings = FVSettings.for_device(loaded.device, **fields)
        vis = visualise(loaded, args.map, units, settings, cache=args.cache, progress=progress)
    tuning = unit_tuning(loaded, args.map, size=args.size)
    out = Path(args.out) if args.out else Path(args.dir) / "microscope"
    page = export_html(out, vis, examples=examples, tuning=tuning, class_names=loaded.class_names, model=loaded.name)
    print(f"wrote {page}")


def add_command(sub) -> None:
    """Register ``microscope``."""
    p = sub.add_parser(
        "microscope",
        help="a map's units from an analyze run (--unit-map): top-k images, feature visualisation, tuning → HTML",
        description="Rank the top-k images per channel of MAP from an analyze run written with --unit-map MAP, crop "
        "each around the channel's maximum, visualise each unit and its orientation tuning, and write one "
        "self-contained HTML page per map (a link per unit: MAP.html#c7).",
    )
    p.add_argument("dir", help="an analyze output folder (analyze … --unit-map MAP)")
    p.add_argument("--map", "-m", required=True, help="a trace name, e.g. stage4.module2.fused0")
    p.add_argument("--channels", "-c", default=None, help="e.g. 0-7,12 (default: every channel)")
    p.add_argument("--variant", "-v", default=None, help="the run's variant (needed when it holds several)")
    p.add_argument("--k", "-k", type=int, default=9, help="top images per unit")
    p.add_argument("--crop", type=int, default=64, help="crop side in pixels, around the maximum")
    p.add_argument("--steps", type=int, default=256, help="feature visualisation: optimisation steps")
    p.add_argument("--size", type=int, default=224, help="feature visualisation and gratings: px (multiple of 32)")
    p.add_argument(
        "--compile",
        action="store_true",
        help="feature visualisation through torch.compile: a one-off compile per map (tens of seconds), then 2-5x "
        "faster steps on a GPU",
    )
    p.add_argument("--cache", default=None, help="feature visualisation cache folder (default: the user cache)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--out", "-o", default=None, help="the HTML folder (default: DIR/microscope)")
    p.add_argument("--quiet", "-q", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=microscope)

"""``analyze``: a whole dataset, one row per image and variant, on one process or many (torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analyze import DEFAULT_SHARD_SIZE, RunSettings, run
from ..analyze.settings import DECODES


def settings(args: argparse.Namespace) -> RunSettings:
    """The command line as the run's settings (checked as they are made)."""
    return RunSettings(
        args.source,
        tuple(args.variant or ()),
        args.out,
        weights=args.weights,
        reliance=args.reliance,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        limit=args.limit,
        input_size=args.input_size,
        precision=args.precision,
        shard_size=args.shard_size,
        progress=not args.quiet,
        unit_maps=tuple(args.unit_map or ()),
        decode=args.decode,
    )


def analyze(args: argparse.Namespace) -> None:
    manifest = run(settings(args))
    if "variants" not in manifest:
        return  # not rank 0
    for key, info in manifest["variants"].items():
        this_run = info["this_run"]
        speed = f", {this_run['images_per_s']:,.0f} images/s" if this_run["images_per_s"] else " (all shards were done)"
        print(f"{key}: {info['rows']:,} rows, {info['errors']:,} errors; this run {this_run['images']:,} images{speed}")
    print(f"wrote {Path(args.out) / 'manifest.json'}")


def add_command(sub) -> None:
    """Register ``analyze``."""
    p = sub.add_parser(
        "analyze",
        help="a whole dataset → one row per image and variant, in Parquet shards (torchrun for many GPUs)",
        description="Analyze a dataset. Under `torchrun --nproc-per-node N -m hrnet_explorer analyze …` the "
        "shards are spread over the ranks (NCCL on GPUs, gloo on the CPU).",
    )
    p.add_argument("source", help="a folder (ImageFolder layout or flat), lab:N, or hf:NAME[:SPLIT]")
    p.add_argument(
        "--variant",
        "-v",
        action="append",
        default=None,
        help="repeat for several (default: lab for lab:N, else w18_small)",
    )
    p.add_argument("--out", "-o", required=True, help="output folder (rerun to resume)")
    p.add_argument("--weights", "-w", default="default", help="default | TAG | PATH | random (every variant)")
    p.add_argument("--reliance", action="store_true", help="also knock out each final stream (5 forwards)")
    p.add_argument("--batch-size", "-b", type=int, default=None, help="default 256 on CUDA, 16 on the CPU")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers per rank (default: CPUs − 1)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--input-size", type=int, default=None, help="square crop size, a multiple of 32")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="auto: bf16 on CUDA")
    p.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="images per Parquet shard")
    p.add_argument(
        "--decode",
        default="pil",
        choices=DECODES,
        help="who decodes JPEGs: pil (the workers), gpu (the run's device: nvJPEG on CUDA; PIL for other files), "
        "auto (gpu on CUDA when torchvision can)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    p.add_argument(
        "--unit-map",
        action="append",
        default=None,
        help="also each channel's mean, max and argmax of this map (repeat; for `hrnet-explorer microscope`)",
    )
    p.set_defaults(func=analyze)

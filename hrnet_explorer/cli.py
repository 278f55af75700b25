"""The ``hrnet-explorer`` command: a thin caller of the core API.

User mistakes (unknown variant, bad image, missing checkpoint) print one line to stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence

from .costs import CARD_FLOPS_EXPLANATION, variant_costs
from .images import ImageError
from .zoo import VARIANTS, RandomWeightsWarning, WeightsError, load_model

USER_ERRORS = (ImageError, WeightsError, ValueError, KeyError, FileNotFoundError)


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def _cmd_variants(args: argparse.Namespace) -> None:
    reports = [variant_costs(name) for name in VARIANTS]
    if args.json:
        _print_json({"variants": [r.to_dict() for r in reports], "note": CARD_FLOPS_EXPLANATION})
        return
    print(
        f"{'variant':<20}{'params':>13}{'card params':>12}{'GMACs':>8}{'card FLOPs':>17}{'ratio':>7}"
        f"{'top-1':>7}{'top-5':>7}  default tag"
    )
    for r in reports:
        print(
            f"{r.variant:<20}{r.params:>13,}{r.card_params_m:>11.2f}M{r.macs / 1e9:>8.3f}{r.card_flops:>17,}"
            f"{r.card_flops_over_macs:>7.3f}{r.card_top1:>7.2f}{r.card_top5:>7.2f}  {r.default_tag}"
        )
    print("\n" + CARD_FLOPS_EXPLANATION)


def _load(args: argparse.Namespace):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # reported once, below and in the output
        loaded = load_model(args.variant, args.weights, args.device, args.precision)
    if loaded.weights.is_random:
        print(f"WARNING: {loaded.weights.describe()}", file=sys.stderr)
    return loaded


def _cmd_predict(args: argparse.Namespace) -> None:
    from .predict import predict

    loaded = _load(args)
    pred = predict(loaded, args.image, topk=args.topk, input_size=args.input_size)
    if args.json:
        _print_json(pred.to_dict())
        return
    print(
        f"{pred.variant} · weights {loaded.weights.describe()} · {pred.device} {pred.precision} · "
        f"{pred.input_size[0]}×{pred.input_size[1]}"
    )
    for s in pred.top:
        print(f"{s.probability:8.2%}  {s.index:>4}  {s.label}")


def _cmd_trace(args: argparse.Namespace) -> None:
    from .report import trace_summary

    loaded = _load(args)
    from .trace import trace

    result = trace(loaded, args.image, keep="all", input_size=args.input_size)
    summary = trace_summary(result)
    if args.json:
        _print_json(summary)
        return
    print(f"{summary['variant']} · weights {loaded.weights.describe()} · input {summary['input_shape']}")
    for name in ("stem", "layer1"):
        print(f"{name:<22}{summary['maps'][name]}")
    for mod in summary["modules"]:
        print(
            f"\n{mod['name']}  streams {mod['stream_shapes']}  max |ReLU(Σ edges) − fused| = "
            f"{mod['max_reconstruction_error']:.2e}"
        )
        print("  energy share [target ← source]:")
        for i, row in enumerate(mod["energy_share"]):
            print(f"    stream {i} ← " + "  ".join(f"{v:6.3f}" for v in row))


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="image file (JPEG, PNG, WebP, BMP, TIFF, GIF)")
    p.add_argument("--variant", "-v", default="hrnet_w18_small", help=f"one of {', '.join(VARIANTS)}")
    p.add_argument("--weights", "-w", default="default", help="default | TAG (e.g. ms_in1k) | PATH | random")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--input-size", type=int, default=None, help="square crop size, a multiple of 32")
    p.add_argument("--json", action="store_true", help="machine-readable output")


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hrnet-explorer", description="See how an HRNet thinks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("variants", help="the nine variants: card vs measured params and MACs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_variants)
    p = sub.add_parser("predict", help="top-k ImageNet classes for an image")
    _add_model_args(p)
    p.add_argument("--topk", "-k", type=int, default=5)
    p.set_defaults(func=_cmd_predict)
    p = sub.add_parser("trace", help="stream shapes, share matrices and reconstruction errors")
    _add_model_args(p)
    p.set_defaults(func=_cmd_trace)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except USER_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"hrnet-explorer: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

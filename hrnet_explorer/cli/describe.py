"""``variants``, ``predict`` and ``trace``: what the models are, and what one of them makes of an image."""

from __future__ import annotations

import argparse

from ..costs import CARD_FLOPS_EXPLANATION, variant_costs
from ..progress import progress_bar
from ..zoo import VARIANTS
from .common import QUIET_HELP, add_model_args, header, load, print_json


def variants(args: argparse.Namespace) -> None:
    with progress_bar("counting params and MACs", "variant", quiet=args.quiet or not args.measure) as progress:
        reports = []
        for name in VARIANTS:
            reports.append(variant_costs(name, measure=args.measure))
            if progress is not None:
                progress(len(reports), len(VARIANTS))
    if args.json:
        print_json({"variants": [r.to_dict() for r in reports], "note": CARD_FLOPS_EXPLANATION})
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


def predict(args: argparse.Namespace) -> None:
    from ..predict import predict

    loaded = load(args)
    pred = predict(loaded, args.image, topk=args.topk, input_size=args.input_size)
    if args.json:
        print_json(pred.to_dict())
        return
    print(header(loaded, f"{pred.device} {pred.precision} · {pred.input_size[0]}×{pred.input_size[1]}"))
    for s in pred.top:
        print(f"{s.probability:8.2%}  {s.index:>4}  {s.label}")


def trace(args: argparse.Namespace) -> None:
    from ..report import trace_summary
    from ..trace import trace

    loaded = load(args)
    result = trace(loaded, args.image, keep="all", input_size=args.input_size)
    summary = trace_summary(result, model=loaded)
    if args.json:
        print_json(summary)
        return
    print(header(loaded, f"input {summary['input_shape']}"))
    top = summary["top"][0]
    print(f"top-1: {top['index']} {top['label']} ({top['probability']:.2%})")
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


def add_commands(sub) -> None:
    """Register ``variants``, ``predict`` and ``trace``."""
    p = sub.add_parser("variants", help="the nine variants: card vs measured params and MACs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--measure", action="store_true", help="recount params and MACs now (fvcore)")
    p.add_argument("--quiet", "-q", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=variants)
    p = sub.add_parser("predict", help="top-k classes for an image")
    add_model_args(p)
    p.add_argument("--topk", "-k", type=int, default=5, help="how many classes to list")
    p.set_defaults(func=predict)
    p = sub.add_parser("trace", help="stream shapes, share matrices and reconstruction errors")
    add_model_args(p)
    p.set_defaults(func=trace)

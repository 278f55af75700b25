"""The ``hrnet-explorer`` command: a thin caller of the core API.

User mistakes (unknown variant, bad image, missing checkpoint) print one line to stderr and exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import warnings
from collections.abc import Sequence

from .analyze import add_analyze_command
from .app import add_app_command
from .costs import CARD_FLOPS_EXPLANATION, variant_costs
from .images import ImageError, check_input_size, read_image
from .lab.cli import add_lab_commands
from .report_html import add_report_command
from .zoo import LAB, VARIANTS, LoadedModel, RandomWeightsWarning, WeightsError, load_model

USER_ERRORS = (ImageError, WeightsError, ValueError, KeyError, FileNotFoundError)
QUIET_HELP = "no progress bar on stderr (there is none either when stderr is not a terminal)"


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


@contextlib.contextmanager
def progress_bar(desc: str, unit: str = "batch", *, quiet: bool = False):
    """A tqdm bar on stderr for long work, as a ``progress(done, total)`` callback (what the attribution
    functions take). None — no bar, and the work runs exactly as without one — when ``quiet`` (``--quiet``) or
    when stderr is not a terminal (JSON consumers, logs, pipes)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total  # may grow as the work learns its size (``report``)
            bar.update(done - bar.n)

        yield progress


def _cmd_variants(args: argparse.Namespace) -> None:
    with progress_bar("counting params and MACs", "variant", quiet=args.quiet or not args.measure) as progress:
        reports = []
        for name in VARIANTS:
            reports.append(variant_costs(name, measure=args.measure))
            if progress is not None:
                progress(len(reports), len(VARIANTS))
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


def _load(args: argparse.Namespace) -> LoadedModel:
    """The model of ``args``, after checking what needs no model: a bad image or size must not wait for w64.

    ``args.image`` is replaced by the decoded image, so it is read once.
    """
    args.image = read_image(args.image)
    check_input_size(args.input_size)
    if getattr(args, "topk", 1) < 1:
        raise ValueError(f"--topk must be ≥ 1, got {args.topk}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # reported once, below and in the output
        loaded = load_model(args.variant, args.weights, args.device, args.precision, labels=args.labels)
    if loaded.weights.is_random:
        print(f"WARNING: {loaded.weights.describe()}", file=sys.stderr)
    return loaded


def _model_text(loaded: LoadedModel) -> str:
    """The header line's model: "hrnet_w18", or "lab (hrnet_w18_small, 10 classes)"."""
    if loaded.name == loaded.variant.name:
        return loaded.name
    return f"{loaded.name} ({loaded.architecture}, {loaded.num_classes} classes)"


def _cmd_predict(args: argparse.Namespace) -> None:
    from .predict import predict

    loaded = _load(args)
    pred = predict(loaded, args.image, topk=args.topk, input_size=args.input_size)
    if args.json:
        _print_json(pred.to_dict())
        return
    print(
        f"{_model_text(loaded)} · weights {loaded.weights.describe()} · {pred.device} {pred.precision} · "
        f"{pred.input_size[0]}×{pred.input_size[1]}"
    )
    for s in pred.top:
        print(f"{s.probability:8.2%}  {s.index:>4}  {s.label}")


def _cmd_trace(args: argparse.Namespace) -> None:
    from .report import trace_summary

    loaded = _load(args)
    from .trace import trace

    result = trace(loaded, args.image, keep="all", input_size=args.input_size)
    summary = trace_summary(result, model=loaded)
    if args.json:
        _print_json(summary)
        return
    print(f"{_model_text(loaded)} · weights {loaded.weights.describe()} · input {summary['input_shape']}")
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


PIXEL_EXPLAINERS = ("ig", "saliency", "smoothgrad", "gradshap", "occlusion")  # = attribution.PIXEL_METHODS
EXPLAIN_METHODS = PIXEL_EXPLAINERS + ("gradcam-streams", "stream-shares", "knockout")


def _class_index(text: str, class_names: Sequence[str]) -> int:
    """A class index, or one of the model's class names (any of its comma-separated synonyms, any case)."""
    if text.strip().lstrip("-").isdigit():
        return int(text)
    query = text.strip().lower()
    names = dict(enumerate(class_names))
    hits = [i for i, name in names.items() if query in (s.strip().lower() for s in name.split(","))]
    if not hits:
        hits = [i for i, name in names.items() if query in name.lower()]
    if len(hits) != 1:
        some = "; ".join(f"{i}: {names[i]}" for i in hits[:8])
        raise ValueError(f"--target {text!r} matches {len(hits)} classes{': ' + some if hits else ''}. Use an index.")
    return hits[0]


def _edge_arg(text: str) -> tuple[int, int]:
    parts = text.replace("→", ",").replace("to", ",").replace("->", ",").split(",")
    try:
        source, target = (int(p) for p in parts if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--edge takes SOURCE,TARGET (e.g. 3,0), not {text!r}") from None
    return source, target


def _grid(heatmap, cells: int = 7) -> list[list[float]]:
    """The heatmap averaged over a cells×cells grid (for text and JSON)."""
    import torch.nn.functional as F

    return F.adaptive_avg_pool2d(heatmap[None, None], cells)[0, 0].tolist()


def _colorize(heat, signed: bool, scale: float | None = None):
    """[H, W] map → HxWx3 uint8: blue-white-red around 0 when signed, black-red-yellow otherwise. ``scale``
    (default: the 98th percentile of |map|, Captum's ``outlier_perc`` = 2) maps to full colour; beyond it saturates.
    """
    import numpy as np

    from .images import display_scale

    h = heat.numpy().astype(np.float64) if hasattr(heat, "numpy") else np.asarray(heat, np.float64)
    scale = scale or display_scale(h)
    if signed:
        v = np.clip(h / scale, -1, 1)[..., None]
        pos, neg = np.array([215, 48, 39]), np.array([49, 54, 149])
        rgb = np.where(v >= 0, 255 + v * (pos - 255), 255 - v * (neg - 255))
    else:
        v = np.clip(h / scale, 0, 1)
        rgb = np.stack([np.clip(3 * v, 0, 1), np.clip(3 * v - 1, 0, 1), np.clip(3 * v - 2, 0, 1)], -1) * 255
    return rgb.clip(0, 255).astype(np.uint8)


LABEL_PX = 16  # the text strip above each PNG panel
BAR_PX = 36  # the colour bar strip below the sheet (one line of notes; 12 px more for each further line)


def _overlay(crop, heat, signed: bool, label: str = "", scale: float | None = None):
    """The map over the crop (60 %), under a strip that names the panel."""
    from PIL import Image, ImageDraw

    colored = Image.fromarray(_colorize(heat, signed, scale)).resize(crop.size, Image.BILINEAR)
    blended = Image.blend(crop.convert("RGB"), colored, 0.6)
    panel = Image.new("RGB", (crop.width, crop.height + LABEL_PX), "white")
    panel.paste(blended, (0, LABEL_PX))
    ImageDraw.Draw(panel).text((3, 2), label, fill="black")
    return panel


def _colorbar(width: int, signed: bool, scale: float | None, what: str):
    """A horizontal colour bar with its end values (``scale`` None: each panel on its own scale, its end in the
    panel's label), and what they mean, the clipping included, wrapped below it."""
    import textwrap

    import numpy as np
    from PIL import Image, ImageDraw

    from .images import OUTLIER_PERC

    end = 1.0 if scale is None else scale
    note = textwrap.wrap(f"{what}; top {OUTLIER_PERC:g} % of |map| saturate", max(20, (width - 20) // 6))
    ramp = np.linspace(-end if signed else 0.0, end, max(width - 20, 2))[None].repeat(8, 0)
    bar = Image.new("RGB", (width, BAR_PX + 12 * (len(note) - 1)), "white")
    bar.paste(Image.fromarray(_colorize(ramp, signed, end)), (10, 2))
    draw = ImageDraw.Draw(bar)
    draw.text((10, 11), "0" if not signed else f"{-end:.3g}", fill="black")
    right = "its end" if scale is None else f"{end:.3g}"
    draw.text((width - 10 - 6 * len(right), 11), right, fill="black")
    for k, line in enumerate(note):
        draw.text((10, 22 + 12 * k), line, fill="black")
    return bar


OUT_SUFFIXES = (".json", ".npz", ".png")


def _check_explain_args(args: argparse.Namespace) -> None:
    """Reject option mixes that would be ignored, and --out files we cannot write, before any work."""
    from pathlib import Path

    if args.method != "knockout" and (args.stream is not None or args.edge is not None):
        raise ValueError("--stream and --edge belong to --method knockout.")
    if args.method not in ("knockout", "gradcam-streams") and (args.stage is not None or args.module is not None):
        raise ValueError("--stage and --module belong to --method gradcam-streams or knockout.")
    if args.steps is not None and args.method not in ("ig", "stream-shares"):
        raise ValueError("--steps belongs to --method ig or stream-shares.")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be ≥ 1, got {args.steps}.")
    if not args.score and (args.score_steps is not None or args.score_baseline is not None):
        raise ValueError("--score-steps and --score-baseline belong to --score.")
    if args.out:
        suffix = Path(args.out).suffix.lower()
        if suffix not in OUT_SUFFIXES:
            raise ValueError(f"--out must end in {', '.join(OUT_SUFFIXES)}; got {args.out!r}.")
        if suffix == ".png" and args.method in ("stream-shares", "knockout"):
            raise ValueError(f"--method {args.method} has no map to draw: use --out FILE.json or FILE.npz.")
        out = Path(args.out)
        if out.is_dir():
            raise ValueError(f"--out {args.out!r} is a folder: name a file in it, e.g. {out / ('explain' + suffix)}.")
        if not out.parent.is_dir():
            raise ValueError(f"--out {args.out!r}: the folder {str(out.parent)!r} does not exist.")


def _save(path: str, summary: dict, arrays: dict, panels: list) -> None:
    """.json: the summary; .npz: the arrays; .png: the map(s) over the input crop, side by side."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        Path(path).write_text(json.dumps(summary, indent=2))
    elif suffix == ".npz":
        np.savez_compressed(path, **{k: v.numpy() for k, v in arrays.items()})
    else:
        panels, bar = panels[:-1], panels[-1]  # the last entry is the colour bar (see _cmd_explain)
        w, h = panels[0].size
        strip = bar(w * len(panels))
        sheet = Image.new("RGB", (w * len(panels), h + strip.height), "white")
        for k, panel in enumerate(panels):
            sheet.paste(panel, (k * w, 0))
        sheet.paste(strip, (0, h))
        sheet.save(path)


def _cmd_explain(args: argparse.Namespace) -> None:
    import torch

    from . import attribution as attr
    from .images import display_crop, display_scale, preprocess

    _check_explain_args(args)
    loaded = _load(args)
    target = _class_index(args.target, loaded.class_names) if args.target is not None else None
    x = preprocess(args.image, loaded.data_config, args.input_size)
    arrays, panels, lines = {}, [], []
    crop = display_crop(args.image, loaded.data_config, args.input_size) if args.out else None
    if args.method in attr.PIXEL_METHODS:
        options = {"n_steps": args.steps} if args.steps and args.method == "ig" else {}
        with progress_bar(args.method, quiet=args.quiet) as progress:
            result = attr.attribute_pixels(loaded, x, args.method, target, progress=progress, **options)
        body = result.to_dict() | {"heatmap_7x7": _grid(result.heatmap)}
        arrays = {"attributions": result.attributions, "heatmap": result.heatmap}
        if crop is not None:
            signed = result.settings["reduction"] in ("sum", "mean")
            scale = display_scale(result.heatmap)
            label = f"{result.method} · class {result.target} {result.label}"[:40]
            panels = [
                _overlay(crop, result.heatmap, signed, label, scale),
                lambda width: _colorbar(width, signed, scale, "attribution" + (" (red > 0 > blue)" if signed else "")),
            ]
        lines.append(f"{result.method} · target {result.target} {result.label!r} · {result.seconds:.2f} s")
        if result.delta is not None:
            lines.append(
                f"convergence delta {result.delta:+.3e}"
                + (
                    f" (f(x) − f(baseline) = {result.logit - result.baseline_logit:+.4f})"
                    if result.baseline_logit is not None
                    else ""
                )
            )
        lines.append(f"heatmap ({result.settings['reduction']} over channels), mean over a 7×7 grid:")
        lines += ["  " + " ".join(f"{v:+9.2e}" for v in row) for row in body["heatmap_7x7"]]
    elif args.method == "gradcam-streams":
        result = attr.gradcam_streams(
            loaded, x, target, stage=args.stage or 4, module=-1 if args.module is None else args.module
        )
        body = result.to_dict()
        arrays = {f"map{k}": m for k, m in enumerate(result.maps)} | {f"raw{k}": r for k, r in enumerate(result.raw)}
        if crop is not None:
            # each stream on its own scale (the fine streams' maps are far smaller), its end in the label
            panels = [
                _overlay(crop, m, False, f"Grad-CAM stream {k} (1/{4 * 2**k}): 0 - {display_scale(m):.2g}")
                for k, m in enumerate(result.maps)
            ]
            panels.append(lambda width: _colorbar(width, False, None, "Grad-CAM, each stream on its own scale"))
        lines.append(f"Grad-CAM per stream of {result.name} · target {result.target} {body['label']!r}")
        for s in body["streams"]:
            lines.append(
                f"  stream {s['stream']} {s['resolution'][0]}×{s['resolution'][1]}: max {s['max']:.3e} "
                f"mean {s['mean']:.3e} peak at input {s['peak_at_input']}"
            )
    elif args.method == "stream-shares":
        with progress_bar("stream shares", quiet=args.quiet) as progress:
            result = attr.stream_shares(loaded, x, target, n_steps=args.steps or 32, progress=progress)
        body = result.to_dict()
        arrays = {"shares": result.shares} | {f"attributions{k}": a for k, a in enumerate(result.attributions)}
        lines.append(
            f"share of logit {result.logit:.4f} − baseline {result.baseline_logit:.4f} · target "
            f"{result.target} {body['label']!r} (Layer IG, {result.n_steps} steps)"
        )
        for k, (v, f) in enumerate(zip(body["shares"], body["fractions"], strict=True)):
            lines.append(f"  stream {k}: {v:+.4f} ({f:+.1%})")
        lines.append(f"completeness delta {result.delta:+.3e} ({result.relative_delta:.2e} relative)")
    else:
        if args.stream is not None or args.edge is not None:
            results = [
                attr.knockout(
                    loaded,
                    x,
                    stream=args.stream,
                    edge=args.edge,
                    stage=args.stage,
                    module=args.module,
                    target=target,
                    topk=args.topk,
                )
            ]
        else:
            results = attr.resolution_reliance(loaded, x, target, topk=args.topk)
        body = {"results": [r.to_dict() for r in results]}
        arrays = {
            "logit_delta": torch.tensor([r.logit_delta for r in results]),
            "prob_delta": torch.tensor([r.prob_delta for r in results]),
        }
        first = results[0]
        lines.append(
            f"target {first.target} {first.label!r}: logit {first.logit_before:.4f}, p {first.prob_before:.2%}"
        )
        for r in results:
            lines.append(
                f"  {r.description:<40} Δlogit {r.logit_delta:+.4f}  Δp {r.prob_delta:+.2%}  "
                f"top-1 after: {r.top_after[0].label}"
            )
    if args.score:  # the knockout branch made a list of results: they share the target
        faithfulness = _faithfulness(args, attr, loaded, x, results[0] if args.method == "knockout" else result, lines)
    else:
        faithfulness = None
    summary = {
        "model": loaded.name,
        "variant": loaded.variant.name,
        "num_classes": loaded.num_classes,
        "weights": {"kind": loaded.weights.kind, "detail": loaded.weights.detail, "tag": loaded.weights.tag},
        "random_weights": loaded.weights.is_random,
        "device": str(loaded.device),
        "input_size": list(x.shape[-2:]),
        "method": args.method,
        "result": body,
    }
    if faithfulness is not None:
        summary["faithfulness"] = faithfulness
    if args.out:
        _save(args.out, summary, arrays, panels)
    if args.json:
        _print_json(summary)
        return
    print(f"{_model_text(loaded)} · weights {loaded.weights.describe()} · input {x.shape[-2]}×{x.shape[-1]}")
    print("\n".join(lines))
    if args.out:
        print(f"wrote {args.out}")


def _faithfulness(args: argparse.Namespace, attr, loaded, x, result, lines: list[str]) -> dict:
    """``explain --score``: how far to trust the result (deletion/insertion and the randomisation test for pixel
    maps; deletion/insertion per stream for Grad-CAM; shares vs knockouts for the per-stream methods)."""
    steps, baseline = args.score_steps or 20, args.score_baseline or "blur"

    def curves(heat, method: str) -> dict:
        f = attr.deletion_insertion(loaded, x, heat, result.target, steps=steps, baseline=baseline, method=method)
        return f.to_dict()

    def num(value) -> str:
        return "undefined" if value is None else f"{value:.3f}"

    if args.method in ("stream-shares", "knockout"):
        agreement = attr.stream_agreement(loaded, x, result.target)
        lines.append(
            f"faithfulness: stream shares vs knockouts, Spearman {num(agreement.spearman)}, "
            f"same top stream: {'yes' if agreement.same_top else 'no'}"
        )
        return {"stream_agreement": agreement.to_dict(), "spearman": agreement.spearman}
    reference = curves(attr.random_map(tuple(x.shape[-2:])), "random")
    out: dict = {"baseline": baseline, "steps": steps}
    if args.method == "gradcam-streams":
        out["streams"] = [{"stream": k} | curves(m, f"gradcam stream {k}") for k, m in enumerate(result.maps)]
        for s in out["streams"]:
            lines.append(
                f"faithfulness of stream {s['stream']}'s map: deletion AUC {num(s['deletion_auc'])}, "
                f"insertion AUC {num(s['insertion_auc'])}"
            )
    else:
        options = {"n_steps": args.steps} if args.steps and args.method == "ig" else {}
        out |= curves(result, args.method)
        with progress_bar(f"randomisation test ({args.method})", "map", quiet=args.quiet) as progress:
            test = attr.randomisation_test(
                loaded, x, args.method, result.target, original=result.heatmap, progress=progress, **options
            )
        out["randomisation_similarity"] = test.final_similarity
        out["randomisation"] = test.to_dict()
        lines.append(
            f"faithfulness ({baseline} baseline, {steps} steps; p / p(input)): deletion AUC {num(out['deletion_auc'])} "
            f"(lower is better), insertion AUC {num(out['insertion_auc'])} (higher is better)"
        )
        lines.append(
            "randomisation test: Spearman similarity to the original map as layers are randomised "
            + ", ".join(f"{layer} {num(v)}" for layer, v in zip(test.layers, test.similarity, strict=True))
        )
    out["random_map"] = {
        k: reference[k] for k in ("deletion_auc", "insertion_auc", "deletion_auc_raw", "insertion_auc_raw")
    }
    lines.append(
        f"random map for reference: deletion AUC {num(reference['deletion_auc'])}, "
        f"insertion AUC {num(reference['insertion_auc'])}"
    )
    return out


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="image file (JPEG, PNG, WebP, BMP, TIFF, GIF)")
    p.add_argument(
        "--variant", "-v", default="hrnet_w18_small", help=f"one of {', '.join(VARIANTS)}, or {LAB} (the lab model)"
    )
    p.add_argument(
        "--weights",
        "-w",
        default="default",
        help="default | TAG (e.g. ms_in1k) | PATH (a checkpoint of any number of classes; its card NAME.json "
        "beside it is read) | random",
    )
    p.add_argument(
        "--labels", default=None, help="class names for a checkpoint without a card: a text file, one name per line"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="bf16: autocast (CUDA or CPU)")
    p.add_argument("--input-size", type=int, default=None, help="square crop size, a multiple of 32")
    p.add_argument("--json", action="store_true", help="machine-readable output")


class Parser(argparse.ArgumentParser):
    """A user mistake on the command line is one line, like every other user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, where it has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, argparse.SUPPRESS) or not action.help:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(prog="hrnet-explorer", description="See how an HRNet thinks.")
    parser.add_argument("--version", action="version", version=f"hrnet-explorer {__version__}")
    with_defaults = functools.partial(Parser, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=with_defaults)
    p = sub.add_parser("variants", help="the nine variants: card vs measured params and MACs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--measure", action="store_true", help="recount params and MACs now (fvcore; ~20 s)")
    p.add_argument("--quiet", "-q", action="store_true", help=QUIET_HELP)
    p.set_defaults(func=_cmd_variants)
    p = sub.add_parser("predict", help="top-k classes for an image")
    _add_model_args(p)
    p.add_argument("--topk", "-k", type=int, default=5, help="how many classes to list")
    p.set_defaults(func=_cmd_predict)
    p = sub.add_parser("trace", help="stream shapes, share matrices and reconstruction errors")
    _add_model_args(p)
    p.set_defaults(func=_cmd_trace)
    p = sub.add_parser("explain", help="attribution: pixel maps, per-stream Grad-CAM and shares, knockouts")
    _add_model_args(p)
    p.add_argument("--method", "-m", default="ig", choices=EXPLAIN_METHODS, help="what to compute")
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
    p.set_defaults(func=_cmd_explain)
    add_analyze_command(sub)
    add_report_command(sub)
    add_lab_commands(sub)
    add_app_command(sub)
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

"""``hrnet-explorer lab train``, ``lab eval`` and ``lab benchmark``: the lab from the command line."""

from __future__ import annotations

import argparse
import json

from ..errors import InputError
from ..lab.evaluate import CONDITIONS
from ..lab.task import CLASSES
from ..lab.train import TrainConfig
from ..progress import progress_bar

__all__ = ["add_commands"]

_DEFAULTS = TrainConfig()


def _family(accuracy: dict[str, float], family: str) -> str:
    return f"{accuracy[family]:.2%}" if family in accuracy else "–"


def _cmd_train(args: argparse.Namespace) -> None:
    from ..lab.train import train

    config = TrainConfig(
        variant=args.variant,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        size=args.size,
        seed=args.seed,
        eval_n=args.eval_n,
        save_every=args.save_every,
        warmup_steps=min(_DEFAULTS.warmup_steps, args.steps // 10),
    )
    if args.task == "segment":
        from ..lab.segment_train import LAB_SEG as name
        from ..lab.segment_train import train_segment as run
    else:
        name, run = "lab", train
    with progress_bar(f"{name} train", "step", quiet=args.quiet) as progress:
        card = run(args.out, config, device=args.device, progress=progress)
    record = card["training"]
    held = record["held_out"]
    if args.task == "segment":
        scores = f"held-out mIoU {held['miou']:.3f}, boundary F {held['boundary_f']:.3f}"
    else:
        fine, coarse = _family(held["family"], "fine"), _family(held["family"], "coarse")
        scores = f"held-out accuracy {held['overall']:.2%} (fine {fine}, coarse {coarse})"
    print(
        f"wrote {args.out}/{name}.safetensors and {name}.json · {record['steps']} steps, "
        f"{record['images_seen']:,} images, {record['wall_time_s']:.0f} s on {record['device']} · {scores}"
    )


def _cmd_eval(args: argparse.Namespace) -> None:
    from ..lab.evaluate import evaluate

    loaded = _load_lab(args.weights, args.device)
    if list(loaded.class_names) != CLASSES:
        raise InputError(f"{args.weights} is not a lab model: its classes are not {', '.join(CLASSES)}.")
    config = loaded.data_config
    with progress_bar("lab eval", "batch", quiet=args.quiet or args.json) as progress:
        result = evaluate(
            loaded.model,
            config["mean"],
            config["std"],
            args.n,
            size=config["input_size"][-1],
            conditions=args.conditions,
            batch_size=args.batch_size,
            progress=progress,
        )
    if args.json:
        print(json.dumps({"weights": loaded.weights.detail, **result.to_dict()}, indent=2))
        return
    print(f"lab model ({loaded.weights.describe()}) · {args.n} test images · chance 10.00%")
    print(f"{'condition':<22}{'overall':>9}{'fine':>9}{'coarse':>9}")
    for name, acc in result.conditions.items():
        fam = acc.family
        print(
            f"{name:<22}{acc.overall:>9.2%}{fam.get('fine', float('nan')):>9.2%}{fam.get('coarse', float('nan')):>9.2%}"
        )


def _load_lab(weights: str, device: str):
    from pathlib import Path

    from ..zoo import LAB, load_model, read_card

    if weights == "default":
        return load_model(LAB, device=device)
    card = read_card(Path(weights).with_suffix(".json"))  # a checkpoint from `lab train`: its card says which
    return load_model(card["architecture"], weights, device)


def _cmd_benchmark(args: argparse.Namespace) -> None:
    from ..lab.benchmark import SHIFT, benchmark

    loaded = _load_lab(args.weights, args.device)
    with progress_bar("lab benchmark", "image", quiet=args.quiet or args.json) as progress:
        result = benchmark(
            loaded,
            args.n,
            args.methods,
            steps=args.steps,
            baseline=args.baseline,
            randomisation_n=args.randomisation_n,
            scenes_n=args.scenes_n,
            progress=progress,
        )
    if args.json:
        print(json.dumps({"weights": loaded.weights.detail, **result.to_dict()}, indent=2))
        return

    def num(value, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    print(
        f"lab model ({loaded.weights.describe()}) · {result.n} test images · {result.device} · {result.seconds:.1f} s"
    )
    print(
        f"deletion/insertion: {result.steps} steps, baseline {result.baseline}, AUC of p / p(input) · randomisation: "
        f"{result.randomisation_n} images, similarity once every layer group is random"
    )
    print(
        f"core vs ring: relevance density in the mask eroded by 3 px against a 3-px ring outside it · shifted: the map "
        f"moved {SHIFT} px · scenes: {result.scenes_n} two-evidence scenes, share of explanations with more mass on "
        "the explained class's region than on the other's"
    )
    head = ("method", "mass in mask", "(shifted)", "core vs ring", "(shifted)", "rank acc.", "pointing")
    head += ("deletion ↓", "insertion ↑", "randomised ↓", "scenes ↑")
    keys = ("mass_in_mask", "mass_in_mask_shifted", "boundary_contrast", "boundary_contrast_shifted")
    keys += ("rank_accuracy", "pointing_game", "deletion_auc", "insertion_auc", "randomisation_similarity")
    print(f"{head[0]:<16}" + "".join(f"{h:>13}" for h in head[1:]))
    rows = [(m, result.per_method[m]) for m in result.methods] + [("random map", result.random_map)]
    rows += [(name.replace("_", " "), row) for name, row in result.model_free.items()]
    for name, row in rows:
        values = [row.get(k) for k in keys] + [(row.get("scenes") or {}).get("follows")]
        print(f"{name:<16}" + "".join(f"{num(v):>13}" for v in values))
    print(f"{'mask area':<16}{num(result.mask_area_fraction):>13}")


def _methods(text: str) -> tuple[str, ...]:
    from ..attribution import PIXEL_METHODS

    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in names if m not in PIXEL_METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"methods are a comma-separated subset of {','.join(PIXEL_METHODS)}")
    return names


def _conditions(text: str) -> tuple[str, ...]:
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    unknown = [c for c in names if c not in CONDITIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"conditions are a comma-separated subset of {','.join(CONDITIONS)}")
    return names


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {value}")
    return value


def add_commands(subparsers) -> None:
    """Register ``lab train``, ``lab eval`` and ``lab benchmark`` under the ``hrnet-explorer`` command."""
    lab = subparsers.add_parser("lab", help="the resolution lab: train a model on it, score the shipped one")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)

    p = lab_sub.add_parser(
        "train",
        help="train an HRNet on the lab task (seeded, resumable)",
        formatter_class=lab.formatter_class,
    )
    p.add_argument("--out", required=True, help="folder for lab.safetensors, lab.json and the resumable state")
    p.add_argument(
        "--task",
        choices=("classify", "segment"),
        default="classify",
        help="classify: one class per image (lab.safetensors); segment: a class per pixel (lab-seg.safetensors)",
    )
    p.add_argument("--variant", default=_DEFAULTS.variant, help="timm HRNet architecture")
    p.add_argument("--steps", type=_positive, default=_DEFAULTS.steps, help="optimiser steps")
    p.add_argument("--batch-size", type=_positive, default=_DEFAULTS.batch_size, help="images per step")
    p.add_argument("--lr", type=float, default=_DEFAULTS.lr, help="peak AdamW learning rate")
    p.add_argument("--size", type=_positive, default=_DEFAULTS.size, help="image size in px (multiple of 32)")
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="seed of the initial weights")
    p.add_argument("--eval-n", type=_positive, default=_DEFAULTS.eval_n, help="held-out images scored at the end")
    p.add_argument("--save-every", type=_positive, default=_DEFAULTS.save_every, help="steps between saved states")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = lab_sub.add_parser(
        "eval",
        help="held-out accuracy under clean, blurred, evidence-removed and background-replaced conditions",
        formatter_class=lab.formatter_class,
    )
    p.add_argument("--n", type=_positive, default=1000, help="test images per condition")
    p.add_argument(
        "--weights", default="default", help="default (the shipped lab model) or a checkpoint PATH from `lab train`"
    )
    p.add_argument("--conditions", type=_conditions, default=CONDITIONS, help="comma-separated subset")
    p.add_argument("--batch-size", type=_positive, default=50, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)

    p = lab_sub.add_parser(
        "benchmark",
        help="which explanation to trust: every pixel method scored against the evidence and by faithfulness",
        formatter_class=lab.formatter_class,
    )
    p.add_argument("--n", type=_positive, default=200, help="lab test images")
    p.add_argument(
        "--methods",
        type=_methods,
        default=("ig", "saliency", "smoothgrad", "gradshap", "occlusion"),
        help="comma-separated pixel methods",
    )
    p.add_argument("--steps", type=_positive, default=20, help="deletion/insertion steps")
    p.add_argument("--baseline", default="blur", choices=("blur", "zeros", "mean"), help="what deleted pixels become")
    p.add_argument("--randomisation-n", type=_count, default=20, help="images for the randomisation test (0: skip it)")
    p.add_argument("--scenes-n", type=_count, default=50, help="two-evidence scenes (0: skip them)")
    p.add_argument(
        "--weights", default="default", help="default (the shipped lab model) or a checkpoint PATH from `lab train`"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_benchmark)

"""What every command of the CLI shares: the parser classes, the model options, loading, and output."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from ..errors import InputError
from ..images import check_input_size, read_image
from ..zoo import LAB, VARIANTS, LoadedModel, RandomWeightsWarning, load_model

QUIET_HELP = "no progress bar on stderr (there is none either when stderr is not a terminal)"


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


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def add_model_args(p: argparse.ArgumentParser) -> None:
    """An image and the model to run on it: the options of predict, trace and explain."""
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


def load(args: argparse.Namespace) -> LoadedModel:
    """The model of ``args``, after checking what needs no model: a bad image or size must not wait for w64.

    ``args.image`` is replaced by the decoded image, so it is read once.
    """
    args.image = read_image(args.image)
    check_input_size(args.input_size)
    if getattr(args, "topk", 1) < 1:
        raise InputError(f"--topk must be ≥ 1, got {args.topk}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # reported once, below and in the output
        loaded = load_model(args.variant, args.weights, args.device, args.precision, labels=args.labels)
    loaded.check_classifier(args.command)
    if loaded.weights.is_random:
        print(f"WARNING: {loaded.weights.describe()}", file=sys.stderr)
    return loaded


def model_text(loaded: LoadedModel) -> str:
    """The header line's model: "hrnet_w18", or "lab (hrnet_w18_small, 10 classes)"."""
    if loaded.name == loaded.variant.name:
        return loaded.name
    return f"{loaded.name} ({loaded.architecture}, {loaded.num_classes} classes)"


def header(loaded: LoadedModel, input_text: str) -> str:
    """The first line of a command's text output: the model, its weights, and what it ran on."""
    return f"{model_text(loaded)} · weights {loaded.weights.describe()} · {input_text}"

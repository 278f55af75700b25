"""What the app offers and how it reads what comes back: menus' entries and the parsers of every control.

The browser (and an API caller) sends names and strings only; each parser turns one into what the core takes
or raises an :class:`~hrnet_explorer.errors.InputError` that says what is accepted. No gradio here.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import timm

from ..anatomy import module_refs
from ..display import COMPACT_WIDTH
from ..errors import InputError, WeightsError
from ..zoo import class_index, get_variant, weight_tags
from ..zoo.timm_hrnet import module_counts

__all__ = [
    "DEFAULT_SIZE",
    "EVERY_MODULE",
    "INPUT_SIZES",
    "TOP1",
    "check_weights",
    "class_choices",
    "compact",
    "module_names",
    "parse_count",
    "parse_input_size",
    "parse_module",
    "parse_stream",
    "parse_target",
    "weight_choices",
]

TOP1 = "top-1 prediction"
DEFAULT_SIZE = "default"
INPUT_SIZES = (160, 192, 224, 256, 288, 320, 384, 448)
EVERY_MODULE = "every module"


def weight_choices(variant: str) -> list[str]:
    """'default', every pretrained tag of ``variant`` (short where it is the variant's own), 'random'."""
    card = get_variant(variant)
    tags = [t.split(".", 1)[1] if t.startswith(card.name + ".") else t for t in weight_tags(card.name)]
    return ["default", *tags, "random"]


def check_weights(variant: str, weights: str | None) -> str:
    """``weights`` if it names weights of ``variant`` (a :func:`weight_choices` entry or a full timm tag).

    The app loads weights by name only, never from a path on the server: the Weights box takes custom
    values, and API callers can send any string (load_model would read it as a checkpoint file).
    """
    card = get_variant(variant)
    name = weights or "default"
    if name not in weight_choices(card.name) and name not in weight_tags(card.name):
        raise WeightsError(
            f"Unknown weights {name!r} for {card.name}. Choose one of: {', '.join(weight_choices(card.name))}."
        )
    return name


@functools.cache
def module_names(variant: str) -> list[str]:
    """``stage{s}.module{m}`` of every HighResolutionModule of ``variant``, without building it if timm's
    config table has it."""
    card = get_variant(variant)
    counts = module_counts(card.name)
    if counts is not None:
        return [f"stage{s}.module{m}" for s, n in counts.items() for m in range(n)]
    return [r.name for r in module_refs(timm.create_model(card.name, pretrained=False))]


@functools.lru_cache(maxsize=16)
def class_choices(class_names: tuple[str, ...]) -> list[str]:
    """The class picker's entries for a model: the top-1, then "i: name" for every class."""
    return [TOP1] + [f"{i}: {name}" for i, name in enumerate(class_names)]


def parse_target(value: Any, num_classes: int, class_names: Sequence[str] | None = None) -> int | None:
    """``TOP1``/empty → None; "207: golden retriever", "207" or 207 → 207 (a class of a ``num_classes`` model);
    with ``class_names``, a typed name as the CLI's ``--target`` takes it ("goldfish" → 1: :func:`zoo.class_index`)."""
    if value is None or value == "" or value == TOP1:
        return None
    text = str(value).split(":", 1)[0].strip()
    try:
        index = int(text)
    except ValueError:
        if class_names is None:
            raise InputError(
                f"Class to explain: expected a class index 0..{num_classes - 1} or '{TOP1}', got {value!r}."
            ) from None
        index = class_index(str(value), class_names)
    if not 0 <= index < num_classes:
        raise InputError(f"Class to explain: this model's classes are 0..{num_classes - 1}, got {index}.")
    return index


def parse_module(value: str) -> tuple[int, int]:
    """ "stage4.module0" → (4, 0)."""
    try:
        stage, module = str(value).split(".")
        return int(stage.removeprefix("stage")), int(module.removeprefix("module"))
    except ValueError:
        raise InputError(f"Expected a module name like 'stage4.module0', got {value!r}.") from None


def parse_input_size(value: Any) -> int | None:
    """The app's input size: 'default' (the weights' own) or a multiple of 32 up to the largest of INPUT_SIZES,
    as a number or a string (API callers send either); anything else is an InputError (no 4096 px forward)."""
    if value in (None, "", DEFAULT_SIZE, 0, "0"):
        return None
    try:
        size = int(str(value).strip().removesuffix("px").strip())
    except (TypeError, ValueError):
        size = None
    if size is None or size % 32 or not 32 <= size <= max(INPUT_SIZES):
        raise InputError(
            f"Input size must be a multiple of 32 from 32 to {max(INPUT_SIZES)} px (the menu offers "
            f"{', '.join(map(str, INPUT_SIZES))}) or '{DEFAULT_SIZE}'; got {value!r}."
        )
    return size


def parse_count(value: Any, what: str, low: int, high: int) -> int:
    """A whole number in ``low..high`` (a slider's value: 20, 20.0 or "20"), else an InputError naming ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number.is_integer() and low <= number <= high):
        raise InputError(f"{what} must be {low}..{high}, got {value!r}.")
    return int(number)


def parse_stream(value: Any, what: str = "stream") -> int:
    """ "2", "stream 2" or 2 → 2."""
    try:
        return int(str(value).removeprefix("stream").strip())
    except ValueError:
        raise InputError(f"Expected a {what} number 0..3, got {value!r}.") from None


def compact(plot_width: Any) -> bool:
    """Whether the figures go to a narrow screen: ``plot_width`` is the width in px of the browser's figure column
    (the page's script sends it with every request), 0 or None when unknown (API callers): wide figures."""
    try:
        width = float(plot_width or 0)
    except (TypeError, ValueError):
        return False
    return 0 < width < COMPACT_WIDTH

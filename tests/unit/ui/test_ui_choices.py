"""ui.choices: what each control of the app accepts, and the one-line InputError for anything else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import timm

import hrnet_explorer.ui
from hrnet_explorer.anatomy import module_refs
from hrnet_explorer.errors import InputError
from hrnet_explorer.ui.choices import (
    TOP1,
    compact,
    module_names,
    parse_count,
    parse_input_size,
    parse_module,
    parse_stream,
    parse_target,
)
from hrnet_explorer.zoo import imagenet_class_names


def test_what_each_parser_accepts():
    assert [parse_target(v, 1000) for v in (None, "", TOP1, "207: golden retriever", "207", 207)] == [
        None,
        None,
        None,
        207,
        207,
        207,
    ]
    assert parse_module("stage3.module2") == (3, 2) and parse_stream("stream 2") == 2 == parse_stream(2)
    assert [parse_input_size(v) for v in (None, "", "default", 0, "224", 224, "256 px")] == [None] * 4 + [224, 224, 256]
    assert [parse_count(v, "Steps", 2, 100) for v in (2, "20", 20.0, 100)] == [2, 20, 20, 100]
    assert [compact(w) for w in (0, None, "wide", 400, "819", 820, 1400)] == [False] * 3 + [True, True, False, False]


def test_a_typed_class_name_is_taken_as_the_cli_takes_it():
    names = imagenet_class_names()
    assert [parse_target(v, 1000, names) for v in ("goldfish", "Goldfish", "1: goldfish", " golden retriever")] == [
        1,
        1,
        1,
        207,
    ]
    assert parse_target("ring", 7, ["a", "b", "c", "d", "ring, circle", "f", "g"]) == 4  # a synonym of a card's name


@pytest.mark.parametrize(
    ("parse", "value", "message"),
    [
        (lambda v: parse_target(v, 10), "10", "this model's classes are 0..9, got 10"),
        (lambda v: parse_target(v, 10), "goldfish", "expected a class index 0..9"),
        (
            lambda v: parse_target(v, 1000, imagenet_class_names()),
            "dog",
            "matches 16 classes: 153: Maltese dog",
        ),  # too many
        (lambda v: parse_target(v, 1000, imagenet_class_names()), "owlet", "matches 0 classes"),
        (parse_module, "stage4", "Expected a module name like 'stage4.module0'"),
        (parse_stream, "two", "Expected a stream number 0..3"),
        (parse_input_size, "100", "Input size must be a multiple of 32 from 32 to 448 px"),
        (parse_input_size, 4096, "Input size must be a multiple of 32"),
        (lambda v: parse_count(v, "Integration steps", 2, 256), "many", "Integration steps must be 2..256, got 'many'"),
        (lambda v: parse_count(v, "Integration steps", 2, 256), 2.5, "must be 2..256, got 2.5"),
        (lambda v: parse_count(v, "Integration steps", 2, 256), float("nan"), "must be 2..256, got nan"),
        (lambda v: parse_count(v, "Integration steps", 2, 256), 257, "must be 2..256, got 257"),
    ],
)
def test_anything_else_is_one_line_saying_what_is_accepted(parse, value, message):
    with pytest.raises(InputError, match=message.replace(".", r"\.").replace("(", r"\(")) as info:
        parse(value)
    assert "\n" not in str(info.value)


def test_module_names_from_timms_table_match_the_built_model():
    """The names read from timm's config table (no model built) are those of the modules a built model holds."""
    built = [r.name for r in module_refs(timm.create_model("hrnet_w18_small_v2", pretrained=False))]
    assert module_names("hrnet_w18_small_v2") == built and len(built) == 1 + 3 + 2
    assert len(module_names("w18")) == 8 and module_names("w18")[-1] == "stage4.module2"


# ui's floors, lowest first: each module imports only those before it, and the first three no gradio.
FLOORS = [
    "gpu",
    "choices",
    "cache",
    "text",
    "gradio_private",
    "components",
    "guard",
    "dense",
    "microscope",
    "callbacks",
    "layout",
]


def _imports(module: str) -> set[str]:
    """The ui modules and top-level libraries that ``hrnet_explorer/ui/<module>.py`` imports."""
    tree = ast.parse((Path(hrnet_explorer.ui.__file__).parent / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:  # a ui module (from .cache / from . import x)
            found |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):  # a library, or the package below ui (from ..zoo: "hrnet_explorer")
            found.add((node.module or "").split(".")[0] if node.level == 0 else "hrnet_explorer")
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
    return found


def test_each_floor_of_the_ui_imports_only_the_floors_below_it():
    assert sorted(FLOORS) == sorted(p.stem for p in Path(hrnet_explorer.ui.__file__).parent.glob("[!_]*.py"))
    for k, module in enumerate(FLOORS):
        above = set(FLOORS[k:])
        assert not _imports(module) & above, (module, _imports(module) & above)
    for module in ("gpu", "choices", "cache", "text"):
        assert "gradio" not in _imports(module), module

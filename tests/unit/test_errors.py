"""The UserError family: every user mistake is a UserError *and* the builtin it was before the family existed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import hrnet_explorer
from hrnet_explorer import errors
from hrnet_explorer.attribution import attribute_pixels, deletion_insertion, randomised_models, spearman, stream_shares
from hrnet_explorer.batch import predict_many
from hrnet_explorer.images import check_input_size, read_image, to_batch
from hrnet_explorer.predict import class_name, predict, topk_from_logits
from hrnet_explorer.sources import open_source

PACKAGE = Path(hrnet_explorer.__file__).parent
BUILTINS = (ValueError, KeyError, TypeError, FileNotFoundError, IndexError, FloatingPointError)
# The modules whose user-mistake raise sites this family replaced: none raises a bare builtin any more.
CONVERTED = [
    "images.py",
    "predict.py",
    "sources.py",
    "batch.py",
    "costs.py",
    "attribution/pixels.py",
    "attribution/streams.py",
    "attribution/faithfulness.py",
    "attribution/randomisation.py",
]


def test_every_error_is_a_user_error_and_its_old_builtin():
    classes = [getattr(errors, name) for name in errors.__all__]
    assert errors.UserError in classes and len(classes) >= 8
    for cls in classes:
        assert issubclass(cls, errors.UserError) and getattr(hrnet_explorer, cls.__name__) is cls
        if cls is not errors.UserError:
            assert issubclass(cls, BUILTINS), cls  # `except ValueError` (etc.) written before still catches it
    assert issubclass(errors.CardError, errors.WeightsError) and issubclass(errors.ImageError, errors.InputError)
    assert not issubclass(errors.UserError, BUILTINS)  # a bare ValueError is not a user mistake


def test_a_missing_name_reads_as_its_message():
    # KeyError's str() is the repr of its argument; the message must reach a user as written.
    message = "No module 7 in stage 4.\nModules: stage4.module0"
    assert str(errors.NotFoundError(message)) == message
    with pytest.raises(KeyError, match="No module 7"):
        raise errors.NotFoundError(message)


MISTAKES = [
    ("read_image of no bytes", lambda: read_image(b""), errors.ImageError),
    ("a 3-D batch", lambda: to_batch(torch.zeros(3, 4, 32, 32), {}), errors.InputError),
    ("a batch of ints", lambda: to_batch(torch.zeros(1, 3, 32, 32, dtype=torch.int64), {}), errors.InputError),
    ("input size 100", lambda: check_input_size(100), errors.InputError),
    ("class 1000 of ImageNet", lambda: class_name(1000), errors.InputError),
    ("top-0", lambda: topk_from_logits(torch.zeros(10), 0), errors.InputError),
    ("3 names for 10 logits", lambda: topk_from_logits(torch.zeros(10), 1, ["a", "b", "c"]), errors.InputError),
    ("a folder that is not there", lambda: open_source("/no/such/folder/anywhere"), errors.MissingFileError),
    ("lab:many", lambda: open_source("lab:many"), errors.InputError),
    ("spearman of one value", lambda: spearman(torch.zeros(1), torch.zeros(1)), errors.InputError),
    ("randomise a Linear", lambda: next(randomised_models(torch.nn.Linear(2, 2))), errors.ArgumentError),
]


@pytest.mark.parametrize(("name", "call", "expected"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_user_mistakes_in_the_core_are_user_errors(name, call, expected):
    with pytest.raises(expected) as info:
        call()
    assert isinstance(info.value, errors.UserError) and str(info.value), name
    assert "\n" not in str(info.value).strip()  # one line


def test_user_mistakes_with_a_model_are_user_errors(w18_small):
    x = torch.zeros(1, 3, 64, 64)
    mistakes = [
        (lambda: predict(w18_small, torch.zeros(2, 3, 64, 64)), errors.InputError),
        (lambda: predict_many(w18_small, [x[0]], batch_size=0), errors.InputError),
        (lambda: attribute_pixels(w18_small, x, "nope"), errors.InputError),
        (lambda: attribute_pixels(w18_small, x, "saliency", colour=True), errors.InputError),
        (lambda: attribute_pixels(w18_small, x, "ig", n_steps=0), errors.InputError),
        (lambda: stream_shares(w18_small, x, 0, n_steps=0), errors.InputError),
        (lambda: deletion_insertion(w18_small, x, torch.zeros(64, 64), 0, steps=2.5), errors.ArgumentError),
        (lambda: deletion_insertion(w18_small, x, torch.zeros(8, 8), 0), errors.InputError),
    ]
    for call, expected in mistakes:
        with pytest.raises(expected) as info:
            call()
        assert isinstance(info.value, errors.UserError)


@pytest.mark.parametrize("module", CONVERTED)
def test_converted_modules_raise_no_bare_builtin(module):
    """A bare ValueError/KeyError/TypeError/FileNotFoundError raised here would reach the app as an internal error."""
    bare = {cls.__name__ for cls in BUILTINS if cls is not FloatingPointError}
    found = [
        (node.lineno, node.exc.func.id)
        for node in ast.walk(ast.parse((PACKAGE / module).read_text()))
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and isinstance(node.exc.func, ast.Name)
        and node.exc.func.id in bare
    ]
    assert not found, found

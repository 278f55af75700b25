"""The hrnet-explorer command: offline, random weights labelled, user errors as one line."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest
from PIL import Image

import hrnet_explorer
from hrnet_explorer import cli
from hrnet_explorer.cli import main


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "cat.png"
    Image.effect_mandelbrot((160, 120), (-2, -1.2, 1, 1.2), 64).convert("RGB").save(path)
    return path


@pytest.fixture
def explain_red(tmp_path) -> list[str]:
    """``explain`` of a red 64 px image with random weights on the CPU (the method and outputs to add)."""
    image = tmp_path / "img.png"
    Image.new("RGB", (64, 64), "red").save(image)
    return ["explain", str(image), "--weights", "random", "--input-size", "64", "--device", "cpu"]


def test_variants_json(capsys):
    assert main(["variants", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {r["variant"]: r for r in data["variants"]}
    assert len(rows) == 9 and rows["hrnet_w18"]["params"] == 21_299_004
    assert abs(rows["hrnet_w18"]["macs"] / 1e9 - 4.318) < 0.02
    assert "1.285" in data["note"]


def test_predict_json_labels_random_weights(image_file, capsys):
    assert main(["predict", str(image_file), "--variant", "w18_small", "--topk", "3", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["random_weights"] is True and data["weights"]["kind"] == "random"
    assert len(data["top"]) == 3 and abs(sum(s["probability"] for s in data["top"]) - 1) < 1
    assert "RANDOM weights" in captured.err


def test_trace_text_and_json(image_file, capsys):
    assert main(["trace", str(image_file), "-v", "hrnet_w18_small", "-w", "random", "--input-size", "96"]) == 0
    out = capsys.readouterr().out
    assert "stage4.module0" in out and "energy share" in out
    assert main(["trace", str(image_file), "-v", "hrnet_w18_small", "-w", "random", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert all(m["max_reconstruction_error"] <= 1e-6 for m in data["modules"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "missing.jpg"], "No such image file"),
        (["predict", "{img}", "--variant", "w99"], "Unknown variant"),
        (["predict", "{img}", "--weights", "nope.safetensors"], "not found"),
        (["predict", "{img}", "--input-size", "240", "-w", "random"], "multiple of 32"),
        (["predict", "{img}", "--topk", "0", "-w", "random"], "topk"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message, image_file):
    cmd = [sys.executable, "-m", "hrnet_explorer.cli", *[a.format(img=image_file) for a in args]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("hrnet-explorer: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_version_and_every_option_has_help(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"hrnet-explorer {hrnet_explorer.__version__}"

    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from parsers(child)

    undocumented = [
        f"{parser.prog} {action.option_strings or action.dest}"
        for parser in parsers(cli.build_parser())
        for action in parser._actions
        if not action.help and not isinstance(action, argparse._SubParsersAction)
    ]
    assert undocumented == []


@pytest.mark.parametrize(
    "argv",
    [["predict"], ["predict", "x.jpg", "--topk", "many"], ["nonsense"], ["lab", "eval", "--n", "0"], ["--bogus"]],
)
def test_command_line_mistakes_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and "error:" in err and "--help" in err, err


def test_mistakes_are_found_before_the_model_is_built(tmp_path, capsys, monkeypatch):
    from hrnet_explorer.cli import common

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the arguments were checked")

    monkeypatch.setattr(common, "load_model", no_model)
    good = tmp_path / "ok.png"
    Image.new("RGB", (64, 64)).save(good)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    for argv, message in [
        (["predict", str(tmp_path / "bad.png")], "image"),
        (["predict", str(good), "--topk", "0"], "--topk"),
        (["trace", str(good), "--input-size", "100"], "multiple of 32"),
    ]:
        assert main([*argv, "--variant", "hrnet_w64"]) == 2
        assert message in capsys.readouterr().err


def test_explain_out_and_steps_are_checked_before_work(explain_red, tmp_path, capsys):
    (tmp_path / "maps.png").mkdir()
    for extra, message in [
        (["--method", "ig", "--steps", "0"], "--steps must be ≥ 1"),
        (["--method", "saliency", "--out", str(tmp_path / "maps.png")], "is a folder"),
        (["--method", "saliency", "--out", str(tmp_path / "missing" / "x.png")], "does not exist"),
    ]:
        assert main([*explain_red, *extra]) == 2
        assert message in capsys.readouterr().err


def test_explain_knockout_npz_holds_the_deltas(explain_red, tmp_path):
    import numpy as np

    out = tmp_path / "ko.npz"
    assert main([*explain_red, "--method", "knockout", "--out", str(out)]) == 0
    saved = np.load(out)
    assert set(saved.files) == {"logit_delta", "prob_delta"} and saved["logit_delta"].shape == (4,)


def test_colorize_clips_outliers():
    import numpy as np
    import torch

    from hrnet_explorer.render import colorize

    heat = torch.full((32, 32), 0.5)
    heat[0, 0] = 1e6  # one outlier pixel must not turn the rest black
    rgb = colorize(heat, signed=False)
    assert rgb[5:, 5:].mean() > 100 and np.array_equal(rgb[0, 0], [255, 255, 255])


def test_explain_png_has_labelled_panels_and_a_colour_bar(explain_red, tmp_path):
    import numpy as np

    from hrnet_explorer.render import BAR_PX, LABEL_PX

    out = tmp_path / "cam.png"
    assert main([*explain_red, "--method", "gradcam-streams", "--out", str(out)]) == 0
    sheet = np.asarray(Image.open(out))
    extra = sheet.shape[0] - (64 + LABEL_PX + BAR_PX)  # the note wraps over 12 px lines below the bar
    assert sheet.shape[1] == 4 * 64 and extra % 12 == 0 and 0 <= extra <= 24
    strip = sheet[:LABEL_PX, :64]
    assert (strip < 128).any() and (strip == 255).mean() > 0.5  # dark text on a white strip
    bar = sheet[64 + LABEL_PX + 2 : 64 + LABEL_PX + 10, 10:-10]
    assert bar[:, 0].mean() < 40 and bar[:, -1].mean() > 200  # black → yellow/white ramp


@pytest.mark.parametrize("error", [KeyError("stage9"), ValueError("bad shape"), IndexError("list index out of range")])
def test_an_internal_error_is_a_traceback_not_a_user_mistake(error, image_file, capsys, monkeypatch):
    """The builtins that user mistakes also raise: from inside the package they are bugs, shown with a traceback."""
    predict_module = importlib.import_module("hrnet_explorer.predict")  # the package exports its function

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(predict_module, "predict", broken)
    assert main(["predict", str(image_file), "-w", "random", "--input-size", "64", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and f"{type(error).__name__}: " in err and "in broken" in err
    assert "hrnet-explorer: error:" not in err and "internal error" in err.splitlines()[-1]


def test_a_user_mistake_from_deep_inside_is_one_line(image_file, capsys, monkeypatch):
    from hrnet_explorer.errors import NotFoundError

    predict_module = importlib.import_module("hrnet_explorer.predict")

    def refuses(*args, **kwargs):
        raise NotFoundError("No module stage9.module0: stages are 2, 3 and 4.")

    monkeypatch.setattr(predict_module, "predict", refuses)
    assert main(["predict", str(image_file), "-w", "random", "--input-size", "64", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "hrnet-explorer: error: No module stage9.module0: stages are 2, 3 and 4."
    assert "Traceback" not in err


def test_explain_offers_every_pixel_method_and_one_function_each():
    from hrnet_explorer.attribution import PIXEL_METHODS
    from hrnet_explorer.cli import explain, options

    assert options.PIXEL_EXPLAINERS == PIXEL_METHODS
    assert set(explain.METHODS) == {*PIXEL_METHODS, "gradcam-streams", "stream-shares", "knockout"}


def test_a_device_that_is_not_there_is_one_line(image_file, capsys):
    assert main(["predict", str(image_file), "-w", "random", "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("hrnet-explorer: error: Unknown device 'tpu'") and "Traceback" not in err

"""What a browser user or an API client is shown (issue 26): no server path, no Python internals, files as files.

The app runs in-process and is driven through gradio_client like any API user; w18_small at 64 px with random
weights wherever the model does not matter (fast on a CPU), the shipped lab model where it does.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import gradio as gr
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from repo import ROOT
from servers import launched_demo

from hrnet_explorer.ui import ASSETS, Explorer
from hrnet_explorer.ui.guard import INTERNAL_ERROR
from hrnet_explorer.zoo import LAB_DIR

EXAMPLE = str(ASSETS / "grace_hopper.jpg")
LAB_EXAMPLE = str(ASSETS / "lab_0008_ring.png")
FAST = ("hrnet_w18_small", "random", "64")  # variant, weights, input size
INTERNALS = ("<class", "Original error", "Traceback", "component at index", "not supported between", "Error:")


@pytest.fixture(scope="module")
def app():
    with launched_demo() as (demo, url):
        yield demo, url


@pytest.fixture(scope="module")
def client(app):
    return Client(app[1], verbose=False, download_files=False)


def one_line(exc: AppError) -> str:
    """The message an API client got, checked to be one line with none of Python's or Gradio's internals."""
    message = html.unescape(str(exc))
    assert "\n" not in message.strip() and not any(word in message for word in INTERNALS), message
    assert INTERNAL_ERROR not in message, message
    return message


def test_the_summary_names_a_checkpoint_by_its_model_never_by_its_path(client):
    _, summary, *_ = client.predict(
        handle_file(LAB_EXAMPLE), "lab", "default", "default", "energy_share", 0, api_name="/analyze"
    )
    assert "weights: the checkpoint of lab (its model card)" in summary
    assert str(LAB_DIR) not in summary and ".safetensors" not in summary and "/" not in summary.split("·")[1]


def test_an_error_that_names_a_server_file_shows_its_name_only(tmp_path):
    """A carded checkpoint that breaks after the start (overwritten on disk): the error of its load names the card
    and the checkpoint by file name, not by where they sit on the server."""
    from test_own_model import CARD, with_card, write_checkpoint

    checkpoint = write_checkpoint(tmp_path / "source.safetensors")
    with_card(tmp_path / "models", checkpoint, CARD, stem="mine")
    explorer = Explorer("cpu", models=tmp_path / "models")
    checkpoint.write_bytes(b"not a checkpoint any more")  # the link in models/ now points at garbage
    with pytest.raises(gr.Error) as info:
        explorer.analyze(EXAMPLE, "my_lab", "default", "default", progress=lambda *a, **k: None)
    assert "mine.safetensors" in info.value.message and str(tmp_path) not in info.value.message


BAD_TYPES = [  # (endpoint, arguments, the control's label the message names)
    ("/variant_options", ([1, 2],), "Variant"),
    ("/variant_options", ({"a": 1},), "Variant"),
    ("/analyze", (handle_file(EXAMPLE), *FAST, "energy_share", "wide"), "Figure width"),
    ("/analyze", (handle_file(EXAMPLE), *FAST, "energy_share", [1]), "Figure width"),
    ("/trust", (handle_file(EXAMPLE), *FAST, "top-1 prediction", "saliency", 5, "blur", False, 0), "Methods to score"),
    ("/trust", (handle_file(EXAMPLE), *FAST, "top-1 prediction", [1], 5, "blur", False, 0), "Methods to score"),
    ("/trust", (handle_file(EXAMPLE), *FAST, "top-1 prediction", ["saliency"], "x", "blur", False, 0), "steps"),
    ("/trust", (handle_file(EXAMPLE), *FAST, "top-1 prediction", ["saliency"], [3], "blur", False, 0), "steps"),
    ("/stream_shares", (handle_file(EXAMPLE), *FAST, "top-1 prediction", "abc", 0), "Integration steps"),
    ("/attribute", (handle_file(EXAMPLE), *FAST, 7, "top-1 prediction", 0), "Pixel method"),
]


@pytest.mark.parametrize(
    ("api", "args", "label"), BAD_TYPES, ids=[f"{a}:{la}:{i}" for i, (a, _, la) in enumerate(BAD_TYPES)]
)
def test_a_value_of_the_wrong_type_is_one_line_naming_the_control(client, api, args, label):
    with pytest.raises(AppError) as info:
        client.predict(*args, api_name=api)
    assert label in one_line(info.value)


def test_report_gives_an_api_client_the_two_files(app, tmp_path):
    downloads = Client(app[1], verbose=False, download_files=str(tmp_path))
    page, bundle = downloads.predict(handle_file(EXAMPLE), *FAST, api_name="/report")
    page, bundle = Path(page), Path(bundle)
    assert page.is_file() and page.is_relative_to(tmp_path) and "<html" in page.read_text(encoding="utf-8")[:500]
    with zipfile.ZipFile(bundle) as zf:
        assert sorted(Path(n).suffix for n in zf.namelist()) == [".json", ".safetensors"]


LAB_PARAMS = 11_158_954  # hrnet_w18_small with the lab's 10-class head (13,187,464 with ImageNet's 1000)


def card_vs_measured(value: dict) -> tuple[str, dict[str, list]]:
    """A card-vs-measured figure's title and its bars by trace name (y values)."""
    fig = json.loads(value["plot"])
    return fig["layout"]["title"]["text"], {t["name"]: t["y"] for t in fig["data"]}


def test_a_carded_model_shows_its_own_count_and_no_imagenet_card(app, client):
    """Predict, Compare and the report: the lab model's parameters are its own (10-class head), its card bars are
    empty and the title claims no ImageNet accuracy for it; a variant beside it keeps its card."""
    _, _, _, costs, *_ = client.predict(
        handle_file(LAB_EXAMPLE), "lab", "default", "64", "energy_share", 0, api_name="/analyze"
    )
    title, bars = card_vs_measured(costs)
    assert bars["measured"] == [LAB_PARAMS / 1e6] and bars["card"] == [None] and bars["card 'FLOPs'"] == [None]
    assert "72.34" not in title and "top-1" not in title and "lab: own model card" in title
    _, costs, _ = client.predict(
        handle_file(LAB_EXAMPLE), ["hrnet_w18_small", "lab"], "default", "64", 0, api_name="/compare"
    )
    title, bars = card_vs_measured(costs)
    assert bars["measured"] == [13_187_464 / 1e6, LAB_PARAMS / 1e6] and bars["card"] == [13.19, None]
    assert "w18_small 72.34%" in title and "lab: own model card" in title
    assert len(bars["measured latency"]) == 2 and None not in bars["measured latency"]  # both timed
    page, _ = app[0].explorer.report_files(LAB_EXAMPLE, "lab", "default", "64", progress=lambda *a, **k: None)
    text = Path(page).read_text(encoding="utf-8")
    assert "lab: own model card" in text and "72.34" not in text


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_card_that_does_not_fit_its_checkpoints_head_stops_the_start(tmp_path, suffix):
    """--models DIR with a card of 5 classes beside a 7-class checkpoint: the app does not start (it did, and every
    Analyze failed), and says why in one line; the head's shape is read from the file."""
    from safetensors.torch import load_file
    from test_own_model import CARD, write_checkpoint

    from hrnet_explorer.zoo import CardError

    checkpoint = write_checkpoint(tmp_path / "source.safetensors")
    models = tmp_path / "models"
    models.mkdir()
    if suffix == ".pth":
        torch.save({"state_dict": load_file(str(checkpoint))}, models / "mine.pth")
    else:
        (models / "mine.safetensors").symlink_to(checkpoint)
    card = {**CARD, "num_classes": 5, "class_names": CARD["class_names"][:5]}
    (models / "mine.json").write_text(json.dumps(card))
    expected = f"says num_classes 5, but checkpoint mine{suffix} has a 7-class head (classifier.weight [7, 2048])"
    with pytest.raises(CardError, match=re.escape(expected)):
        Explorer("cpu", models=models)
    if suffix == ".safetensors":  # the start itself, as a user runs it: one line, no traceback
        app_py = ROOT / "app.py"
        proc = subprocess.run([sys.executable, str(app_py), "--models", str(models)], capture_output=True, text=True)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and expected in proc.stderr, proc.stderr


def test_trust_says_why_a_lab_example_has_no_mask_columns(app):
    """A lab example image scored with a model that is not the lab's: the mask columns are left out, and the text
    says so and why (it dropped them silently); the lab model at its own input keeps them."""
    explorer, quiet = app[0].explorer, dict(progress=lambda *a, **k: None)
    options = dict(methods=["saliency"], steps=2, randomisation=False, **quiet)
    text, *_ = explorer.trust(LAB_EXAMPLE, *FAST, **options)
    assert "No evidence-mask columns: this is a lab example image, but hrnet_w18_small is not a lab model" in text
    text, *_ = explorer.trust(LAB_EXAMPLE, "lab", "default", "64", **options)
    assert "No evidence-mask columns" in text and "not the lab sample at this model's input" in text
    text, *_ = explorer.trust(LAB_EXAMPLE, "lab", "default", "default", **options)
    assert "No evidence-mask columns" not in text and "evidence mask of this lab image" in text
    text, *_ = explorer.trust(EXAMPLE, *FAST, **options)
    assert "No evidence-mask columns" not in text  # not a lab example: no mask expected, nothing to explain


def test_the_trust_note_describes_the_randomisation_test_only_when_it_ran(app):
    explorer, quiet = app[0].explorer, dict(progress=lambda *a, **k: None)
    off, *_ = explorer.trust(EXAMPLE, *FAST, methods=["saliency"], steps=2, randomisation=False, **quiet)
    assert "randomisation test off" in off and "re-initialised" not in off
    on, *_ = explorer.trust(EXAMPLE, *FAST, methods=["saliency"], steps=2, randomisation=True, **quiet)
    assert "randomised: Spearman of |map| to the original once every layer is re-initialised" in on
    assert "randomisation test off" not in on


def test_integrated_gradients_steps_can_be_set(client):
    """IG's step count was fixed at 32 in the UI and /attribute: it is a slider and the endpoint's argument now."""
    _, text = client.predict(handle_file(EXAMPLE), *FAST, "ig", "top-1 prediction", 8, 0, api_name="/attribute")
    assert "n_steps=8" in text
    _, text = client.predict(handle_file(EXAMPLE), *FAST, "ig", "top-1 prediction", api_name="/attribute")
    assert "n_steps=32" in text  # the default, as attribute_pixels'
    with pytest.raises(AppError) as info:
        client.predict(handle_file(EXAMPLE), *FAST, "ig", "top-1 prediction", 1, 0, api_name="/attribute")
    assert "IG steps" in one_line(info.value)


def test_view_api_does_not_repeat_the_class_names(client):
    """The class picker is a string in the API (what it takes, described), not an enum of 1001 entries repeated in
    every endpoint that takes a class: view_api() was 223k characters."""
    info = client.view_api(return_format="str", print_info=False)
    assert "golden retriever" in info  # the description's example, once per endpoint that takes a class
    assert "tench" not in info and len(info) < 30_000, len(info)  # 16k characters here

"""The app's dense view (Pixels tab): its endpoint through gradio_client, and the view in a real browser."""

from __future__ import annotations

import json

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from repo import ROOT
from servers import launched_demo

from hrnet_explorer.zoo import ASSETS

RING = str(ASSETS / "lab_0008_ring.png")
ARTIFACTS = ROOT / "artifacts"
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def served():
    with launched_demo() as (demo, url):
        yield url, Client(url, verbose=False, download_files=False)


def test_the_segment_endpoint_labels_and_splits_a_lab_image(served):
    _, client = served
    mask, split, table = client.predict(handle_file(RING), "lab-seg", "largest class", 0, api_name="/segment")
    mask_fig, split_fig = json.loads(mask["plot"]), json.loads(split["plot"])
    assert [t["type"] for t in mask_fig["data"]][:2] == ["image", "image"]
    assert {t["name"] for t in mask_fig["data"] if t["type"] == "scatter"} >= {"background", "ring"}
    assert [t["type"] for t in split_fig["data"]] == ["heatmap"] * 5 and "'ring'" in split_fig["layout"]["title"][
        "text"
    ]
    assert "| ring |" in table and "stream removed at the head" in table and "(exact; error" in table


def test_the_segment_endpoint_takes_a_class_and_refuses_one_not_in_the_card(served):
    _, client = served
    *_, table = client.predict(handle_file(RING), "lab-seg", "background", 0, api_name="/segment")
    assert "**background**" in table
    with pytest.raises(AppError, match="No class 'goldfish' in lab-seg"):
        client.predict(handle_file(RING), "lab-seg", "goldfish", 0, api_name="/segment")


def test_the_dense_view_in_a_browser(served, browser):
    url, _ = served
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(url, wait_until="domcontentloaded", timeout=TIMEOUT_MS)
        page.locator("#image-input input[type=file]").set_input_files(RING)
        page.locator("#image-input img").first.wait_for(timeout=TIMEOUT_MS)
        page.get_by_role("tab", name="Pixels").click()
        page.locator("#segment-button").click()
        for elem in ("dense-mask-plot", "dense-split-plot"):
            page.locator(f"#{elem} .js-plotly-plot .main-svg").first.wait_for(timeout=TIMEOUT_MS)
        assert "ring" in page.locator("#dense-table").inner_text()
        page.screenshot(path=str(ARTIFACTS / "app_pixels.png"), full_page=True)
    finally:
        page.close()
    assert not errors, errors
    assert (ARTIFACTS / "app_pixels.png").stat().st_size > 10_000


def test_a_dense_model_of_models_dir_is_offered_in_the_pixels_tab_only(tmp_path):
    from hrnet_explorer.dense import create_dense
    from hrnet_explorer.dense.card import dense_card, write_dense
    from hrnet_explorer.errors import InputError
    from hrnet_explorer.ui import Explorer
    from hrnet_explorer.ui.dense import DenseView

    model, _ = create_dense("hrnet_w18_small", 2, "random")
    card = dense_card("toy-seg", "hrnet_w18_small", ["bg", "a"], (64, 64), (0.5,) * 3, (0.25,) * 3)
    write_dense(model, tmp_path, card)
    explorer = Explorer("cpu", models=tmp_path)
    assert "toy-seg" not in explorer.model_choices()
    with pytest.raises(InputError, match="toy-seg is a segmentation model: open it in the Pixels tab"):
        explorer.model_name("toy-seg")
    view = DenseView(explorer.device, explorer.models)
    assert view.choices() == ["lab-seg", "toy-seg"]
    assert view.load("toy-seg").class_names == ("bg", "a")

"""The microscope's figures and its static HTML export: one self-contained page per map, a link per unit."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from hrnet_explorer import load_model
from hrnet_explorer.errors import InputError
from hrnet_explorer.lab import CLASSES, render
from hrnet_explorer.microscope import (
    FVSettings,
    channel_stats,
    dataset_examples,
    gratings,
    orientation_tuning,
    visualise,
)
from hrnet_explorer.microscope.html import export_html, streams_figure, tuning_figure, units_figure

MAP = "stage2.module0.fused0"


@pytest.fixture(scope="module")
def parts():
    lab = load_model("lab", device="cpu", cache=False)
    vis = visualise(lab, MAP, [0, 3, 5], FVSettings(steps=1, size=64), use_cache=False)
    batch = render(range(10), size=64)
    cfg = lab.data_config
    norm = lambda t: (t - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)  # noqa: E731
    stats = channel_stats(lab, norm(batch.images), [MAP], labels=batch.labels.numpy())[MAP]
    u8 = torch.round(batch.images * 255).to(torch.uint8)
    examples = dataset_examples(lab, stats, lambda rows: u8[rows], [0, 3, 5], k=2, crop=32)
    g = gratings(4, (4.0,), 2, size=64)
    tuning = orientation_tuning(channel_stats(lab, norm(g.images), [MAP])[MAP].mean.T.reshape(-1, *g.grid), g.angles)
    return vis, examples, tuning


def test_export_writes_a_self_contained_linkable_page_per_map(parts, tmp_path):
    vis, examples, tuning = parts
    page = export_html(tmp_path, vis, examples=examples, tuning=tuning, class_names=CLASSES, model="lab")
    text = page.read_text()
    assert page.name == f"{MAP}.html"
    assert not re.search(r"(src|href)=\"(https?:)?//", text) and "<script" not in text  # nothing fetched
    assert [m for m in re.findall(r'id="c(\d+)"', text)] == ["0", "3", "5"]  # one anchor per unit
    assert text.count("class=fv") == 3 and text.count("class=ex") == 6 and text.count("<svg") == 3
    assert f"OSI {tuning.osi[3]:.2f}" in text and CLASSES[examples[0][0].label] in text
    index = (tmp_path / "index.html").read_text()
    assert f'href="{MAP}.html"' in index
    # a second map joins the index
    export_html(tmp_path, _renamed(vis))
    assert 'href="other.map.html"' in (tmp_path / "index.html").read_text()


def _renamed(vis):
    from dataclasses import replace

    return replace(vis, name="other.map")


def test_export_refuses_a_tuning_of_another_map(parts, tmp_path):
    vis, _, tuning = parts
    small = orientation_tuning(np.ones((2, 4)), [0, 45, 90, 135])
    with pytest.raises(InputError, match="tuning"):
        export_html(tmp_path, vis, tuning=small)


def test_figures_hold_one_trace_per_unit(parts):
    vis, _, tuning = parts
    assert len(units_figure(vis).data) == 3
    assert len(streams_figure({MAP: vis}, {MAP: [0, 5]}).data) == 2
    fig = tuning_figure(tuning, [0, 3], MAP)
    assert len(fig.data) == 2 and list(fig.data[0].y) == pytest.approx(tuning.curve[0].tolist())


def test_examples_figure_one_image_per_example(parts):
    _, examples, _ = parts
    from hrnet_explorer.microscope.html import examples_figure

    fig = examples_figure(examples, CLASSES)
    assert len(fig.data) == 6
    assert fig.layout.annotations[0].text == CLASSES[examples[0][0].label]
    with pytest.raises(InputError):
        examples_figure({})

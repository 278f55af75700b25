"""Plotly figures of dense results (hrnet_explorer.figures.dense)."""

from __future__ import annotations

import numpy as np
import torch

from hrnet_explorer.dense.card import voc_palette
from hrnet_explorer.figures.dense import knockout_figure, mask_figure, palette_image, stream_maps_figure


def test_palette_image_paints_each_label_its_colour():
    labels = torch.tensor([[0, 1], [2, 1]])
    out = palette_image(labels, voc_palette(3))
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3)
    assert out[0, 1].tolist() == [128, 0, 0] and out[1, 0].tolist() == [0, 128, 0] and out[0, 0].tolist() == [0, 0, 0]


def test_mask_figure_blends_the_labels_over_the_image_with_a_legend_of_the_classes_present():
    image = torch.ones(3, 4, 4)  # white
    labels = torch.zeros(4, 4, dtype=torch.long)
    labels[:2] = 2
    fig = mask_figure(image, labels, voc_palette(3), ["bg", "a", "b"], alpha=0.5, reference=labels)
    images = [t for t in fig.data if t.type == "image"]
    assert len(images) == 3
    blended = np.asarray(images[1].z)
    assert blended[0, 0].tolist() == [128, 192, 128] and blended[3, 3].tolist() == [128, 128, 128]
    assert [t.name for t in fig.data if t.type == "scatter"] == ["bg", "b"]


def test_stream_maps_share_one_symmetric_scale_and_knockout_bars_show_the_drops():
    maps = torch.stack([torch.full((4, 4), v) for v in (1.0, -3.0, 0.5)])
    fig = stream_maps_figure(maps, ["s0", "s1", "bias"])
    assert {(t.zmin, t.zmax) for t in fig.data} == {(-3.0, 3.0)}
    assert [t.showscale for t in fig.data] == [False, False, True]
    rows = [{"stream": 0, "at": "head", "fine_iou_drop": 0.2, "boundary_f_drop": 0.3}]
    bars = knockout_figure(rows, ("fine_iou", "boundary_f"))
    assert [list(t.y) for t in bars.data] == [[0.2], [0.3]] and list(bars.data[0].x) == ["stream 0 · head"]

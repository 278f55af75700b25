"""Labelling an image's pixels with a dense model at the image's size (hrnet_explorer.dense.predict)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hrnet_explorer import load_model
from hrnet_explorer.dense.predict import segment
from hrnet_explorer.errors import InputError
from hrnet_explorer.lab import render
from hrnet_explorer.lab.task import to_pil


@pytest.fixture(scope="module")
def lab_seg():
    return load_model("lab-seg", device="cpu")


def test_a_lab_image_is_labelled_as_the_model_labels_it(lab_seg, tmp_path):
    batch = render([8], "test", 224)  # a ring
    image = to_pil(batch.images[0])
    result = segment(lab_seg, image)
    assert result.size == (224, 224) and result.input_size == (224, 224)
    mean = torch.tensor(lab_seg.data_config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(lab_seg.data_config["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        direct = lab_seg.model((batch.images - mean) / std).argmax(1)[0]
    assert (result.labels == direct).double().mean() > 0.999  # the PNG's 8-bit levels are the render's own
    assert list(result.fractions())[:2] == ["background", "ring"]
    path = result.save(tmp_path / "mask.png")
    mask = Image.open(path)
    assert mask.mode == "P" and mask.size == (224, 224)
    assert np.array_equal(np.asarray(mask), result.labels.numpy())
    assert mask.getpalette()[3 * 9 : 3 * 10] == lab_seg.card["palette"][9]  # class 9, ring


def test_the_mask_has_the_image_s_size(lab_seg):
    image = to_pil(render([3], "test", 224).images[0]).resize((300, 200))
    result = segment(lab_seg, image)
    assert result.size == (200, 300) and result.input_size == (224, 224)
    assert result.to_dict()["size"] == [200, 300]


def test_a_mask_is_written_as_png_only(lab_seg, tmp_path):
    result = segment(lab_seg, to_pil(render([0], "test", 64).images[0]))
    with pytest.raises(InputError, match="use a .png path"):
        result.save(tmp_path / "mask.jpg")


def test_the_classifier_api_refuses_a_dense_model_by_its_task(lab_seg):
    from hrnet_explorer import predict, trace

    assert lab_seg.task == "segmentation" and load_model("lab", device="cpu").task is None
    for run in (predict, trace):
        with pytest.raises(InputError, match="segmentation model .* hrnet_explorer.dense"):
            run(lab_seg, torch.zeros(1, 3, 64, 64))

"""Explaining a pixel, a region or a class of a dense HRNet (hrnet_explorer.dense.explain), on a small random one."""

from __future__ import annotations

import pytest
import torch

from hrnet_explorer import load_model
from hrnet_explorer.dense import create_dense
from hrnet_explorer.dense.card import dense_card, load_dense, write_dense
from hrnet_explorer.dense.explain import region_gradcam, region_pixels, region_split, region_stream_shares
from hrnet_explorer.dense.knockouts import dense_knockout, knockout_table
from hrnet_explorer.dense.regions import Region, class_region, resolve_class
from hrnet_explorer.errors import ArgumentError, InputError, NotFoundError, OutOfRangeError, UserError

SIZE = (64, 96)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    model, _ = create_dense("hrnet_w18_small", 3, "random", seed=4)
    with torch.no_grad():  # fresh BatchNorms are identities: give the head's one statistics, so the fold is tested
        model.head.bn.running_var.uniform_(0.5, 2.0)
        model.head.bn.running_mean.normal_(0, 0.1)
    card = dense_card("toy", "hrnet_w18_small", ["background", "a", "b"], SIZE, (0.5,) * 3, (0.25,) * 3)
    return load_dense(write_dense(model, tmp_path_factory.mktemp("toy"), card), "cpu")


@pytest.fixture(scope="module")
def x():
    return torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(0))


def test_the_exact_split_of_a_region_sums_to_its_score(toy, x):
    region = Region.box(8, 16, 40, 60, SIZE)
    split = region_split(toy, x, region, "a")
    assert split.target == 1 and split.label == "a" and split.parts.shape == (5,)
    assert split.error < 1e-5 and split.presum_error < 1e-5
    with torch.no_grad():
        score = float(toy.model(x)[0, 1][region.mask].double().sum())
    assert abs(split.score - score) <= 1e-4 * abs(score)
    assert split.maps.shape == (5, *SIZE)


def test_layer_ig_over_the_streams_is_complete(toy, x):
    shares = region_stream_shares(toy, x, Region.pixel(30, 50, SIZE), 2, n_steps=32)
    assert shares.shares.shape == (4,)
    assert shares.relative_delta < 1e-2  # the head is linear but for one ReLU: IG converges fast
    coarse = region_stream_shares(toy, x, Region.pixel(30, 50, SIZE), 2, n_steps=2)
    assert abs(coarse.score - shares.score) < 1e-4 * abs(shares.score)


def test_gradcam_and_pixel_maps_of_a_region(toy, x):
    region = Region.box(0, 0, 32, 32, SIZE)
    cam = region_gradcam(toy, x, region)
    assert [m.shape for m in cam.maps] == [torch.Size(SIZE)] * 4 and all(float(m.min()) >= 0 for m in cam.maps)
    assert [tuple(r.shape) for r in cam.raw] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    ig = region_pixels(toy, x, region, method="ig", n_steps=16)
    assert ig.attributions.shape == (3, *SIZE) and ig.delta is not None
    assert 0 <= ig.mass_in_region <= 1 and abs(ig.area_fraction - 32 * 32 / (64 * 96)) < 1e-9
    sal = region_pixels(toy, x, region, method="saliency")
    assert sal.delta is None and float(sal.heatmap.min()) >= 0


def test_a_stream_the_head_ignores_changes_nothing_when_knocked_out(toy, x):
    head = toy.model.head
    c0, c1, c2, _ = head.channels
    saved = head.conv.weight.detach().clone()
    try:
        with torch.no_grad():
            head.conv.weight[:, c0 + c1 + c2 :] = 0  # the head no longer reads stream 3
        ignored = dense_knockout(toy, x, stream=3, at="head")
        assert ignored.changed_fraction == 0.0 and ignored.against_before.miou == 1.0
        used = dense_knockout(toy, x, stream=0, at="head")
        assert used.changed_fraction > 0
    finally:
        with torch.no_grad():
            head.conv.weight.copy_(saved)
    assert not any(m._forward_hooks for m in toy.model.modules())  # the caller's model is never hooked


def test_fuse_edge_knockouts_and_a_reference(toy, x):
    reference = torch.zeros(SIZE, dtype=torch.long)
    out = dense_knockout(toy, x, edge=(3, 0), stage=4, reference=reference)
    assert out.description == "edge 3→0 removed in stage 4"
    assert out.before is not None and set(out.before.per_class) >= {"background"}
    everywhere = dense_knockout(toy, x, stream=1, at="everywhere")
    assert "fuse edges removed in every module and at the head's input" in everywhere.description
    table = knockout_table(toy, x)
    assert [t.description for t in table] == [f"stream {k} removed at the head's input" for k in range(4)]


def test_class_region_is_every_pixel_of_that_class(toy, x):
    with torch.no_grad():
        labels = toy.model(x).argmax(1)[0]
    top = int(torch.mode(labels.flatten()).values)
    region = class_region(toy, x, top)
    assert torch.equal(region.mask, labels == top)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m, x: Region.box(60, 90, 70, 100, SIZE), OutOfRangeError, "outside the 64×96 input"),
        (lambda m, x: Region.pixel(-1, 0, SIZE), OutOfRangeError, "outside"),
        (lambda m, x: Region.box(10, 10, 10, 20, SIZE), InputError, "is empty"),
        (lambda m, x: Region.of_mask(torch.zeros(SIZE, dtype=torch.bool), SIZE), InputError, "empty"),
        (lambda m, x: Region.of_mask(torch.ones(8, 8, dtype=torch.bool), SIZE), InputError, "input's size"),
        (lambda m, x: resolve_class(m, "cat"), NotFoundError, "No class 'cat' in toy: its classes are 0..2"),
        (lambda m, x: region_split(m, x, Region.pixel(0, 0, SIZE), 3), NotFoundError, "No class 3"),
        (lambda m, x: region_split(m, torch.zeros(1, 3, 60, 96), Region.pixel(0, 0, SIZE)), InputError, "of 32"),
        (lambda m, x: region_split(m, x, Region.pixel(0, 0, (32, 32))), InputError, "the input is 64×96"),
        (lambda m, x: region_pixels(m, x, Region.pixel(0, 0, SIZE), method="occlusion"), InputError, "ig, saliency"),
        (lambda m, x: dense_knockout(m, x, stream=4), InputError, "0..3"),
        (lambda m, x: dense_knockout(m, x, stream=3, at="fusion", stage=2), InputError, "No fuse edge leaves stream 3"),
        (lambda m, x: dense_knockout(m, x), InputError, "a stream or an edge"),
        (lambda m, x: dense_knockout(m, x, edge=(-1, 0)), InputError, "pair of stream indices"),
        (lambda m, x: dense_knockout(m, x, edge=(3, 0), stage=2), InputError, "No edge 3→0"),
    ],
)
def test_bad_requests_are_one_clear_user_error(toy, x, call, error, match):
    with pytest.raises(error, match=match) as info:
        call(toy, x)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


def test_a_classifier_is_not_explained_as_a_dense_model(x):
    classifier = load_model("hrnet_w18_small", "random", "cpu")
    with pytest.raises(ArgumentError, match="Expected a dense HRNet"):
        region_split(classifier, x, Region.pixel(0, 0, SIZE))

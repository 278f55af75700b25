"""The microscope's dataset side: per-channel statistics (equal to a direct computation from a full trace), the
top-k ranking and the crops around each maximum, on constructed cases and on the lab model (CPU, 64 px)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrnet_explorer import load_model, trace
from hrnet_explorer.errors import InputError, NotFoundError, OutOfRangeError, UserError
from hrnet_explorer.lab import render
from hrnet_explorer.microscope.examples import crop_box, dataset_examples, rank, top_k
from hrnet_explorer.microscope.stats import STATS, ChannelStats, UnitStats, channel_stats, column_names, reduce_map

MAPS = ["stage2.module0.fused1", "stage4.module0.edge3to0", "layer1", "stage3.module0.presum2"]


@pytest.fixture(scope="module")
def lab():
    return load_model("lab", device="cpu", cache=False)


@pytest.fixture(scope="module")
def batch(lab):
    images = render(range(6), size=64).images
    cfg = lab.data_config
    x = (images - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    return images, x


def test_channel_stats_equal_a_direct_computation_from_a_full_trace(lab, batch):
    _, x = batch
    stats = channel_stats(lab, x, MAPS, batch_size=4, labels=list(range(6)))
    full = trace(lab, x, keep="all", exact=True)
    for name in MAPS:
        t = full[name].float()
        n, c, h, w = t.shape
        flat = t.reshape(n, c, h * w)
        s = stats[name]
        np.testing.assert_allclose(s.mean, flat.mean(2).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s.max, flat.amax(2).numpy(), rtol=1e-6, atol=0)
        # the maximum is where the stats say it is (the value there is the max)
        at = t[torch.arange(n)[:, None], torch.arange(c)[None, :], torch.as_tensor(s.y), torch.as_tensor(s.x)]
        np.testing.assert_allclose(at.numpy(), s.max, rtol=1e-6)
        assert s.map_size == (h, w) and s.input_size == (64, 64) and s.labels.tolist() == list(range(6))


def test_reduce_map_on_a_constructed_map():
    t = torch.zeros(1, 2, 3, 4)
    t[0, 0, 2, 1] = 5.0
    t[0, 1] = -1.0
    t[0, 1, 0, 3] = t[0, 1, 1, 0] = 2.0  # a tie: the first in row-major order wins
    out = reduce_map(t)[0]
    assert out[0].tolist() == pytest.approx([5.0 / 12, 5.0, 2.0, 1.0])
    assert out[1].tolist() == pytest.approx([(-10 + 4) / 12, 2.0, 0.0, 3.0])


def test_unit_stats_columns_and_bad_maps(lab):
    rec = UnitStats(lab.model, ["stage2.module0.fused0"])
    assert rec.names == column_names("stage2.module0.fused0", 16) and len(rec.names) == 16 * len(STATS)
    assert rec.names[:4] == [f"unit.stage2.module0.fused0.c0.{s}" for s in STATS]
    for maps, error in (([], InputError), (["nope"], NotFoundError), (["logits"], InputError), (["layer1"] * 2, None)):
        with pytest.raises(error or InputError) as info:
            UnitStats(lab.model, maps)
        assert isinstance(info.value, UserError)
    with pytest.raises(InputError, match="No images"):
        channel_stats(lab, torch.zeros(0, 3, 64, 64), ["layer1"])


def _constructed(values: np.ndarray) -> ChannelStats:
    n, c = values.shape
    zeros = np.zeros((n, c), dtype=np.int64)
    return ChannelStats(
        "m",
        values.astype(np.float32),
        values.astype(np.float32),
        zeros,
        zeros,
        tuple(f"img{i}" for i in range(n)),
        np.arange(n),
    )


def test_top_k_ranking_on_a_constructed_case():
    values = np.array([[0.1, 3.0], [0.9, 1.0], [0.5, 3.0], [0.9, -1.0], [0.0, 2.0]])
    s = _constructed(values)
    assert top_k(s, 0, k=3).tolist() == [1, 3, 2]  # 0.9 twice: the lower index first
    assert top_k(s, 1, k=2).tolist() == [0, 2]
    assert rank(s, k=10).shape == (2, 5)  # k larger than the set: all of it
    assert rank(s, k=2, by="mean").tolist() == [[1, 3], [0, 2]]
    with pytest.raises(OutOfRangeError):
        top_k(s, 2)
    with pytest.raises(InputError):
        rank(s, k=0)
    with pytest.raises(InputError):
        rank(s, by="median")
    with pytest.raises(InputError, match="No images"):
        rank(_constructed(np.zeros((0, 2))))


def test_crop_box_centres_on_the_cell_and_stays_inside():
    assert crop_box(3, 3, (8, 8), (64, 64), 16) == (20, 20, 28.0, 28.0)  # cell (3,3) of stride 8: centre 28
    assert crop_box(0, 7, (8, 8), (64, 64), 16)[:2] == (0, 48)  # clamped at the edges
    assert crop_box(0, 0, (2, 2), (64, 64), 64)[:2] == (0, 0)


def test_dataset_examples_crop_the_image_and_the_map_around_the_peak(lab, batch):
    images, x = batch
    name = "stage3.module0.fused1"
    stats = channel_stats(lab, x, [name])[name]
    u8 = torch.round(images * 255).to(torch.uint8)
    asked = []

    def fetch(rows):
        asked.append(list(rows))
        return u8[rows]

    examples = dataset_examples(lab, stats, fetch, [0, 31], k=3, crop=32)
    assert set(examples) == {0, 31} and all(len(v) == 3 for v in examples.values())
    assert len(asked) == 1 and len(asked[0]) == len(set(asked[0])) <= 6  # each image read once
    for c, found in examples.items():
        assert [e.index for e in found] == top_k(stats, c, 3).tolist()
        for e in found:
            top, left, size = e.box
            np.testing.assert_array_equal(
                e.image, u8[e.index, :, top : top + size, left : left + size].permute(1, 2, 0)
            )
            assert e.activation.max() == pytest.approx(stats.max[e.index, c], rel=1e-5)  # the peak is in the window
            assert top <= e.peak[0] <= top + size and left <= e.peak[1] <= left + size
            assert e.image_id == stats.ids[e.index] and e.value == pytest.approx(stats.max[e.index, c])
    with pytest.raises(InputError, match="crop"):
        dataset_examples(lab, stats, fetch, [0], crop=100)
    with pytest.raises(OutOfRangeError):
        dataset_examples(lab, stats, fetch, [32])


def test_analyze_writes_unit_columns_that_rank_as_a_direct_computation(tmp_path):
    """``analyze lab:N --unit-map M`` writes M's per-channel statistics into its rows; read back and ranked, they equal
    channel_stats on the same crops; the examples come from the run's own source."""
    from hrnet_explorer.cli import main
    from hrnet_explorer.microscope.examples import read_channel_stats, run_images, run_model

    name = "stage3.module0.fused2"
    out = tmp_path / "run"
    args = ["analyze", "lab:12", "--out", str(out), "--input-size", "64", "-b", "5", "--workers", "0", "-q"]
    assert main([*args, "--unit-map", name, "--unit-map", "layer1"]) == 0
    stats = read_channel_stats(out, name)
    assert len(stats) == 12 and stats.channels == 64 and stats.input_size == (64, 64)
    lab = run_model(out, device="cpu")
    assert lab.name == "lab" and not lab.weights.is_random
    crops = render(range(12), size=64).images
    cfg = lab.data_config
    x = (crops - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    direct = channel_stats(lab, x, [name])[name]
    np.testing.assert_allclose(stats.mean, direct.mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.max, direct.max, rtol=1e-4, atol=1e-5)
    assert (stats.y == direct.y).mean() > 0.95 and stats.labels.tolist() == [i % 10 for i in range(12)]
    images = run_images(out, lab, stats)
    np.testing.assert_array_equal(images([3, 0]).numpy(), torch.round(crops[[3, 0]] * 255).to(torch.uint8).numpy())
    examples = dataset_examples(lab, stats, images, [5], k=3, crop=32)
    assert [e.index for e in examples[5]] == top_k(stats, 5, 3).tolist()
    with pytest.raises(NotFoundError, match="--unit-map stage4.module0.fused0"):
        read_channel_stats(out, "stage4.module0.fused0")
    with pytest.raises(UserError, match="manifest"):
        read_channel_stats(tmp_path / "nothing", name)

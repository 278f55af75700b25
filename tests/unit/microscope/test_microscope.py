"""The microscope's feature visualisation (hrnet_explorer.microscope.visualise): seeded, batched, cached; bad units are
one UserError each. CPU, tiny settings (64 px, a few steps)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from hrnet_explorer import load_model
from hrnet_explorer.errors import InputError, NotFoundError, OutOfRangeError, UserError
from hrnet_explorer.microscope import FVSettings, UnitCache, map_channels, model_key, visualise

TINY = FVSettings(steps=3, size=64)
MAP = "stage3.module0.fused1"


@pytest.fixture(scope="module")
def lab():
    return load_model("lab", device="cpu", cache=False)


def test_same_seed_same_image_other_seed_another(lab):
    a = visualise(lab, MAP, [0, 5], TINY, use_cache=False)
    b = visualise(lab, MAP, [0, 5], TINY, use_cache=False)
    other = visualise(lab, MAP, [0, 5], FVSettings(steps=3, size=64, seed=1), use_cache=False)
    assert a.images.shape == (2, 64, 64, 3) and a.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.activations, b.activations)
    assert np.abs(a.images.astype(int) - other.images.astype(int)).max() > 0


def test_a_unit_does_not_depend_on_its_batch(lab):
    together = visualise(lab, MAP, [3, 7, 11], TINY, use_cache=False)
    alone = visualise(lab, MAP, [7], TINY, use_cache=False)
    chunked = visualise(lab, MAP, [3, 7, 11], TINY, use_cache=False, batch_size=2)
    assert np.abs(together.image(7).astype(int) - alone.image(7).astype(int)).max() <= 1
    assert np.abs(together.images.astype(int) - chunked.images.astype(int)).max() <= 1


def test_the_optimisation_raises_the_unit(lab):
    """More steps → a higher activation of the unit than its starting image gives (the objective is maximised)."""
    short = visualise(lab, MAP, [0, 1, 2], FVSettings(steps=1, size=64, transforms=False), use_cache=False)
    long = visualise(lab, MAP, [0, 1, 2], FVSettings(steps=25, size=64, transforms=False), use_cache=False)
    assert (long.activations > short.activations).all()


def test_the_cache_hits_and_keys_on_settings_and_weights(lab, tmp_path):
    first = visualise(lab, MAP, [1, 2], TINY, cache=tmp_path)
    assert not first.cached.any() and first.seconds > 0
    files = sorted(tmp_path.rglob("*.png"))
    assert len(files) == 2 and files[0].parts[-3] == MAP
    again = visualise(lab, MAP, [2, 1, 4], TINY, cache=UnitCache(tmp_path))
    assert again.cached.tolist() == [True, True, False]
    np.testing.assert_array_equal(again.image(1), first.image(1))
    assert again.activations[1] == pytest.approx(first.activations[0], rel=1e-6)
    other = visualise(lab, MAP, [1], FVSettings(steps=2, size=64), cache=tmp_path)
    assert not other.cached.any()
    changed = load_model("lab", device="cpu", cache=False)
    with torch.no_grad():
        changed.model.conv1.weight.mul_(1.5)
    assert model_key(changed) != model_key(lab)
    assert not visualise(changed, MAP, [1], TINY, cache=tmp_path).cached.any()


def test_any_trace_name_is_a_target(lab):
    channels = map_channels(lab)
    for name in ("stage4.module0.edge3to0", "stage2.module0.presum1", "head.incre0", "logits"):
        v = visualise(lab, name, [channels[name] - 1], FVSettings(steps=1, size=64), use_cache=False)
        assert np.isfinite(v.activations).all()


@pytest.mark.parametrize(
    ("name", "channels", "error", "words"),
    [
        ("stage9.module0.fused0", None, NotFoundError, "not a map of this model"),
        (MAP, [32], OutOfRangeError, "channels 0..31"),
        (MAP, [-1], OutOfRangeError, "out of range"),
        (MAP, [], InputError, "No channels"),
        (MAP, [1, 1], InputError, "twice"),
        (MAP, ["a"], InputError, "is an int"),
    ],
)
def test_bad_units_are_one_user_error(lab, name, channels, error, words):
    with pytest.raises(error, match=words) as info:
        visualise(lab, name, channels, TINY, use_cache=False)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


def test_the_compiled_objective_gives_the_eager_images_map_by_map(lab, eager_compile, tmp_path):
    """Each map gets its own compiled forward (a second map must not reuse the first's graph), on the folded copy:
    the same images to a grey level; compiled results have their own cache entries."""
    for name in (MAP, "stage2.module0.fused0", MAP):
        eager = visualise(lab, name, [0, 3], TINY, cache=tmp_path)
        fast = visualise(lab, name, [0, 3], replace(TINY, compiled=True), cache=tmp_path)
        assert not fast.cached.any() or name == MAP and fast.cached.all()
        np.testing.assert_allclose(fast.activations, eager.activations, rtol=1e-3)
        assert np.abs(fast.images.astype(int) - eager.images.astype(int)).max() <= 2


def test_a_compiled_run_compiles_one_batch_shape(lab, eager_compile):
    """Three units in batches of two: the short last batch is filled up to the compiled shape, not compiled again,
    and every unit gets the image the eager run gives it."""
    from torch._dynamo.utils import counters

    name = "stage2.module0.fused1"  # a map no other test compiles
    before = counters["stats"]["unique_graphs"]
    fast = visualise(lab, name, [1, 4, 6], replace(TINY, compiled=True), use_cache=False, batch_size=2)
    assert counters["stats"]["unique_graphs"] - before == 1
    eager = visualise(lab, name, [1, 4, 6], TINY, use_cache=False)
    assert fast.images.shape == (3, 64, 64, 3) and list(fast.channels) == [1, 4, 6]
    np.testing.assert_allclose(fast.activations, eager.activations, rtol=1e-3)
    assert np.abs(fast.images.astype(int) - eager.images.astype(int)).max() <= 2


def test_settings_for_a_device():
    assert FVSettings.for_device("cpu", steps=3) == FVSettings(steps=3, precision="fp32")
    assert FVSettings.for_device("cpu", precision="bf16").precision == "bf16"


def test_bad_settings_are_one_user_error(lab):
    for kwargs in ({"size": 60}, {"steps": 0}, {"lr": 0.0}, {"precision": "fp16"}, {"compiled": "yes"}):
        with pytest.raises(InputError):
            FVSettings(**kwargs)
    with pytest.raises(InputError, match="CUDA"):
        visualise(lab, MAP, [0], FVSettings(steps=1, size=64, precision="bf16"), use_cache=False)
    with pytest.raises(InputError, match="batch_size"):
        visualise(lab, MAP, [0], TINY, use_cache=False, batch_size=0)


def test_the_model_is_left_as_found(lab):
    before = {k: v.clone() for k, v in lab.model.state_dict().items()}
    visualise(lab, MAP, [0], TINY, use_cache=False)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lab.model.modules())
    assert not lab.model.training
    assert all(torch.equal(before[k], v) for k, v in lab.model.state_dict().items())
    assert not any(p.grad is not None for p in lab.model.parameters())


def test_the_callers_random_state_is_left_alone(lab):
    """lucent's transforms draw from NumPy's global generator: seeded inside, the caller's state given back."""
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    torch_state = torch.random.get_rng_state()
    visualise(lab, MAP, [0], TINY, use_cache=False)
    np.testing.assert_array_equal(np.random.random(3), expected)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_the_model_key_is_the_same_in_another_process(lab):
    """The disk cache is shared across runs: its model key is a content hash, not an address."""
    import subprocess
    import sys

    code = "from hrnet_explorer import load_model; from hrnet_explorer.microscope import model_key; "
    code += "print(model_key(load_model('lab', device='cpu')))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert other.stdout.strip() == model_key(lab)

"""Variants as data, weight sources (file, offline hub cache, random), preprocessing, costs."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from hrnet_explorer import costs, preprocess, zoo
from hrnet_explorer.zoo import ASSETS, RandomWeightsWarning, WeightsError, load_model

# Exact parameter counts (random init, 1000 classes) and timm's published GMACs (fvcore), per variant.
EXPECTED = {
    "hrnet_w18_small": (13_187_464, 1.613),
    "hrnet_w18_small_v2": (15_597_464, 2.616),
    "hrnet_w18": (21_299_004, 4.318),
    "hrnet_w30": (37_712_220, 8.151),
    "hrnet_w32": (41_232_680, 8.968),
    "hrnet_w40": (57_557_160, 12.746),
    "hrnet_w44": (67_064_984, 14.940),
    "hrnet_w48": (77_469_864, 17.339),
    "hrnet_w64": (128_059_944, 28.970),
}


def test_the_nine_variants_are_the_registry():
    assert list(zoo.VARIANTS) == list(EXPECTED)
    for name in zoo.VARIANTS:
        assert name in timm.list_models("hrnet*")


@pytest.mark.parametrize("variant", list(EXPECTED))
def test_params_and_macs_match_card_and_timm(variant):
    report = costs.variant_costs(variant, measure=True)
    assert (report.params, report.macs) == costs.MEASURED_224[variant]  # the recorded counts are the measured ones
    params, gmacs = EXPECTED[variant]
    assert report.params == params
    assert round(report.params / 1e6, 2) == pytest.approx(report.card_params_m)
    assert report.macs / 1e9 == pytest.approx(gmacs, rel=0.005)
    # The card's FLOPs column is ~1.285 x MACs for every variant (see costs.CARD_FLOPS_EXPLANATION).
    assert 1.283 < report.card_flops_over_macs < 1.286


def test_weight_tags_include_card_default_and_ssld():
    tags = zoo.weight_tags("hrnet_w18")
    assert {"hrnet_w18.ms_in1k", "hrnet_w18.ms_aug_in1k", "hrnet_w18_ssld.paddle_in1k"} <= set(tags)
    assert zoo.get_variant("w18").default_tag == "ms_aug_in1k"
    assert zoo.get_variant("hrnet_w18_small").default_tag == "gluon_in1k"
    assert zoo.get_variant("w48").default_tag == "ms_in1k"
    assert all(v.card_tag == "ms_in1k" for v in zoo.VARIANTS.values())


def test_unknown_variant_and_weights_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown variant 'w99'.*hrnet_w18_small"):
        load_model("w99", "random", device="cpu")
    with pytest.raises(WeightsError, match="Unknown weights 'imagenet22k'.*ms_in1k"):
        load_model("hrnet_w18_small", "imagenet22k", device="cpu")
    with pytest.raises(ValueError, match="precision"):
        load_model("hrnet_w18_small", "random", device="cpu", precision="fp8")
    with pytest.raises(ValueError, match="CUDA is not available|Unknown device"):
        load_model("hrnet_w18_small", "random", device="cuda" if not torch.cuda.is_available() else "tpu")


def test_hub_path_offline_reads_a_prefilled_cache(hub_cache):
    state = hub_cache("hrnet_w18_small.gluon_in1k", seed=3)  # the default tag
    loaded = load_model("hrnet_w18_small", device="cpu")
    assert loaded.weights.kind == "hub" and not loaded.weights.is_random
    assert loaded.weights.tag == "hrnet_w18_small.gluon_in1k"
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert loaded.data_config["interpolation"] == "bicubic"  # the gluon tag's preprocessing


def test_hub_path_with_explicit_tag(hub_cache):
    state = hub_cache("hrnet_w18_small.ms_in1k", seed=4)
    loaded = load_model("w18_small", "ms_in1k", device="cpu")
    assert loaded.weights.tag == "hrnet_w18_small.ms_in1k"
    assert torch.equal(loaded.model.conv1.weight, state["conv1.weight"])
    assert loaded.data_config["interpolation"] == "bilinear"


def test_offline_without_cache_falls_back_to_random_loudly():
    with pytest.warns(RandomWeightsWarning, match="RANDOM"):
        loaded = load_model("hrnet_w18_small", device="cpu")
    assert loaded.weights.is_random
    assert "not in the Hugging Face cache" in loaded.weights.detail
    assert "meaningless" in loaded.weights.describe()


def test_random_only_when_asked():
    with pytest.warns(RandomWeightsWarning):
        loaded = load_model("hrnet_w18_small", "random", device="cpu")
    assert loaded.weights.kind == "random" and loaded.weights.detail == "asked for"
    assert not loaded.model.training


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_checkpoint_loads(tmp_path, suffix):
    torch.manual_seed(7)
    state = timm.create_model("hrnet_w18_small").state_dict()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    loaded = load_model("hrnet_w18_small", path, device="cpu")
    assert loaded.weights.kind == "file" and loaded.weights.detail == str(path.resolve())
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_missing_corrupt_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_model("hrnet_w18_small", tmp_path / "nope.safetensors", device="cpu")
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(WeightsError, match="Could not read checkpoint"):
        load_model("hrnet_w18_small", bad, device="cpu")
    bad_pth = tmp_path / "corrupt.pth"
    bad_pth.write_bytes(b"not a zip file")
    with pytest.raises(WeightsError, match="Could not read checkpoint"):
        load_model("hrnet_w18_small", bad_pth, device="cpu")
    image_pth = tmp_path / "photo.pth"
    image_pth.write_bytes((ASSETS / "balloons.jpg").read_bytes())
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint") as refused:
        load_model("hrnet_w18_small", image_pth, device="cpu")
    assert "\n" not in str(refused.value)  # one line, not torch's six lines of advice
    other = tmp_path / "w18.safetensors"
    save_file({k: v.contiguous() for k, v in timm.create_model("hrnet_w18").state_dict().items()}, str(other))
    with pytest.raises(WeightsError, match="does not fit hrnet_w18_small"):
        load_model("hrnet_w18_small", other, device="cpu")


def test_model_cache_is_bounded_and_reused():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        a = load_model("hrnet_w18_small", "random", device="cpu")
        assert load_model("hrnet_w18_small", "random", device="cpu") is a
        load_model("hrnet_w18_small_v2", "random", device="cpu")
        load_model("hrnet_w18", "random", device="cpu")
    assert len(zoo._CACHE) == zoo.MODEL_CACHE_SIZE == 2
    assert all(key[0] != "hrnet_w18_small" for key in zoo._CACHE)  # least recently used went first


def _reference_transform(img: Image.Image, size: int, crop_pct: float, interpolation: str) -> torch.Tensor:
    """Eval preprocessing written out by hand: resize the short side to size/crop_pct, center crop, normalise."""
    mode = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}[interpolation]
    out = TF.resize(img, int(size / crop_pct), interpolation=mode)
    out = TF.center_crop(out, [size, size])
    return TF.normalize(TF.to_tensor(out), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


@pytest.mark.parametrize(
    ("full_tag", "crop_pct", "interpolation"),
    [
        ("hrnet_w18.ms_in1k", 0.875, "bilinear"),
        ("hrnet_w18_small.gluon_in1k", 0.875, "bicubic"),
        ("hrnet_w18.ms_aug_in1k", 0.95, "bilinear"),
    ],
)
def test_preprocessing_follows_each_tag(full_tag, crop_pct, interpolation):
    model = timm.create_model(full_tag, pretrained=False)
    config = timm.data.resolve_model_data_config(model)
    assert (config["crop_pct"], config["interpolation"]) == (crop_pct, interpolation)
    img = Image.effect_mandelbrot((333, 250), (-2, -1.2, 1, 1.2), 64).convert("RGB")
    ours = preprocess(img, config)
    timm_own = timm.data.create_transform(**config)(img).unsqueeze(0)
    assert torch.equal(ours, timm_own)
    assert torch.allclose(ours[0], _reference_transform(img, 224, crop_pct, interpolation), atol=1e-6)


def test_timm_hrnet_table_contract():
    """timm's private cfg_cls, read only by zoo.timm_hrnet, says what timm builds: the pinned range keeps it."""
    from packaging.version import Version

    from hrnet_explorer.zoo import timm_hrnet

    assert Version("1.0.31") <= Version(timm.__version__) < Version("1.1")  # pyproject's pin
    for name in (*zoo.VARIANTS, "hrnet_w18_ssld"):
        cfg = timm_hrnet.architecture_config(name)
        assert cfg is not None and isinstance(cfg["stem_width"], int), name
        with torch.device("meta"):  # the structure without the weights' memory or their init
            net = timm.create_model(name, pretrained=False)
        assert net.conv1.out_channels == cfg["stem_width"]
        for s in timm_hrnet.STAGES[1:]:
            stage = cfg[f"stage{s}"]
            modules = getattr(net, f"stage{s}")
            assert len(modules) == stage["num_modules"] == timm_hrnet.module_counts(name)[s], (name, s)
            widths = [branch[-1].conv2.out_channels for branch in modules[0].branches]
            assert widths == list(stage["num_channels"]) and len(widths) == stage["num_branches"], (name, s)
    cfg = timm_hrnet.architecture_config("hrnet_w18")
    cfg["stage4"]["num_modules"] = 99  # a copy: the caller may change it, timm's table stays
    assert timm_hrnet.module_counts("hrnet_w18")[4] == 3
    assert timm_hrnet.architecture_config("resnet50") is None

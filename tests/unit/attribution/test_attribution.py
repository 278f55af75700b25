"""Attribution (Captum): completeness, per-stream methods, knockouts, hook hygiene, every variant, the CLI."""

from __future__ import annotations

import copy
import functools
import gc
import json
import threading
import warnings
import weakref

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from PIL import Image

from hrnet_explorer import attribution as A
from hrnet_explorer import zoo
from hrnet_explorer.cli import main as cli_main
from hrnet_explorer.copies import _CACHE as COPIES
from hrnet_explorer.copies import private_copy
from hrnet_explorer.trace import module_refs, trace


def _image(size: int = 224, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(1, 3, size, size)


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def _load_random(variant: str) -> zoo.LoadedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        torch.manual_seed(0)
        return zoo.load_model(variant, "random", device="cpu", cache=False)


_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
)


def _state(model: torch.nn.Module) -> dict:
    """Everything attribution must leave alone: hooks, flags, modes, gradients."""
    return {
        name: (
            tuple(len(getattr(m, d, {})) for d in _HOOK_DICTS),
            getattr(m, "inplace", None),
            m.training,
            tuple((p.requires_grad, p.grad is None) for p in m.parameters(recurse=False)),
        )
        for name, m in model.named_modules()
    }


def _assert_no_hooks(model: torch.nn.Module) -> None:
    for name, m in model.named_modules():
        for d in _HOOK_DICTS:
            assert not getattr(m, d, {}), f"{name}.{d} still holds hooks"


def _assert_copies_clean(net: torch.nn.Module) -> None:
    entry = COPIES.get(net)
    if entry is not None:
        for held in entry.copies.values():
            _assert_no_hooks(held.net)
            assert not held.lock._is_owned()


# ---------------------------------------------------------------------------------------------- IG


def test_ig_completeness(w18_small):
    x = _image(224)
    res = A.attribute_pixels(w18_small, x, "ig")  # defaults: 32 steps, zeros baseline
    logits = _logits(w18_small.model, torch.cat([x, torch.zeros_like(x)]))
    assert res.target == int(logits[0].argmax())
    diff = float(logits[0, res.target] - logits[1, res.target])
    total = float(res.attributions.double().sum())
    assert abs(diff) > 0.1
    assert abs(total - diff) < 1e-2 * abs(diff)
    # The reported delta agrees with the one measured on the caller's model (fast copy: fp32 rounding).
    assert res.delta == pytest.approx(total - diff, abs=1e-3 * abs(diff))
    assert res.logit == pytest.approx(float(logits[0, res.target]), rel=1e-4)
    assert res.baseline_logit == pytest.approx(float(logits[1, res.target]), abs=1e-3)
    # "sum" heatmap: the map sums to the total attribution.
    assert float(res.heatmap.double().sum()) == pytest.approx(total, rel=1e-4, abs=1e-5)
    assert res.settings["n_steps"] == 32 and res.settings["internal_batch_size"] == 8
    assert res.settings["model"].startswith("fast")


def test_ig_exact_copy_is_plain_captum(w18_small):
    x = _image(96, seed=1)
    res = A.attribute_pixels(w18_small, x, "ig", n_steps=8, internal_batch_size=4, fast=False, target=3)
    plain = IntegratedGradients(w18_small.model).attribute(x, target=3, n_steps=8, internal_batch_size=4)
    assert res.target == 3 and res.settings["model"] == "exact copy"
    torch.testing.assert_close(res.attributions, plain, rtol=1e-5, atol=1e-7 * float(plain.abs().max()))


def test_fast_copy_matches_model(w18_small):
    x = _image(64)
    exact = private_copy(w18_small.model, "exact").net
    fast = private_copy(w18_small.model, "folded").net
    assert fast is not exact and not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert torch.equal(_logits(exact, x), _logits(w18_small.model, x))  # exact: bitwise
    ref = _logits(w18_small.model, x)
    torch.testing.assert_close(
        _logits(fast, x.contiguous(memory_format=torch.channels_last)), ref, rtol=1e-4, atol=1e-4
    )


# ---------------------------------------------------------------------------------------------- pixel methods


@pytest.mark.parametrize("method", A.PIXEL_METHODS)
def test_pixel_method_shapes_and_target(w18_small, method):
    x = _image(64, seed=2)
    top1 = int(_logits(w18_small.model, x).argmax())
    small = {"ig": {"n_steps": 8}, "smoothgrad": {"nt_samples": 4}, "gradshap": {"n_samples": 4}}.get(method, {})
    res = A.attribute_pixels(w18_small, x, method, **small)
    assert res.method == method and res.target == top1
    assert res.attributions.shape == (1, 3, 64, 64) and res.attributions.dtype == torch.float32
    assert res.heatmap.shape == (64, 64) and res.heatmap.dtype == torch.float32
    assert res.attributions.device.type == "cpu" and torch.isfinite(res.attributions).all()
    assert (res.delta is None) == (method not in ("ig", "gradshap"))
    assert json.dumps(res.to_dict())
    other = A.attribute_pixels(w18_small, x, method, target=7, **small)
    assert other.target == 7 and not torch.equal(other.attributions, res.attributions)
    if method in ("saliency", "smoothgrad"):
        assert (res.heatmap >= 0).all()


def test_pixel_options_and_errors(w18_small):
    x = _image(64)
    with pytest.raises(ValueError, match="ig, saliency, smoothgrad, gradshap, occlusion"):
        A.attribute_pixels(w18_small, x, "deeplift")
    with pytest.raises(ValueError, match="n_steps"):
        A.attribute_pixels(w18_small, x, "ig", steps=4)
    with pytest.raises(ValueError, match="0..999"):
        A.attribute_pixels(w18_small, x, "saliency", target=1000)
    with pytest.raises(ValueError, match="one image"):
        A.attribute_pixels(w18_small, torch.randn(2, 3, 64, 64), "saliency")
    with pytest.raises(ValueError, match="multiples of 32"):
        A.attribute_pixels(w18_small, torch.randn(1, 3, 60, 64), "saliency")
    with pytest.raises(ValueError, match="baseline"):
        A.attribute_pixels(w18_small, x, "ig", baseline="grey", n_steps=2)
    occ = A.attribute_pixels(w18_small, x, "occlusion")
    assert occ.settings["window"] == [16, 16] and occ.settings["stride"] == [8, 8] and occ.settings["evaluations"] == 49
    occ = A.attribute_pixels(w18_small, x, "occlusion", window=(32, 16), stride=16, baseline="black")
    assert occ.settings["evaluations"] == 3 * 4
    ig = A.attribute_pixels(w18_small, x, "ig", n_steps=4, baseline="blur", integration="riemann_trapezoid")
    assert ig.settings["integration"] == "riemann_trapezoid" and ig.settings["baseline"] == "blur"
    sal = A.attribute_pixels(w18_small, x, "saliency", reduction="abs_sum")
    assert torch.equal(sal.heatmap, sal.attributions[0].abs().sum(0))


def test_refuses_without_gradients_but_forward_only_methods_work(w18_small):
    x = _image(64)
    for ctx in (torch.no_grad, torch.inference_mode):
        with ctx():
            for fn in (
                lambda: A.attribute_pixels(w18_small, x, "ig", n_steps=2),
                lambda: A.attribute_pixels(w18_small, x, "smoothgrad", nt_samples=2),
                lambda: A.gradcam_streams(w18_small, x),
                lambda: A.stream_shares(w18_small, x, n_steps=2),
            ):
                with pytest.raises(RuntimeError, match=r"no_grad\(\) or torch.inference_mode"):
                    fn()
            assert A.attribute_pixels(w18_small, x, "occlusion").heatmap.shape == (64, 64)
            assert A.knockout(w18_small, x, stream=1).edges_removed > 0
    # An input made under inference_mode is usable afterwards (it is cloned).
    with torch.inference_mode():
        xi = x.clone()
    assert A.attribute_pixels(w18_small, xi, "saliency").heatmap.shape == (64, 64)


def test_copies_built_under_inference_mode_still_give_gradients():
    loaded = _load_random("hrnet_w18_small")
    x = _image(64)
    with torch.inference_mode():  # the first calls build the private copies
        A.knockout(loaded, x, stream=0)
        A.attribute_pixels(loaded, x, "occlusion", window=32, stride=32)
    for fast in (True, False):
        assert A.attribute_pixels(loaded, x, "saliency", fast=fast).heatmap.shape == (64, 64)
    assert A.stream_shares(loaded, x, n_steps=2).shares.shape == (4,)


def test_image_input(w18_small):
    rng = np.random.default_rng(0)
    img = Image.fromarray((rng.random((90, 120, 3)) * 255).astype(np.uint8))
    res = A.attribute_pixels(w18_small, img, "saliency", input_size=64)
    assert res.heatmap.shape == (64, 64) and res.settings["input_size"] == [64, 64]
    assert len(A.gradcam_streams(w18_small, img, input_size=64).maps) == 4


def test_training_mode_is_refused(w18_small):
    w18_small.model.train()
    try:
        with pytest.raises(ValueError, match="training mode"):
            A.attribute_pixels(w18_small, _image(64), "saliency")
    finally:
        w18_small.model.eval()


# ---------------------------------------------------------------------------------------------- streams


def test_gradcam_streams_shapes_and_hand_computation(w18_small):
    x = _image(128, seed=3)
    res = A.gradcam_streams(w18_small, x)
    assert (res.stage, res.module, res.name) == (4, 0, "stage4.module0")
    t = trace(w18_small, x, keep="outputs")
    assert [tuple(r.shape) for r in res.raw] == [tuple(f.shape[-2:]) for f in t.stage_outputs(4)]
    assert all(m.shape == (128, 128) and m.dtype == torch.float32 and (m >= 0).all() for m in res.maps)
    # Independent Grad-CAM for every stream (not only fuse_act's last call), on a private copy.
    net = copy.deepcopy(w18_small.model)
    captured = []
    net.stage4[0].register_forward_hook(lambda mod, args, out: captured.extend(out))
    logits = net(x)
    grads = torch.autograd.grad(logits[0, res.target], captured)
    for k, (a, g) in enumerate(zip(captured, grads, strict=True)):
        cam = (g.mean((2, 3), keepdim=True) * a).sum(1)[0].clamp_min(0)
        torch.testing.assert_close(
            res.raw[k], cam.detach(), rtol=1e-4, atol=1e-6 * float(cam.detach().abs().max()) + 1e-9
        )
    assert len(A.gradcam_streams(w18_small, x, stage=2, module=0).maps) == 2
    assert len(A.gradcam_streams(w18_small, x, stage=3, module=-1, target=5).raw) == 3
    for bad in ({"stage": 1}, {"stage": 5}, {"stage": 4, "module": 1}, {"stage": 4, "module": -2}):
        with pytest.raises(ValueError, match="stage|module"):
            A.gradcam_streams(w18_small, x, **bad)


def test_body_and_head_reproduce_the_model(w18_small):
    x = _image(64)
    net = private_copy(w18_small.model, "exact").net
    with torch.no_grad():
        assert torch.equal(A._head(net, *A._body(net, x)), w18_small.model(x))


def test_stream_shares_completeness(w18_small):
    x = _image(224, seed=4)
    res = A.stream_shares(w18_small, x)
    logits = _logits(w18_small.model, torch.cat([x, torch.zeros_like(x)]))
    diff = float(logits[0, res.target] - logits[1, res.target])
    assert res.target == int(logits[0].argmax())
    assert res.shares.shape == (4,) and res.shares.dtype == torch.float32
    assert float(res.shares.double().sum()) == pytest.approx(diff, abs=2e-2 * abs(diff))
    assert res.logit - res.baseline_logit == pytest.approx(diff, rel=1e-4, abs=1e-4)
    assert res.delta == pytest.approx(float(res.shares.double().sum()) - (res.logit - res.baseline_logit), abs=1e-4)
    assert abs(res.delta) < 1e-2 * abs(diff) and res.relative_delta < 1e-2
    assert res.n_steps == 32 and len(res.attributions) == 4
    assert [tuple(a.shape) for a in res.attributions] == [(16 * 2**k, 56 // 2**k, 56 // 2**k) for k in range(4)]
    assert float(res.fractions.sum()) == pytest.approx(1.0, abs=2e-2)
    assert json.dumps(res.to_dict())
    other = A.stream_shares(w18_small, x, target=11, n_steps=8, baseline="black")
    assert other.target == 11 and other.baseline == "black" and other.relative_delta < 0.1


# ---------------------------------------------------------------------------------------------- knockouts


def test_knockout_nothing_is_exact_and_model_unchanged(w18_small):
    x = _image(96, seed=5)
    net = w18_small.model
    before_logits, before_state = _logits(net, x), _state(net)
    res = A.knockout(w18_small, x)
    assert res.description == "nothing removed" and res.edges_removed == 0
    assert res.logit_after == res.logit_before and res.prob_after == res.prob_before
    assert res.top_after == res.top_before
    assert res.logit_before == float(before_logits[0, res.target])  # the exact copy is bitwise the model
    for kwargs in ({"stream": 0}, {"stream": 3, "stage": 4}, {"edge": (3, 0), "stage": 4, "module": 0}):
        out = A.knockout(w18_small, x, **kwargs)
        assert out.logit_after != out.logit_before
        assert out.logit_before == res.logit_before and out.target == res.target
    assert torch.equal(_logits(net, x), before_logits)
    assert _state(net) == before_state
    _assert_no_hooks(net)
    _assert_copies_clean(net)


def test_knockout_matches_zeroed_weights(w18_small):
    """Zeroing an edge's last BatchNorm (weight and bias) must give the knockout's logits exactly."""
    x = _image(64, seed=6)
    res = A.knockout(w18_small, x, edge=(3, 0), stage=4, module=0, target=1, topk=3)
    assert res.description == "edge 3→0 removed in stage4.module0"
    assert res.edge == (3, 0) and res.modules == ("stage4.module0",) and len(res.top_after) == 3
    net = copy.deepcopy(w18_small.model)
    bn = net.stage4[0].fuse_layers[0][3][1]
    torch.nn.init.zeros_(bn.weight)
    torch.nn.init.zeros_(bn.bias)
    logits = _logits(net, x)[0]
    assert res.logit_after == pytest.approx(float(logits[1]), abs=1e-5)
    assert res.prob_after == pytest.approx(float(logits.softmax(-1)[1]), abs=1e-6)


def test_knockout_selection(w18_small):
    x = _image(64)
    n_modules = len(module_refs(w18_small.model))
    every = A.knockout(w18_small, x, stream=0)
    assert every.description == "stream 0 removed everywhere" and len(every.modules) == n_modules
    assert every.edges_removed == 1 + 2 + 3  # w18_small: one module per stage, 2/3/4 streams
    assert A.knockout(w18_small, x, stream=3).modules == ("stage4.module0",)
    assert A.knockout(w18_small, x, stream=1, stage=2, self_edge=True).edges_removed == 2
    assert A.knockout(w18_small, x, edge=(1, 1), stage=3, module=-1).edges_removed == 1
    assert A.knockout(w18_small, x, edge=(2, 1)).modules == ("stage3.module0", "stage4.module0")
    bad = [
        {"stream": 4},
        {"stream": -1},
        {"stream": 2, "stage": 2},
        {"edge": (0, 3), "stage": 3},
        {"edge": (0,)},
        {"stream": 0, "edge": (0, 1)},
        {"stream": 0, "module": 0},
        {"stream": 0, "stage": 1},
        {"stream": 0, "stage": 4, "module": 1},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            A.knockout(w18_small, x, **kwargs)


def test_resolution_reliance(w18_small):
    x = _image(64, seed=7)
    profile = A.resolution_reliance(w18_small, x)
    assert [r.stream for r in profile] == [0, 1, 2, 3]
    assert [r.description for r in profile] == [f"stream {k} removed everywhere" for k in range(4)]
    assert len({r.target for r in profile}) == 1 and len({r.logit_before for r in profile}) == 1
    for r in profile:
        single = A.knockout(w18_small, x, stream=r.stream, target=r.target)
        assert single.logit_after == r.logit_after
        assert r.logit_delta == r.logit_after - r.logit_before and json.dumps(r.to_dict())


# ---------------------------------------------------------------------------------------------- hygiene


def _run_everything(loaded, x):
    for method in A.PIXEL_METHODS:
        A.attribute_pixels(loaded, x, method, **_SMALL[method])
        A.attribute_pixels(loaded, x, method, fast=False, **_SMALL[method])
    A.gradcam_streams(loaded, x)
    A.gradcam_streams(loaded, x, stage=2, module=0)
    A.stream_shares(loaded, x, n_steps=4)
    A.knockout(loaded, x, stream=1)
    A.resolution_reliance(loaded, x)


def test_no_hooks_or_flag_changes_after_every_method(w18_small):
    x = _image(64)
    net = w18_small.model
    before_state, before_logits = _state(net), _logits(net, x)
    global_hooks = len(torch.nn.modules.module._global_forward_hooks)
    _run_everything(w18_small, x)
    assert _state(net) == before_state
    assert torch.equal(_logits(net, x), before_logits)
    assert len(torch.nn.modules.module._global_forward_hooks) == global_hooks
    _assert_no_hooks(net)
    _assert_copies_clean(net)
    assert any(isinstance(m, torch.nn.ReLU) and m.inplace for m in net.modules())  # the caller's stay in-place


def test_hooks_removed_when_the_forward_raises(w18_small, monkeypatch):
    x = _image(64)
    net = w18_small.model
    before = _state(net)
    entry = private_copy(net, "exact")
    fast = private_copy(net, "folded").net

    def boom(*args, **kwargs):
        raise RuntimeError("boom mid-forward")

    monkeypatch.setattr(entry.net.classifier, "forward", boom)
    monkeypatch.setattr(fast.classifier, "forward", boom)
    calls = [
        lambda: A.gradcam_streams(w18_small, x),
        lambda: A.knockout(w18_small, x, stream=0, target=0),
        lambda: A.resolution_reliance(w18_small, x, target=0),
        lambda: A.stream_shares(w18_small, x, n_steps=2),
    ] + [
        functools.partial(A.attribute_pixels, w18_small, x, m, target=0, fast=f, **_SMALL[m])
        for m in A.PIXEL_METHODS
        for f in (True, False)
    ]
    for call in calls:
        with pytest.raises(RuntimeError, match="boom"):
            call()
        _assert_no_hooks(entry.net)
        _assert_no_hooks(fast)
        assert not entry.lock._is_owned()
    monkeypatch.undo()
    A.clear_attribution_cache()
    assert _state(net) == before
    _assert_no_hooks(net)


def test_private_copies_cached_rebuilt_and_released():
    loaded = _load_random("hrnet_w18_small")
    x = _image(64)
    A.knockout(loaded, x)
    entry = COPIES[loaded.model]
    A.knockout(loaded, x, stream=0)
    assert COPIES[loaded.model] is entry  # reused
    state = loaded.model.state_dict()
    state["classifier.bias"] = state["classifier.bias"] + 1.0
    loaded.model.load_state_dict(state)
    res = A.knockout(loaded, x)
    assert COPIES[loaded.model] is not entry  # new weights: rebuilt
    assert res.logit_before == float(_logits(loaded.model, x)[0, res.target])
    ref = weakref.ref(loaded.model)
    del loaded, entry
    gc.collect()
    assert ref() is None  # the cache does not keep the model alive


def test_concurrent_calls_do_not_see_each_others_hooks(w18_small):
    x = _image(64, seed=8)
    expected = {
        "plain": A.knockout(w18_small, x).logit_after,
        "ko": A.knockout(w18_small, x, stream=0).logit_after,
        "cam": A.gradcam_streams(w18_small, x).raw[3],
        "sal": A.attribute_pixels(w18_small, x, "saliency", fast=False).attributions,
        "shares": A.stream_shares(w18_small, x, n_steps=2).shares,
    }
    results: dict[str, list] = {k: [] for k in expected}
    errors = []

    def work(kind):
        try:
            for _ in range(4):
                if kind == "cam":
                    results[kind].append(A.gradcam_streams(w18_small, x).raw[3])
                elif kind == "sal":
                    results[kind].append(A.attribute_pixels(w18_small, x, "saliency", fast=False).attributions)
                elif kind == "shares":
                    results[kind].append(A.stream_shares(w18_small, x, n_steps=2).shares)
                else:
                    results[kind].append(A.knockout(w18_small, x, stream=0 if kind == "ko" else None).logit_after)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in expected]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert all(v == expected["plain"] for v in results["plain"])
    assert all(v == expected["ko"] for v in results["ko"])
    for kind in ("cam", "sal", "shares"):
        assert all(torch.equal(v, expected[kind]) for v in results[kind]), kind


# ---------------------------------------------------------------------------------------------- every variant

_SMALL = {
    "ig": {"n_steps": 4},
    "saliency": {},
    "smoothgrad": {"nt_samples": 2},
    "gradshap": {"n_samples": 2},
    "occlusion": {"window": 32, "stride": 32},
}


@pytest.mark.parametrize("variant", list(zoo.VARIANTS))
def test_every_method_on_every_variant(variant):
    loaded = _load_random(variant)
    x = _image(64)
    for method in A.PIXEL_METHODS:
        res = A.attribute_pixels(loaded, x, method, **_SMALL[method])
        assert res.attributions.shape == (1, 3, 64, 64) and res.heatmap.shape == (64, 64), method
        assert torch.isfinite(res.attributions).all(), method
    cam = A.gradcam_streams(loaded, x)
    assert [tuple(r.shape) for r in cam.raw] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert all(m.shape == (64, 64) for m in cam.maps)
    shares = A.stream_shares(loaded, x, n_steps=4)
    assert shares.shares.shape == (4,) and np.isfinite(shares.delta)
    ko = A.knockout(loaded, x, stream=0, stage=4, module=-1, topk=3)
    assert len(ko.top_after) == 3 and ko.edges_removed == 3
    assert A.knockout(loaded, x).logit_after == ko.logit_before
    _assert_no_hooks(loaded.model)
    _assert_copies_clean(loaded.model)


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "img.png"
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((70, 90, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    "method, extra",
    [
        ("ig", ["--steps", "4"]),
        ("saliency", []),
        ("smoothgrad", []),
        ("gradshap", []),
        ("occlusion", []),
        ("gradcam-streams", ["--stage", "3"]),
        ("stream-shares", ["--steps", "4"]),
        ("knockout", []),
        ("knockout", ["--edge", "3,0", "--stage", "4"]),
    ],
)
def test_cli_explain_json(image_file, capsys, method, extra):
    argv = ["explain", str(image_file), "-w", "random", "--device", "cpu", "--input-size", "64", "-m", method]
    assert cli_main([*argv, *extra, "--json", "--target", "tabby cat"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == method and out["random_weights"] and out["input_size"] == [64, 64]
    result = out["result"]
    if method == "knockout":
        assert len(result["results"]) == (1 if extra else 4)
        assert result["results"][0]["target"] == 281
    else:
        assert result["target"] == 281


def test_cli_explain_outputs_and_errors(image_file, tmp_path, capsys):
    base = ["explain", str(image_file), "-w", "random", "--device", "cpu", "--input-size", "64"]
    png, npz, js = tmp_path / "a.png", tmp_path / "a.npz", tmp_path / "a.json"
    assert cli_main([*base, "-m", "gradcam-streams", "--out", str(png)]) == 0
    width, height = Image.open(png).size
    assert width == 4 * 64 and height > 64  # four labelled 64 px panels side by side, a colour bar below
    assert cli_main([*base, "-m", "saliency", "--out", str(npz)]) == 0
    assert np.load(npz)["heatmap"].shape == (64, 64)
    assert cli_main([*base, "-m", "stream-shares", "--steps", "2", "--out", str(js)]) == 0
    assert len(json.loads(js.read_text())["result"]["shares"]) == 4
    text = capsys.readouterr().out
    assert "stream 3" in text and "completeness delta" in text
    for bad in (
        ["-m", "knockout", "--out", str(tmp_path / "k.png")],
        ["-m", "ig", "--out", str(tmp_path / "k.txt")],
        ["-m", "ig", "--stream", "1"],
        ["-m", "knockout", "--stream", "7"],
        ["-m", "saliency", "--target", "cat"],
    ):
        assert cli_main([*base, *bad]) == 2
        assert "hrnet-explorer: error:" in capsys.readouterr().err


def test_graphs_option_is_checked_on_cpu(w18_small):
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        A.attribute_pixels(w18_small, x, "ig", n_steps=4, graphs=True)
    with pytest.raises(ValueError, match="method='ig' only"):
        A.attribute_pixels(w18_small, x, "saliency", graphs=True)
    assert "CUDA graphs" not in A.attribute_pixels(w18_small, x, "ig", n_steps=4).settings["model"]

"""The trace is exact, complete, leaves no hooks behind and does not leak."""

from __future__ import annotations

import gc
import warnings
import weakref

import psutil
import pytest
import torch

from hrnet_explorer import trace, trace_names, zoo
from hrnet_explorer.analyses import reconstruction_error
from hrnet_explorer.copies import private_copy
from hrnet_explorer.report import trace_summary

EXPECTED_MODULES = {  # modules in stage 2/3/4, from timm's HRNet configs
    "hrnet_w18_small": (1, 1, 1),
    "hrnet_w18_small_v2": (1, 3, 2),
    **{f"hrnet_w{w}": (1, 4, 3) for w in (18, 30, 32, 40, 44, 48, 64)},
}


def all_hooks(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def module_flags(model: torch.nn.Module) -> list:
    return [(name, m.training, getattr(m, "inplace", None)) for name, m in model.named_modules()]


def check_exact(model: torch.nn.Module, x: torch.Tensor, variant: str) -> None:
    with torch.inference_mode():
        plain = model(x)
    result = trace(model, x, exact=True)
    assert result.exact
    assert torch.equal(result.logits, plain)  # fp32: bit-identical to a plain timm forward
    assert set(result.names()) == set(trace_names(model))
    assert [r.stage for r in result.modules].count(3) == EXPECTED_MODULES[variant][1]
    for ref in result.modules:
        n, p = ref.num_streams, ref.name
        assert n == ref.stage
        for i in range(n):
            fused = result[f"{p}.fused{i}"]
            assert fused.shape[-1] * 2**i == result[f"{p}.fused0"].shape[-1]  # stream i has stride 4·2^i
            for j in range(n):
                assert result[f"{p}.edge{j}to{i}"].shape == fused.shape
        assert reconstruction_error(result, ref.stage, ref.index) <= 1e-6
        stats = result.fusion(ref.stage, ref.index)
        assert (stats.energy_share >= 0).all()
        assert torch.allclose(stats.energy_share.sum(-1), torch.ones(x.shape[0], n), atol=1e-6)
        for measure in ("agreement", "relu_share"):  # float32 dot products over ~10^5 elements
            assert torch.allclose(getattr(stats, measure).sum(-1), torch.ones(x.shape[0], n), atol=1e-4), measure
        assert ((stats.active_fraction >= 0) & (stats.active_fraction <= 1)).all()
    # Stem at stride 4, head widths 128·2^k, final 2048 features.
    assert result["stem"].shape[-1] == x.shape[-1] // 4
    assert [result[f"head.incre{k}"].shape[1] for k in range(4)] == [128, 256, 512, 1024]
    assert result["head.final"].shape[1] == 2048 and result["head.pooled"].shape == (x.shape[0], 2048)
    assert all_hooks(model) == 0


@pytest.mark.parametrize("variant", list(zoo.VARIANTS))
def test_trace_is_exact_for_every_variant(variant):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        model = zoo.load_model(variant, "random", device="cpu", cache=False).model
    check_exact(model, torch.randn(2, 3, 64, 64), variant)  # small batch of 2
    check_exact(model, torch.randn(1, 3, 224, 224), variant)  # the size the weights were trained at


def test_names_are_in_forward_order(w18_small):
    result = trace(w18_small, torch.randn(1, 3, 64, 64))
    assert result.names() == trace_names(w18_small)
    assert result.names()[:4] == ["stem", "layer1", "transition1.stream0", "transition1.stream1"]
    assert "transition2.stream2" in result.names() and "transition2.stream0" not in result.names()


def test_no_hooks_remain_after_an_exception_inside_the_forward(w18_small):
    exact = private_copy(w18_small.model, "exact")  # what the exact trace runs

    def explode(module, args, output):
        raise RuntimeError("boom inside stage3")

    ours = exact.net.stage3[0].fuse_act.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            trace(w18_small, torch.randn(1, 3, 64, 64), exact=True)
    finally:
        ours.remove()
    assert all_hooks(exact.net) == 0 and all_hooks(w18_small.model) == 0
    assert not exact.lock._is_owned()


def test_model_is_left_as_found(w18_small):
    before = module_flags(w18_small.model)
    state = {k: v.clone() for k, v in w18_small.model.state_dict().items()}
    trace(w18_small, torch.randn(1, 3, 64, 64), keep="summaries")
    assert module_flags(w18_small.model) == before
    assert all(torch.equal(v, state[k]) for k, v in w18_small.model.state_dict().items())


def test_training_mode_is_refused_not_changed(w18_small):
    model = w18_small.model
    model.train()
    try:
        with pytest.raises(ValueError, match="training mode.*eval"):
            trace(model, torch.randn(1, 3, 64, 64))
        assert model.training
    finally:
        model.eval()


def test_input_size_errors_name_the_constraint(w18_small):
    with pytest.raises(ValueError, match="multiples of 32"):
        trace(w18_small, torch.randn(1, 3, 240, 240))
    with pytest.raises(TypeError, match="timm HighResolutionNet"):
        trace(torch.nn.Conv2d(3, 3, 1), torch.randn(1, 3, 64, 64))


def test_keep_modes_agree(w18_small):
    x = torch.randn(1, 3, 96, 96)
    full = trace(w18_small, x)
    outputs = trace(w18_small, x, keep="outputs")
    summaries = trace(w18_small, x, keep="summaries", store="cpu")
    assert full.shapes == outputs.shapes == summaries.shapes
    assert torch.equal(outputs["stage4.module0.fused3"], full["stage4.module0.fused3"])
    with pytest.raises(KeyError, match="not kept"):
        outputs["stage4.module0.edge1to0"]
    with pytest.raises(KeyError, match="Trace.names"):
        full["stage9.module0.fused0"]
    assert set(summaries.maps) == {"logits"}
    assert summaries.summaries["stage2.module0.fused1"]["l2"].shape == (1, 12, 12)
    for ref in full.modules:
        a, b, c = (t.fusion(ref.stage, ref.index) for t in (full, outputs, summaries))
        for measure in ("energy_share", "agreement", "relu_share", "active_fraction"):
            assert torch.allclose(getattr(a, measure), getattr(b, measure), atol=1e-6)
            assert torch.allclose(getattr(a, measure), getattr(c, measure), atol=1e-6)


def test_storage_dtype_and_device(w18_small):
    result = trace(w18_small, torch.randn(1, 3, 64, 64), store="cpu", dtype=torch.float16)
    assert result["stage3.module0.fused2"].dtype == torch.float16
    assert result["stage3.module0.fused2"].device.type == "cpu"


def test_trace_an_image_through_the_weights_preprocessing(w18_small):
    from PIL import Image

    img = Image.new("RGB", (300, 200), (120, 40, 200))
    result = trace(w18_small, img, input_size=128)
    assert result.input_shape == (1, 3, 128, 128) and result.weights.is_random
    summary = trace_summary(result)
    assert summary["modules"][-1]["name"] == "stage4.module0"
    assert summary["weights"]["random"] is True


def test_captured_tensors_are_released(w18_small):
    result = trace(w18_small, torch.randn(1, 3, 64, 64))
    ref = weakref.ref(result["stage4.module0.edge3to0"])
    del result
    gc.collect()
    assert ref() is None


def test_memory_is_flat_over_repeated_traces(w18_small):
    x = torch.randn(1, 3, 128, 128)
    proc = psutil.Process()
    for _ in range(5):  # warm-up: allocator pools, lazy inits
        trace(w18_small, x)
    gc.collect()
    before = proc.memory_info().rss
    for _ in range(40):
        trace(w18_small, x)
    gc.collect()
    growth = proc.memory_info().rss - before
    assert growth < 30 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over 40 traces"
    assert all_hooks(w18_small.model) == 0

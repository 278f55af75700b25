"""The channel-padded fast copy (hrnet_explorer.pad): same function, padded channels exactly zero, traces unchanged."""

from __future__ import annotations

import copy
import warnings

import pytest
import timm
import torch
from test_trace import all_hooks
from torch import nn

from hrnet_explorer import trace, trace_names, zoo
from hrnet_explorer.analyses import reconstruction_error
from hrnet_explorer.compiled import CompiledTracer, trace_forward
from hrnet_explorer.copies import make_copy, private_copy
from hrnet_explorer.fold import FAST_RTOL, deviations, map_deviation
from hrnet_explorer.hooks import MapRecorder, hooks_installed, hrnet_hooks
from hrnet_explorer.pad import needs_padding, pad_channels, padded_width, padding_growth, padding_pays, trace_shapes
from hrnet_explorer.trace import Trace, _trace_of


def random_model(variant: str, seed: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        model = zoo.load_model(variant, "random", device="cpu", cache=False).model
    with torch.no_grad():  # BatchNorm statistics away from 0/1: folded biases are not zero
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.1, 0.1)
    return model


def hook_trace(net: nn.Module, x: torch.Tensor, keep: str = "all", extra=()) -> Trace:
    """What trace() does on its fast copy, for any private copy (padded ones sliced by their recorded widths)."""
    rec = MapRecorder(keep, narrow=getattr(net, "hrnet_explorer_widths", None))
    with hooks_installed(hrnet_hooks(net, rec) + list(extra)), torch.inference_mode():
        rec.put("logits", net(x))
    return _trace_of(rec, net, tuple(x.shape), None, exact=False)


class ModuleOutputs:
    """Hooks on every submodule: on the unpadded copy they record each call's output width; on the padded copy
    (same module names, same call order) the largest magnitude of its extra channels, which must be exactly 0."""

    def __init__(self):
        self.widths: dict[str, list[int]] = {}
        self.calls: dict[str, int] = {}
        self.extra: dict[str, float] = {}

    def hooks(self, net: nn.Module, padded: bool) -> list:
        def make(name):
            def hook(module, args, output):
                if not (isinstance(output, torch.Tensor) and output.ndim == 4):
                    return
                if not padded:
                    self.widths.setdefault(name, []).append(output.shape[1])
                    return
                k = self.calls[name] = self.calls.get(name, -1) + 1
                c = self.widths[name][k]
                if output.shape[1] > c:
                    self.extra[name] = max(self.extra.get(name, 0.0), float(output[:, c:].abs().max()))

            return hook

        return [(m, "forward", make(name)) for name, m in net.named_modules() if name]


@pytest.mark.parametrize("variant", list(zoo.VARIANTS))
def test_padded_trace_equals_the_unpadded_fast_trace(variant):
    model = random_model(variant)
    folded = make_copy(model, "folded", channels_last=True)
    padded = pad_channels(make_copy(model, "folded", channels_last=True))
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)

    widths = padded.hrnet_explorer_widths
    pads = variant not in ("hrnet_w18_small", "hrnet_w32", "hrnet_w40", "hrnet_w48", "hrnet_w64")
    assert bool(widths) == pads == needs_padding(model), widths
    for conv in padded.modules():
        if isinstance(conv, nn.Conv2d) and conv is not padded.conv1:
            assert conv.in_channels % 8 == 0 and conv.out_channels % 8 == 0
    assert padded.conv1.in_channels == 3

    outputs = ModuleOutputs()
    unpadded = hook_trace(folded, x, extra=outputs.hooks(folded, padded=False))
    result = hook_trace(padded, x, extra=outputs.hooks(padded, padded=True))
    found = outputs.extra
    assert result.names() == unpadded.names() == trace_names(model)
    assert result.shapes == unpadded.shapes
    for name, ref in unpadded.maps.items():
        assert result[name].shape == ref.shape, name
        assert map_deviation(result[name], ref) <= FAST_RTOL["cpu"], name
    assert map_deviation(result.logits, unpadded.logits) <= 1e-5
    # Inside the padded network, every padded channel is exactly zero (convs, blocks, fuse edges, ReLUs, upsampling).
    assert bool(found) == pads
    assert all(v == 0.0 for v in found.values()), {k: v for k, v in found.items() if v}
    for name, c in widths.items():
        assert result[name].shape[1] == c and padded_width(c) > c

    # Fusion statistics: computed during the pass from the sliced maps (keep="summaries") = the unpadded ones.
    summaries = hook_trace(padded, x, keep="summaries")
    assert summaries.shapes == unpadded.shapes
    for ref in unpadded.modules:
        a, b = summaries.fusion(ref.stage, ref.index), unpadded.fusion(ref.stage, ref.index)
        for field, value in vars(b).items():
            assert torch.allclose(getattr(a, field), value, rtol=1e-4, atol=1e-5), (ref.name, field)
        assert reconstruction_error(result, ref.stage, ref.index) <= 1e-6
    for name, maps in hook_trace(folded, x, keep="summaries").summaries.items():
        for k, v in maps.items():
            assert torch.allclose(summaries.summaries[name][k], v, rtol=1e-4, atol=1e-5), (name, k)
    assert all_hooks(padded) == 0


def test_padded_copy_against_the_exact_trace_and_unfolded_batchnorms():
    model = random_model("hrnet_w18_small_v2")
    x = torch.randn(2, 3, 64, 64)
    exact = trace(model, x, exact=True)
    # Padding an unfolded copy pads its BatchNorms too (weight 0, bias 0, mean 0, variance 1: 0 stays 0).
    unfolded = pad_channels(copy.deepcopy(model).eval().requires_grad_(False))
    assert any(isinstance(m, nn.BatchNorm2d) and m.num_features == 24 for m in unfolded.modules())
    for net in (unfolded, pad_channels(make_copy(model, "folded", channels_last=False))):
        result = hook_trace(net, x)
        assert result.shapes == exact.shapes
        for name, dev in deviations(result, exact).items():
            assert dev <= FAST_RTOL["cpu"], name


def test_trace_forward_of_a_padded_copy_is_its_hook_trace():
    model = random_model("hrnet_w18_small_v2")
    padded = pad_channels(make_copy(model, "folded", channels_last=True))
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out = trace_forward(padded, x, padded.hrnet_explorer_widths)
    hooked = hook_trace(padded, x)
    assert list(out) == hooked.names()
    for name, t in hooked.maps.items():
        assert torch.equal(out[name], t), name
    with torch.inference_mode():
        raw = trace_forward(padded, x)  # without widths: the padded maps themselves
    assert raw["stage2.module0.fused0"].shape[1] == 24 and out["stage2.module0.fused0"].shape[1] == 18


def test_compiled_tracer_pads_and_keeps_the_contract():
    model = random_model("hrnet_w18_small_v2")
    x = torch.randn(1, 3, 64, 64)
    tracer = CompiledTracer(model, mode=None, backend="eager", pad=True)  # dynamo, fullgraph=True, no codegen
    assert tracer.pads(1) and tracer.net(1).hrnet_explorer_widths
    result = tracer(x)
    exact = trace(model, x, exact=True)
    assert result.names() == exact.names() and result.shapes == exact.shapes and not result.exact
    for name, dev in deviations(result, exact).items():
        assert dev <= FAST_RTOL["cpu"], name
    stats = result.fusion(2, 0)
    assert torch.allclose(stats.energy_share.sum(-1), torch.ones(1, 2), atol=1e-6)


def test_shapes_and_the_padding_rule():
    assert [padded_width(c) for c in (3, 7, 8, 18, 30, 44, 64, 144, 2048)] == [3, 7, 8, 24, 32, 48, 64, 144, 2048]
    assert padded_width(18, 16) == 32 and padded_width(18, 1) == 18
    model = random_model("hrnet_w18_small")
    assert trace_shapes(model) == trace(model, torch.randn(1, 3, 64, 64), exact=True).shapes
    sixteen = pad_channels(make_copy(random_model("hrnet_w18"), "folded", channels_last=True), multiple=16)
    assert sixteen.stage4[0].branches[2][0].conv1.out_channels == 80  # 72 → 80
    assert sixteen.hrnet_explorer_widths["stage4.module0.fused2"] == 72
    same = pad_channels(make_copy(model, "folded", channels_last=True), multiple=1)
    assert same.hrnet_explorer_widths == {}


def test_which_batches_pay_for_padding():
    """Batch 1 pads only where padding adds little work (w30 +1/15, w44 +1/11; not w18's 18 → 24); batch 2 and up
    pad wherever a width needs it; the power-of-two variants never pad."""
    growth = {}
    for variant in zoo.VARIANTS:
        with torch.device("meta"):  # the widths only: no weights
            growth[variant] = padding_growth(timm.create_model(variant, pretrained=False))
    assert growth["hrnet_w18"] == growth["hrnet_w18_small_v2"] == pytest.approx(1 / 3)
    assert growth["hrnet_w30"] == pytest.approx(1 / 15) and growth["hrnet_w44"] == pytest.approx(1 / 11)
    at_one = {v for v, g in growth.items() if padding_pays(g, 1)}
    at_256 = {v for v, g in growth.items() if padding_pays(g, 256)}
    assert at_one == {"hrnet_w30", "hrnet_w44"}
    assert (
        at_256
        == {"hrnet_w18", "hrnet_w18_small_v2", "hrnet_w30", "hrnet_w44"}
        == {v for v, g in growth.items() if padding_pays(g, 2)}
    )


def test_bad_input_raises_clearly(w18_small):
    with pytest.raises(TypeError, match="HighResolutionNet"):
        pad_channels(nn.Sequential(nn.Conv2d(3, 18, 3)))
    with pytest.raises(TypeError, match="HighResolutionNet"):
        pad_channels(timm.create_model("resnet18", pretrained=False))
    copy_ = make_copy(w18_small.model, "folded", channels_last=True)
    for bad in (0, -8):
        with pytest.raises(ValueError, match="positive"):
            pad_channels(copy_, multiple=bad)
    with pytest.raises(TypeError, match="int"):
        pad_channels(copy_, multiple=8.0)
    pad_channels(copy_)
    with pytest.raises(ValueError, match="padded already"):
        pad_channels(copy_)
    odd = make_copy(w18_small.model, "folded", channels_last=True)
    odd.stage2[0].fuse_act = nn.PReLU()
    with pytest.raises(ValueError, match="PReLU"):
        pad_channels(odd)


def test_padded_weights_keep_their_layout_and_trace_many_refuses_pad_on_cpu(w18_small):
    from hrnet_explorer.batch import trace_many

    padded = pad_channels(make_copy(random_model("hrnet_w18_small_v2"), "folded", channels_last=True))
    conv = padded.stage2[0].branches[0][0].conv1  # 18 → 24 in and out, 3×3
    assert conv.weight.shape == (24, 24, 3, 3) and conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.requires_grad and torch.all(conv.weight[18:] == 0) and torch.all(conv.bias[18:] == 0)
    with pytest.raises(ValueError, match="use_graphs=True"):
        next(trace_many(w18_small, [torch.zeros(3, 64, 64)], use_graphs=False, pad=True))


@pytest.mark.parametrize("variant", ["hrnet_w18_small", "hrnet_w18_small_v2"])
def test_ig_graphs_run_on_a_padded_copy_only_where_a_width_needs_it(variant):
    """IG's CUDA graph (GraphedIG) runs on the padded private copy: built once, frozen, the fast copy itself when
    nothing needs padding; its input gradients (what every IG step computes) are the fast copy's, and that copy stays
    unpadded (the other methods hook it)."""
    model = random_model(variant)
    padded, fast = private_copy(model, "padded").net, private_copy(model, "folded").net
    assert private_copy(model, "padded").net is padded
    assert not padded.training and not any(p.requires_grad for p in padded.parameters())
    if variant == "hrnet_w18_small":
        assert padded is fast
        return
    assert padded is not fast and padded.hrnet_explorer_widths and not hasattr(fast, "hrnet_explorer_padded")
    assert needs_padding(fast) and not needs_padding(padded)
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    grads = []
    for net in (fast, padded):
        xi = x.clone().requires_grad_()
        (grad,) = torch.autograd.grad(net(xi)[:, 5].sum(), xi)
        grads.append(grad)
    assert map_deviation(grads[1], grads[0]) <= FAST_RTOL["cpu"]

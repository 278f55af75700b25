"""The fast trace (BatchNorm folded, channels_last private copy): same names, the stated tolerance, no leaks."""

from __future__ import annotations

import gc
import threading
import warnings

import psutil
import pytest
import torch
from test_trace import all_hooks, module_flags
from torch import nn

from hrnet_explorer import trace, trace_names, zoo
from hrnet_explorer.analyses import reconstruction_error
from hrnet_explorer.copies import make_copy, private_copy
from hrnet_explorer.fold import FAST_RTOL, deviations, fold_batchnorm, map_deviation, worst_deviation


def folded_copy(model: nn.Module):
    """The cached folded copy trace() runs on a CPU, and its lock."""
    held = private_copy(model, "folded")
    return held.net, held.lock


def check_fast_against_exact(model: nn.Module, x: torch.Tensor, rtol: float) -> None:
    """Assert the contract on every map, and the fusion identity within the fast trace."""
    exact = trace(model, x, exact=True)
    fast = trace(model, x, exact=False)
    assert exact.exact and not fast.exact
    assert fast.names() == exact.names() == trace_names(model)
    assert fast.shapes == exact.shapes
    for name, dev in deviations(fast, exact).items():
        assert dev <= rtol, f"{name}: max|fast − exact| = {dev:.2e} of max|exact|"
    for ref in fast.modules:  # the fusion identity holds exactly within the fast trace itself
        assert reconstruction_error(fast, ref.stage, ref.index) <= 1e-6
    assert all_hooks(model) == 0


@pytest.mark.parametrize("variant", list(zoo.VARIANTS))
def test_fast_trace_matches_exact_trace_for_every_variant(variant):
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        model = zoo.load_model(variant, "random", device="cpu", cache=False).model
    # Random weights leave BatchNorm's statistics at 0/1; make the fold do real work.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    before = module_flags(model)
    check_fast_against_exact(model, torch.randn(2, 3, 64, 64), FAST_RTOL["cpu"])
    assert module_flags(model) == before  # the caller's BatchNorms are still there
    fast, _ = folded_copy(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert fast.hrnet_explorer_folded == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_the_contract_measures_each_map_against_its_own_largest_magnitude(w18_small):
    assert map_deviation(torch.tensor([1.1, -2.0]), torch.tensor([1.0, -2.0])) == pytest.approx(0.05)
    assert map_deviation(torch.zeros(3), torch.zeros(3)) == 0.0
    assert map_deviation(torch.tensor([1e-6]), torch.zeros(1)) == pytest.approx(1e6)  # exact 0: any error is huge
    x = torch.randn(1, 3, 64, 64)
    exact = trace(w18_small, x, exact=True)
    assert worst_deviation(exact, exact) == 0.0
    bent = exact.clone()
    bent.maps["stage3.module0.edge1to0"][0, 0, 0, 0] += 0.5 * float(exact["stage3.module0.edge1to0"].abs().max())
    per_map = deviations(bent, exact)
    assert set(per_map) == set(exact.maps)
    assert worst_deviation(bent, exact) == per_map["stage3.module0.edge1to0"] == pytest.approx(0.5)


def test_default_is_fast_on_cpu_and_exact_on_request(w18_small):
    x = torch.randn(1, 3, 64, 64)
    assert not trace(w18_small, x).exact
    assert trace(w18_small, x, exact=True).exact
    fast = trace(w18_small, x, keep="outputs")
    assert fast["stage4.module0.fused0"].is_contiguous(memory_format=torch.channels_last)
    assert not fast.exact and fast.clone().exact is False


def test_keep_modes_and_bf16_on_the_fast_copy(w18_small):
    x = torch.randn(1, 3, 96, 96)
    full = trace(w18_small, x)
    summaries = trace(w18_small, x, keep="summaries")
    for ref in full.modules:
        a, b = full.fusion(ref.stage, ref.index), summaries.fusion(ref.stage, ref.index)
        assert torch.allclose(a.energy_share, b.energy_share, atol=1e-6)
    bf16 = trace(w18_small, x, precision="bf16")
    exact = trace(w18_small, x, precision="bf16", exact=True)
    assert bf16.logits.dtype == exact.logits.dtype == torch.bfloat16
    scale = float(exact.logits.float().abs().max())
    assert float((bf16.logits.float() - exact.logits.float()).abs().max()) <= 0.1 * scale


def test_fold_refuses_a_batchnorm_without_its_convolution():
    with pytest.raises(ValueError, match="no convolution"):
        fold_batchnorm(nn.Sequential(nn.ReLU(), nn.BatchNorm2d(4)))
    with pytest.raises(ValueError, match="no convolution"):
        fold_batchnorm(nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(4)))


def test_fast_copy_leaves_the_caller_alone_and_drops_its_hooks(w18_small):
    model = w18_small.model
    handle = model.stage2[0].fuse_act.register_forward_hook(lambda *a: None)
    try:
        copy_ = make_copy(model, "folded", channels_last=True)
        assert all_hooks(copy_) == 0 and all_hooks(model) == 1
    finally:
        handle.remove()
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not any(p.requires_grad for p in copy_.parameters())


def test_an_error_inside_the_fast_forward_leaves_no_hooks_and_no_held_lock(w18_small):
    fast, lock = folded_copy(w18_small.model)

    def explode(module, args, output):
        raise RuntimeError("boom inside the fast copy")

    ours = fast.stage3[0].fuse_act.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            trace(w18_small, torch.randn(1, 3, 64, 64))
    finally:
        ours.remove()
    assert all_hooks(fast) == 0 and not lock._is_owned()
    assert trace(w18_small, torch.randn(1, 3, 64, 64)).logits.shape == (1, 1000)


def test_the_fast_copy_follows_new_weights():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        model = zoo.load_model("hrnet_w18_small", "random", device="cpu", cache=False).model
    x = torch.randn(1, 3, 64, 64)
    first = trace(model, x).logits
    with torch.no_grad():
        model.classifier.bias.add_(1.0)  # in place: the version counter moves
    second = trace(model, x).logits
    assert torch.allclose(second, first + 1.0, atol=1e-4)
    assert torch.allclose(second, trace(model, x, exact=True).logits, atol=1e-4)


def test_concurrent_fast_traces_do_not_see_each_other(w18_small):
    xs = [torch.randn(1, 3, 64, 64) for _ in range(4)]
    expected = [trace(w18_small, x).logits for x in xs]
    got: dict[int, torch.Tensor] = {}

    def run(k):
        for _ in range(3):
            result = trace(w18_small, xs[k])
            got[k] = result.logits if result.names() == trace_names(w18_small) else None

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(got[k], expected[k]) for k in range(4))


def test_memory_is_flat_over_500_fast_traces(w18_small):
    x = torch.randn(1, 3, 64, 64)
    proc = psutil.Process()
    for _ in range(20):  # warm-up: allocator pools, lazy inits, the private copy
        trace(w18_small, x)
    gc.collect()
    before = proc.memory_info().rss
    for k in range(500):
        trace(w18_small, x)
        if k == 99:
            gc.collect()
            at_100 = proc.memory_info().rss
    gc.collect()
    after = proc.memory_info().rss
    assert after - before < 30 * 2**20, f"RSS grew by {(after - before) / 2**20:.1f} MiB over 500 fast traces"
    assert after - at_100 < 10 * 2**20, f"RSS grew by {(after - at_100) / 2**20:.1f} MiB from trace 100 to 500"
    fast, _ = folded_copy(w18_small.model)
    assert all_hooks(fast) == 0

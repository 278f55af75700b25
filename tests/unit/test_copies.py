"""The one cache of private copies (hrnet_explorer.copies) and the hook engine's locking: traces of one model from
many threads never see each other's tensors, and a user's hooks on the model never fire inside a copy."""

from __future__ import annotations

import gc
import threading
import warnings
import weakref

import pytest
import torch
from test_trace import all_hooks
from torch import nn

from hrnet_explorer import attribution as A
from hrnet_explorer import trace, zoo
from hrnet_explorer.batch import predict_many
from hrnet_explorer.compiled import CompiledTracer
from hrnet_explorer.copies import PrivateCopy, make_copy, private_copy
from hrnet_explorer.rows import RowEngine


def _random(variant: str) -> zoo.LoadedModel:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        return zoo.load_model(variant, "random", device="cpu", cache=False)


@pytest.mark.parametrize("exact", [True, False])
def test_eight_threads_tracing_one_model_get_the_single_threaded_traces(w18_small, exact):
    inputs = [torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    expected = [trace(w18_small, x, exact=exact) for x in inputs]
    results: list = [None] * 8
    start = threading.Barrier(8)

    def run(i: int) -> None:
        start.wait()
        for _ in range(3):  # several rounds: the threads overlap
            results[i] = trace(w18_small, inputs[i], exact=exact)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected, strict=True):
        assert got.names() == want.names()
        for name in want.names():
            assert torch.equal(got[name], want[name]), name
    held = private_copy(w18_small.model, "exact" if exact else "folded")
    assert all_hooks(held.net) == 0 and not held.lock._is_owned()


def test_a_users_hook_on_the_model_never_fires_inside_a_copy(w18_small):
    model = w18_small.model
    fired: list[str] = []
    handles = [
        model.stage4[0].fuse_act.register_forward_hook(lambda *a: fired.append("fuse_act")),
        model.register_forward_pre_hook(lambda *a: fired.append("model")),
    ]
    x = torch.randn(1, 3, 64, 64)
    try:
        trace(w18_small, x, exact=True)
        trace(w18_small, x, exact=False)
        A.knockout(w18_small, x, stream=0)
        A.attribute_pixels(w18_small, x, "saliency")
        A.attribute_pixels(w18_small, x, "saliency", fast=False)
        predict_many(w18_small, [torch.rand(3, 64, 64)], batch_size=1, input_size=64)
        RowEngine(w18_small, 1, 64, reliance=True).submit(torch.zeros(1, 3, 64, 64, dtype=torch.uint8)).get()
        CompiledTracer(w18_small, mode=None, backend="eager")(x)
        assert fired == []  # nothing ran the caller's model or a copy that kept its hooks
        model(x)
        assert fired == ["model"] + ["fuse_act"] * 4  # the hooks are live (the shared ReLU: once per stream)
    finally:
        for h in handles:
            h.remove()
    for kind in ("exact", "folded", "padded"):
        assert all_hooks(private_copy(model, kind).net) == 0


def test_copies_are_cached_per_kind_rebuilt_on_new_weights_and_released():
    loaded = _random("hrnet_w18_small")
    model = loaded.model
    exact, folded = private_copy(model, "exact"), private_copy(model, "folded")
    assert private_copy(model, "exact") is exact and private_copy(model, "folded") is folded
    assert exact.net is not model and folded.net is not exact.net
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.net.modules())
    assert folded.net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(m.inplace for m in exact.net.modules() if isinstance(m, nn.ReLU))
    assert not any(p.requires_grad for p in exact.net.parameters()) and not exact.net.training
    # w18_small's widths are multiples of 8 already: the padded copy is the folded one, same lock.
    assert private_copy(model, "padded") is folded
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(exact.net(x), model(x))
    state = model.state_dict()
    state["classifier.bias"] = state["classifier.bias"] + 1.0
    model.load_state_dict(state)
    rebuilt = private_copy(model, "exact")
    assert rebuilt is not exact
    with torch.no_grad():
        assert torch.equal(rebuilt.net(x), model(x))
    ref = weakref.ref(model)
    del loaded, model, exact, folded, rebuilt
    gc.collect()
    assert ref() is None  # the cache does not keep the model alive


def test_a_padded_copy_exists_where_a_width_needs_it():
    model = _random("hrnet_w18_small_v2").model  # 18/36/72/144 channels
    padded, folded = private_copy(model, "padded"), private_copy(model, "folded")
    assert padded is not folded and padded.net.hrnet_explorer_widths
    assert padded.net.stage2[0].branches[0][0].conv1.out_channels == 24


def test_what_is_built_on_a_copy_is_kept_per_key_and_the_least_recently_used_dropped():
    """The CUDA graphs on a copy (graph_trace's, IG's, deletion/insertion's) are kept this way: each holds a memory
    pool, so a slider that asks for a new shape at every step must not pile them up."""
    copy = PrivateCopy(nn.Identity(), "folded", False)
    built: list = []

    def build(key):
        built.append(key)
        return object()

    first = copy.cached("graphs", 1, lambda: build(1), max_entries=2)
    assert copy.cached("graphs", 1, lambda: build(1), max_entries=2) is first  # built once
    copy.cached("graphs", 2, lambda: build(2), max_entries=2)
    copy.cached("graphs", 1, lambda: build(1), max_entries=2)  # 1 is now the most recently used
    copy.cached("graphs", 3, lambda: build(3), max_entries=2)  # drops 2
    assert list(copy.derived["graphs"]) == [1, 3] and built == [1, 2, 3]
    assert copy.cached("graphs", 1, lambda: build(1), max_entries=2) is first
    copy.cached("other", 1, lambda: build("other"))  # another name, its own entries
    assert list(copy.derived["graphs"]) == [3, 1] and built == [1, 2, 3, "other"]


def test_make_copy_refuses_an_unknown_kind_and_a_non_hrnet(w18_small):
    with pytest.raises(ValueError, match="kind must be one of"):
        make_copy(w18_small.model, "fast")
    with pytest.raises(TypeError, match="HighResolutionNet"):
        private_copy(nn.Linear(2, 2))

"""Run on a CUDA machine (python -m pytest gpu_tests): the graph path equals the eager path."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from hrnet_explorer import load_model, trace, zoo
from hrnet_explorer.batch import trace_many
from hrnet_explorer.errors import InputError
from hrnet_explorer.graphs import GraphTracer

if not torch.cuda.is_available():
    raise RuntimeError("gpu_tests need a CUDA device; the CPU suite is tests/.")


@pytest.fixture(scope="module", params=["hrnet_w18_small", "hrnet_w18"])
def loaded(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        torch.manual_seed(0)
        return load_model(request.param, "random", device="cuda", cache=False)


@pytest.mark.parametrize("keep", ["all", "outputs", "summaries"])
def test_graph_trace_equals_eager_trace(loaded, keep):
    x = torch.randn(2, 3, 224, 224, device="cuda")
    eager = trace(loaded, x, keep=keep)
    tracer = GraphTracer(loaded, 2, 224, keep=keep, precision="fp32", channels_last=False)
    for _ in range(2):  # replays overwrite the same buffers: both must be right
        graph = tracer(x)
        assert graph.names() == eager.names()
        for name in eager.maps:
            assert torch.equal(graph[name], eager[name]), name
        for ref in eager.modules:
            a, b = eager.fusion(ref.stage, ref.index), graph.fusion(ref.stage, ref.index)
            assert torch.allclose(a.energy_share, b.energy_share, atol=1e-6)
        x = torch.randn_like(x)
        eager = trace(loaded, x, keep=keep)
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in tracer.net.modules()) == 0


def test_channels_last_bf16_graph_is_close(loaded):
    x = torch.randn(1, 3, 224, 224, device="cuda")
    ref = trace(loaded, x).logits
    out = GraphTracer(loaded, 1, 224, precision="bf16", channels_last=True)(x).logits.float()
    assert (out - ref).abs().max() / ref.abs().max() < 0.05


def test_trace_many_on_cuda_pads_the_last_batch(loaded):
    imgs = [torch.rand(3, 256, 256) for _ in range(5)]
    batches = list(trace_many(loaded, imgs, batch_size=2, keep="outputs", channels_last=False))
    assert [b.input_shape[0] for b in batches] == [2, 2, 1]
    assert all(b.logits.device.type == "cpu" for b in batches)
    single = trace(loaded, imgs[4]).logits.cpu()
    # Another batch size may pick other cuDNN kernels (TF32 by default): compare relative to the scale.
    assert (batches[-1].logits - single).abs().max() / single.abs().max() < 1e-2


@contextlib.contextmanager
def tf32(allowed: bool):
    """TF32 in convolutions and matmuls on or off. Off, paths that differ only in summation order (graphed or eager,
    channels padded or not) differ by fp32 rounding, grown through the network (random w18's logits reach ~1e8:
    4.5e-4 of the largest attribution measured on an H100); on (PyTorch's default for convolutions), by up to a few %.
    Cached IG graphs are dropped on entry: a capture keeps the math mode it was made under."""
    from hrnet_explorer.attribution import clear_attribution_cache

    clear_attribution_cache()
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=allowed):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        clear_attribution_cache()


# The graphed IG runs on the channel-padded copy (w18), the eager one on the unpadded copy.
IG_RTOL = {False: 2e-3, True: 5e-2}  # allowed TF32 → max |graphed − eager| / max |eager|


@pytest.mark.parametrize("allow_tf32", [False, True])
def test_graphed_integrated_gradients_equal_eager(loaded, allow_tf32):
    from hrnet_explorer.attribution import attribute_pixels

    x = torch.randn(1, 3, 224, 224, device="cuda")
    rtol = IG_RTOL[allow_tf32]
    with tf32(allow_tf32):
        eager = attribute_pixels(loaded, x, "ig", n_steps=16, graphs=False)
        for _ in range(2):  # the second call replays the captured graph
            graphed = attribute_pixels(loaded, x, "ig", n_steps=16)
            assert "CUDA graphs" in graphed.settings["model"] and graphed.target == eager.target
            assert ("channels padded" in graphed.settings["model"]) == (loaded.variant.name == "hrnet_w18")
            scale = eager.attributions.abs().max()
            assert (graphed.attributions - eager.attributions).abs().max() / scale < rtol
            assert abs(graphed.delta - eager.delta) <= rtol * abs(graphed.logit - graphed.baseline_logit) + 1e-3
            assert graphed.logit == pytest.approx(eager.logit, rel=rtol, abs=1e-3)


def test_graphed_integrated_gradients_replay_targets_inputs_and_chunks(loaded):
    """One graph per (shape, steps, chunk): a given target, a new input and a chunked run each give the
    eager answer, and a result kept from an earlier call is not overwritten by the next replay."""
    from hrnet_explorer.attribution import attribute_pixels

    x1, x2 = torch.randn(1, 3, 224, 224, device="cuda"), torch.randn(1, 3, 224, 224, device="cuda")
    with tf32(False):
        first = attribute_pixels(loaded, x1, "ig", n_steps=12, target=7)
        kept = first.attributions.clone()
        for x, target, ibs in ((x2, 7, None), (x2, None, None), (x1, 3, 5)):  # ibs=5: chunks of 5, 5 and 2
            graphed = attribute_pixels(loaded, x, "ig", n_steps=12, target=target, internal_batch_size=ibs)
            eager = attribute_pixels(loaded, x, "ig", n_steps=12, target=target, internal_batch_size=ibs, graphs=False)
            assert graphed.target == eager.target == (eager.target if target is None else target)
            scale = eager.attributions.abs().max()
            assert (graphed.attributions - eager.attributions).abs().max() / scale < IG_RTOL[False]
        assert torch.equal(first.attributions, kept)


def test_graphed_integrated_gradients_memory_is_flat(loaded):
    from hrnet_explorer.attribution import attribute_pixels

    x = torch.randn(1, 3, 224, 224, device="cuda")
    for _ in range(3):
        attribute_pixels(loaded, x, "ig", n_steps=8)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(100):
        attribute_pixels(loaded, x, "ig", n_steps=8)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() - before <= 1 << 20


@pytest.mark.parametrize("batch_size", [None, 16])  # 16: chunks of 16, 16 and 8, two graphs
def test_graphed_deletion_insertion_equals_eager(loaded, batch_size):
    """The graph replays the folded copy's own kernels: the curves of the eager forward, call after call, input after
    input; one graph per (batch shape, TF32 setting), and memory flat once they are captured."""
    from hrnet_explorer.attribution import deletion_insertion, random_map
    from hrnet_explorer.copies import private_copy

    heat = random_map((224, 224))
    images = [torch.randn(1, 3, 224, 224, device="cuda") for _ in range(2)]
    for allow_tf32 in (False, True):
        with tf32(allow_tf32):
            for x in images + images:  # the second round replays
                graphed = deletion_insertion(loaded, x, heat, batch_size=batch_size)
                eager = deletion_insertion(loaded, x, heat, graphed.target, batch_size=batch_size, graphs=False)
                for a, b in ((graphed.deletion, eager.deletion), (graphed.insertion, eager.insertion)):
                    assert (a.probabilities - b.probabilities).abs().max() <= 1e-5
                assert graphed.probability == pytest.approx(eager.probability, abs=1e-5)
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            for _ in range(50):
                deletion_insertion(loaded, images[0], heat, batch_size=batch_size)
            torch.cuda.synchronize()
            assert torch.cuda.memory_allocated() - before <= 1 << 20
            graphs = private_copy(loaded.model, "folded").derived["deletion_insertion"]
            assert [key[1] for key in graphs] == [allow_tf32] * (1 if batch_size is None else 2)  # one shape, or 16, 8


def test_graph_trace_is_a_cached_fast_trace(loaded):
    """What the app runs per request on a GPU: within the fast-trace contract of the exact trace, one
    tracer per shape (replayed, not recaptured), maps owned by the caller, rebuilt when weights change."""
    from hrnet_explorer.copies import private_copy
    from hrnet_explorer.fold import FAST_RTOL
    from hrnet_explorer.graphs import graph_trace

    x = torch.randn(1, 3, 224, 224, device="cuda")
    exact = trace(loaded, x, exact=True, store="cpu")
    first = graph_trace(loaded, x)
    assert not first.exact and first.logits.device.type == "cpu" and set(first.maps) == set(exact.maps)
    assert set(first.fusion_cache) == {ref.name for ref in first.modules}  # computed on the GPU, copied
    ref_stats = exact.fusion(4, -1)
    assert torch.allclose(first.fusion(4, -1).energy_share, ref_stats.energy_share, atol=1e-2)
    for name, ref in exact.maps.items():
        assert (first[name].float() - ref.float()).abs().max() <= FAST_RTOL["cuda"] * ref.float().abs().max()
    tracers = private_copy(loaded.model, "padded").derived["graph_trace"]  # kept on the padded copy, per shape
    tracer = next(iter(tracers.values()))
    second = graph_trace(loaded, torch.randn(1, 3, 224, 224, device="cuda"))
    assert next(iter(tracers.values())) is tracer and not torch.equal(second.logits, first.logits)
    assert torch.equal(graph_trace(loaded, x).logits, first.logits)  # kept maps were not overwritten
    graph_trace(loaded, torch.randn(1, 3, 160, 192, device="cuda"))  # another shape: another tracer
    assert len(tracers) == 2
    bad = x.clone()
    bad[0, 2, 9, 4] = float("inf")
    with pytest.raises(InputError, match="NaN or infinite"):  # checked by the shape's graph, after the replay
        graph_trace(loaded, bad)
    with pytest.raises(InputError, match="NaN or infinite"):  # a new shape: checked before anything is captured
        graph_trace(loaded, torch.full((1, 3, 96, 96), float("nan"), device="cuda"))
    assert len(tracers) == 2
    assert torch.equal(graph_trace(loaded, x).logits, first.logits)  # the next good call keeps the contract


def test_a_users_hook_on_the_model_is_never_captured_in_a_graph(loaded):
    """CUDA graphs replay what was recorded: a user's hook on the caller's model must not end up in one."""
    from hrnet_explorer import attribution
    from hrnet_explorer.analyze import RowEngine
    from hrnet_explorer.graphs import graph_trace

    fired = []
    handle = loaded.model.stage4[0].fuse_act.register_forward_hook(lambda *a: fired.append(1))
    try:
        x = torch.randn(1, 3, 224, 224, device="cuda")
        graph_trace(loaded, x)
        GraphTracer(loaded, 1, 224)(x)
        attribution.attribute_pixels(loaded, x, "ig", n_steps=4)  # IG's CUDA graph on the padded copy
        RowEngine(loaded, 2, 224, reliance=True).submit(torch.zeros(2, 3, 224, 224, dtype=torch.uint8)).get()
        assert fired == []
        with torch.inference_mode():
            loaded.model(x)
        assert fired  # the hook is live on the caller's model
    finally:
        handle.remove()

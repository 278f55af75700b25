"""Run on a CUDA machine (python -m pytest gpu_tests): fast traces keep the contract against the exact trace.

Contract (hrnet_explorer.fold.FAST_RTOL["cuda"]): every map of a fast trace (BatchNorm folded,
channels_last: eager, GraphTracer(fold=True), CompiledTracer; GraphTracer(fold=True, pad=True) with channel widths
padded to multiples of 8) is within 1e-2 of the exact trace's largest magnitude of that map, fp32 with cuDNN's
defaults (TF32 convolutions in both), or bf16 autocast in both (the padded test).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from hrnet_explorer import load_model, trace, zoo
from hrnet_explorer.analyses import reconstruction_error
from hrnet_explorer.errors import InputError
from hrnet_explorer.fold import FAST_RTOL, worst_deviation
from hrnet_explorer.graphs import GraphTracer

if not torch.cuda.is_available():
    raise RuntimeError("gpu_tests need a CUDA device; the CPU suite is tests/.")


def random_loaded(variant: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        torch.manual_seed(0)
        loaded = load_model(variant, "random", device="cuda", cache=False)
    with torch.no_grad():  # BatchNorm statistics away from 0/1, so that the fold does real work
        for m in loaded.model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return loaded


@pytest.mark.parametrize("variant", list(zoo.VARIANTS))
def test_fast_traces_keep_the_contract(variant):
    loaded = random_loaded(variant)
    x = torch.randn(2, 3, 224, 224, device="cuda")
    exact = trace(loaded, x)  # the default on CUDA is the exact path
    assert exact.exact
    eager_fast = trace(loaded, x, exact=False)
    graph_fast = GraphTracer(loaded, 2, 224, precision="fp32", fold=True)(x)
    for fast in (eager_fast, graph_fast):
        assert not fast.exact and fast.names() == exact.names()
        dev = worst_deviation(fast, exact)
        print(f"{variant}: worst per-map deviation {dev:.2e}")
        assert dev <= FAST_RTOL["cuda"], dev
        for ref in fast.modules:
            assert reconstruction_error(fast, ref.stage, ref.index) <= 1e-5 * float(
                fast[f"{ref.name}.fused0"].abs().max()
            )


def memory_growth(run, x: torch.Tensor, calls: int) -> int:
    """Bytes of CUDA memory still allocated after ``calls`` more calls of ``run(x)`` (their results dropped)."""
    for _ in range(3):
        run(x)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(calls):
        run(x)
    torch.cuda.synchronize()
    return torch.cuda.memory_allocated() - before


@pytest.mark.parametrize("variant", list(zoo.VARIANTS))
def test_the_apps_gpu_trace_keeps_the_contract_and_its_memory_flat(variant):
    """graph_trace, what the app and a GPU user meet by default (folded, padded where a width needs it, one CUDA
    graph per shape): every map within FAST_RTOL["cuda"] of the exact trace, and 500 traces leave no memory behind."""
    from hrnet_explorer.graphs import graph_trace

    loaded = random_loaded(variant)
    x = torch.randn(1, 3, 224, 224, device="cuda")
    fast = graph_trace(loaded, x, store="cuda")
    exact = trace(loaded, x)
    assert not fast.exact and fast.names() == exact.names() and fast.shapes == exact.shapes
    dev = worst_deviation(fast, exact)
    growth = memory_growth(lambda x: graph_trace(loaded, x, store="cuda"), x, 500)
    print(f"{variant}: graph_trace worst per-map deviation {dev:.2e}, memory growth over 500 traces {growth} B")
    assert dev <= FAST_RTOL["cuda"], dev
    assert growth <= 1 << 20, growth


@pytest.mark.parametrize("kwargs", [{}, {"mode": "reduce-overhead"}], ids=["own-graph", "graph-trees"])
def test_compiled_tracer_keeps_the_contract_and_replays(kwargs):
    """The compiled trace, in the tracer's own CUDA graph per shape (the default) or Inductor's CUDA-graph trees:
    within the contract on every call, one shape's replay leaves another shape's maps alone (own graph: one memory
    pool per shape), and 500 traces leave no memory behind."""
    from hrnet_explorer.compiled import CompiledTracer

    loaded = random_loaded("hrnet_w18_small")
    tracer = CompiledTracer(loaded, precision="fp32", **kwargs)
    assert tracer.cuda_graph == (not kwargs)
    for _ in range(3):  # later calls replay the CUDA graph into the same buffers
        x = torch.randn(1, 3, 224, 224, device="cuda")
        dev = worst_deviation(tracer(x), trace(loaded, x))
        assert dev <= FAST_RTOL["cuda"], dev
    kept = tracer(x).clone()
    again = tracer(x)
    assert all(torch.equal(again[name], t) for name, t in kept.maps.items())  # the same call, the same answer
    if tracer.cuda_graph:
        one = tracer(x)
        two = torch.randn(2, 3, 224, 224, device="cuda")
        assert worst_deviation(tracer(two), trace(loaded, two)) <= FAST_RTOL["cuda"]
        assert worst_deviation(one, trace(loaded, x)) <= FAST_RTOL["cuda"]  # the batch-2 replay wrote elsewhere
        bad = x.clone()
        bad[0, 1, 5, 7] = float("nan")
        with pytest.raises(InputError, match="NaN or infinite"):  # checked by the graph, read back after the replay
            tracer(bad)
        with pytest.raises(InputError, match="NaN or infinite"):  # a new shape: checked before it compiles
            tracer(torch.cat([bad, bad, bad]))
        assert (3, 3, 224, 224) not in tracer.compile_seconds
        assert worst_deviation(tracer(x), trace(loaded, x)) <= FAST_RTOL["cuda"]
    growth = memory_growth(tracer, x, 500)
    print(f"compiled w18_small {kwargs}: compile {tracer.compile_seconds} s, deviation {dev:.2e}, +{growth} B")
    assert growth <= 1 << 20, growth


def test_tracers_that_differ_only_in_freezing_compile_apart():
    """Two tracers of one model share its private copy, so dynamo would reuse the first one's compiled trace for any
    second compile whose backend compares equal: freezing must be one of the backend's options, not only Inductor's
    config around the call. A third tracer like the second reuses its compile."""
    from torch._dynamo.utils import counters

    from hrnet_explorer.compiled import CompiledTracer

    loaded = random_loaded("hrnet_w18_small")
    x = torch.randn(1, 3, 224, 224, device="cuda")
    CompiledTracer(loaded, precision="fp32")(x)
    compiled = counters["stats"]["unique_graphs"]
    thawed = CompiledTracer(loaded, precision="fp32", freeze=False)
    assert worst_deviation(thawed(x), trace(loaded, x)) <= FAST_RTOL["cuda"]
    assert counters["stats"]["unique_graphs"] == compiled + 1
    CompiledTracer(loaded, precision="fp32", freeze=False)(x)
    assert counters["stats"]["unique_graphs"] == compiled + 1


def test_strict_fp32_fast_trace_is_close_to_exact():
    loaded = random_loaded("hrnet_w18_small")
    x = torch.randn(1, 3, 224, 224, device="cuda")
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        dev = worst_deviation(trace(loaded, x, exact=False), trace(loaded, x))
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    print(f"strict fp32 w18_small: {dev:.2e}")
    assert dev <= FAST_RTOL["cpu"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("variant", ["hrnet_w18", "hrnet_w30"])
def test_padded_graph_tracer_keeps_the_contract(variant, precision):
    """GraphTracer(fold=True, pad=True) at batch 8: channel widths padded to multiples of 8 inside, the maps sliced
    back; same names and shapes as the exact trace, within FAST_RTOL["cuda"] of it in fp32. The contract is an fp32
    one: in bf16 the folded trace itself is 4.6e-2–6.3e-2 from the exact bf16 trace (an H200, random weights), so
    there the padded trace must be no farther from the exact one than the unpadded folded trace is."""
    loaded = random_loaded(variant)
    x = torch.randn(8, 3, 224, 224, device="cuda")
    exact = trace(loaded, x, precision=precision)
    assert exact.exact
    padded_tracer = GraphTracer(loaded, 8, 224, precision=precision, fold=True, pad=True)
    assert padded_tracer.net.hrnet_explorer_widths  # w18: 18/36 → 24/40; w30: 30/60 → 32/64
    padded = padded_tracer(x)
    assert not padded.exact and padded.names() == exact.names() and padded.shapes == exact.shapes
    dev = worst_deviation(padded, exact)
    folded = GraphTracer(loaded, 8, 224, precision=precision, fold=True)(x)  # the same copy unpadded
    folded_dev = worst_deviation(folded, exact)
    report = (
        f"{variant} {precision} batch 8: padded vs exact {dev:.2e}, folded vs exact {folded_dev:.2e}, "
        f"padded vs folded {worst_deviation(padded, folded):.2e}"
    )
    print(report)
    bound = FAST_RTOL["cuda"] if precision == "fp32" else 1.1 * folded_dev
    assert dev <= bound, report
    for ref in padded.modules:
        assert reconstruction_error(padded, ref.stage, ref.index) <= 1e-5 * float(
            padded[f"{ref.name}.fused0"].float().abs().max()
        )

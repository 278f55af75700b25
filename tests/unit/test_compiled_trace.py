"""trace_forward (the trace as one forward with outputs, for torch.compile) equals the hook trace."""

from __future__ import annotations

import warnings

import pytest
import torch

from hrnet_explorer import trace, trace_names, zoo
from hrnet_explorer.compiled import CompiledTracer, trace_forward
from hrnet_explorer.errors import InputError
from hrnet_explorer.fold import FAST_RTOL, deviations


@pytest.mark.parametrize("variant", list(zoo.VARIANTS))
def test_trace_forward_is_the_hook_trace_bit_for_bit(variant):
    torch.manual_seed(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        model = zoo.load_model(variant, "random", device="cpu", cache=False).model
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        out = trace_forward(model, x)
    hooked = trace(model, x, exact=True)
    assert list(out) == trace_names(model) == hooked.names()
    for name, t in hooked.maps.items():
        assert torch.equal(out[name], t), name


def test_compiled_tracer_graph_has_no_breaks_and_keeps_the_contract(w18_small):
    x = torch.randn(1, 3, 64, 64)
    tracer = CompiledTracer(w18_small, mode=None, backend="eager")  # dynamo with fullgraph=True, no codegen
    result = tracer(x)
    assert tracer.compile_seconds[(1, 3, 64, 64)] > 0
    exact = trace(w18_small, x, exact=True)
    assert result.names() == exact.names() and result.shapes == exact.shapes and not result.exact
    for name, dev in deviations(result, exact).items():
        assert dev <= FAST_RTOL["cpu"], name
    stats = result.fusion(4, 0)
    assert torch.allclose(stats.energy_share.sum(-1), torch.ones(1, 4), atol=1e-6)


def test_compiled_tracer_graphs_only_on_cuda(w18_small):
    cpu = CompiledTracer(w18_small, backend="eager")
    assert not cpu.cuda_graph and not cpu.pads(1) and not cpu.pads(256)  # CPU: no CUDA graph, no padding by default
    with pytest.raises(InputError, match="NaN"):
        cpu(torch.full((1, 3, 64, 64), float("nan")))
    with pytest.raises(InputError, match="needs a CUDA model"):
        CompiledTracer(w18_small, backend="eager", cuda_graph=True)

"""Batch mode and the CUDA-graph path's bookkeeping, as far as a CPU can check them.

The graph capture itself needs CUDA: gpu_tests/ holds the tests run on a GPU machine.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from hrnet_explorer import predict, trace
from hrnet_explorer.batch import predict_many, trace_many
from hrnet_explorer.copies import make_copy
from hrnet_explorer.graphs import GraphedForward, GraphedIG, GraphTracer, graph_trace


def images(n: int) -> list[Image.Image]:
    return [Image.effect_mandelbrot((100 + 10 * i, 90), (-2, -1.2, 1, 1.2), 20 + i).convert("RGB") for i in range(n)]


def test_graph_tracer_needs_cuda(w18_small):
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        GraphTracer(w18_small, batch_size=1)
    with pytest.raises(ValueError, match="use_graphs=False"):
        next(trace_many(w18_small, images(1), use_graphs=True))
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        graph_trace(w18_small, torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        GraphedIG(make_copy(w18_small.model, channels_last=True), (1, 3, 64, 64), [0.5], [1.0], 1)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        GraphedForward(make_copy(w18_small.model, channels_last=True), (2, 3, 64, 64))


def test_a_channels_last_copy_computes_the_same(w18_small):
    net = make_copy(w18_small.model, channels_last=True)
    assert net is not w18_small.model
    assert net.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert w18_small.model.conv1.weight.is_contiguous()  # the caller's model is untouched
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(net(x.contiguous(memory_format=torch.channels_last)), w18_small.model(x), atol=1e-4)


def test_trace_many_batches_match_single_traces(w18_small):
    imgs = images(5)
    batches = list(trace_many(w18_small, imgs, batch_size=2, keep="summaries", input_size=64))
    assert [b.input_shape[0] for b in batches] == [2, 2, 1]
    assert batches[-1].shapes["stage4.module0.fused0"][0] == 1
    logits = torch.cat([b.logits for b in batches])
    for i, img in enumerate(imgs):
        single = trace(w18_small, img, input_size=64, keep="summaries")
        assert torch.allclose(logits[i], single.logits[0], atol=1e-4)
        stats = batches[i // 2].fusion(4, 0).energy_share[i % 2]
        assert torch.allclose(stats, single.fusion(4, 0).energy_share[0], atol=1e-5)


def test_predict_many_matches_predict(w18_small):
    imgs = images(3)
    many = predict_many(w18_small, imgs, batch_size=2, topk=3, input_size=64)
    for img, top in zip(imgs, many, strict=True):
        single = predict(w18_small, img, topk=3, input_size=64).top
        assert [s.index for s in top] == [s.index for s in single]
        assert top[0].probability == pytest.approx(single[0].probability, abs=1e-4)


def test_bad_image_in_a_batch_names_it(w18_small):
    with pytest.raises(ValueError, match="image 1: .*not an image"):
        predict_many(w18_small, [images(1)[0], b"not an image"], batch_size=2)


def test_clone_and_head_own_their_tensors(w18_small):
    result = trace(w18_small, torch.randn(3, 3, 64, 64))
    copy = result.clone()
    head = result.head(2)
    with torch.inference_mode():  # what the next graph replay would do
        result.maps["stage2.module0.fused0"].zero_()
    assert copy["stage2.module0.fused0"].abs().sum() > 0
    assert head["stage2.module0.fused0"].shape[0] == 2 and head["stage2.module0.fused0"].abs().sum() > 0
    assert head.input_shape == (2, 3, 64, 64)

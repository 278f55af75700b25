"""Where IG-50's wall time goes on a GPU: the whole call, its host-side parts, the graph's replay alone, and the
replay for other chunk sizes, with cuDNN's benchmark mode on or off while the graph is captured.

Wall times (``perf_counter`` around each call, synchronised), medians of 30 warm calls; then a torch.profiler
table of one replay's kernels. Prints the table and one JSON line.

    python benchmarks/ig_breakdown.py hrnet_w18
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings

import torch
from torch.profiler import ProfilerActivity, profile

from hrnet_explorer.attribution import attribute_pixels
from hrnet_explorer.attribution._captum import integration_points
from hrnet_explorer.attribution._core import _prepare
from hrnet_explorer.copies import private_copy
from hrnet_explorer.fold import fingerprint
from hrnet_explorer.graphs import GraphedIG
from hrnet_explorer.zoo import load_model

STEPS = 50


def wall_ms(fn, n: int = 30, warm: int = 3) -> float:
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return round(statistics.median(times), 3)


def main() -> None:
    variant = sys.argv[1] if len(sys.argv) > 1 else "hrnet_w18"
    warnings.simplefilter("ignore")
    loaded = load_model(variant, "random", device="cuda", cache=False)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224, device="cuda")
    out: dict = {"variant": variant, "device": torch.cuda.get_device_name(), "torch": torch.__version__}

    out["attribute_pixels_ms"] = wall_ms(lambda: attribute_pixels(loaded, x, "ig", n_steps=STEPS))
    out["fingerprint_ms"] = wall_ms(lambda: fingerprint(loaded.model))
    out["prepare_ms"] = wall_ms(lambda: _prepare(loaded, x, None))  # input checks, the copies' lookup
    padded = private_copy(loaded.model, "padded")
    graphed = next(iter(padded.derived["graphed_ig"].values()))  # what attribute_pixels replays
    xl = x.contiguous(memory_format=torch.channels_last)
    b = torch.zeros_like(xl)
    out["graphedig_call_ms"] = wall_ms(lambda: graphed(xl, b, None))
    out["replay_only_ms"] = wall_ms(graphed.graph.replay)

    alphas, weights = integration_points("gausslegendre", STEPS)
    fast = private_copy(loaded.model, "folded").net

    def build(chunk: int, benchmark: bool, precision: str = "fp32") -> GraphedIG:
        with torch.backends.cudnn.flags(enabled=True, benchmark=benchmark, deterministic=False, allow_tf32=True):
            return GraphedIG(fast, tuple(xl.shape), alphas, weights, chunk, precision)

    reference = graphed(xl, b, None)[0]
    for benchmark in (False, True):
        for chunk in (50, 25, 17, 10):
            start = time.perf_counter()
            ig = build(chunk, benchmark)
            key = f"chunk{chunk}_bench{int(benchmark)}"
            out[f"{key}_capture_s"] = round(time.perf_counter() - start, 2)
            out[f"{key}_replay_ms"] = wall_ms(ig.graph.replay)
            attr = ig(xl, b, None)[0]
            out[f"{key}_maxrel_vs_default"] = float((attr - reference).abs().max() / reference.abs().max())
            del ig
            torch.cuda.empty_cache()
    ig = build(50, True, "bf16")
    out["bf16_chunk50_bench1_replay_ms"] = wall_ms(ig.graph.replay)

    ig = build(50, False)
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        ig.graph.replay()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

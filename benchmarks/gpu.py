"""GPU speed: plain timm vs the explorer, per variant, ratios computed in the same run.

For each variant (random weights, 224 px): batch-1 latency of a plain forward (eager and CUDA
graph) and of a full trace (eager and CUDA graph); batch-N throughput (bf16 autocast,
channels_last) of a plain forward and of an eager trace per keep mode; and the bf16-vs-fp32 logit
deviation. Prints one JSON line per variant; ``--out`` also writes them to a file.

    python benchmarks/gpu.py --variants hrnet_w18_small hrnet_w18 hrnet_w48
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings

import torch

from hrnet_explorer import load_model, trace
from hrnet_explorer.graphs import GraphTracer, fast_model, warm_up
from hrnet_explorer.runtime import autocast
from hrnet_explorer.zoo import VARIANTS, RandomWeightsWarning


def cuda_ms(fn, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn`` in ms, timed with CUDA events around each call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def plain_graph(net: torch.nn.Module, x: torch.Tensor, precision: str):
    """The plain forward captured as a CUDA graph (the launch-overhead-free baseline)."""
    static = x.clone()

    def forward():
        with torch.inference_mode(), autocast(x.device, precision, cache=False):
            net(static)

    warm_up(forward, x.device)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), autocast(x.device, precision, cache=False), torch.cuda.graph(graph):
        net(static)
    return graph


def bench_variant(variant: str, batch: int, repeats: int) -> dict:
    loaded = load_model(variant, "random", device="cuda", cache=False)
    row: dict = {"variant": variant, "device": torch.cuda.get_device_name()}
    x1 = torch.randn(1, 3, 224, 224, device="cuda")

    def eager_plain():
        with torch.inference_mode():
            loaded.model(x1)

    row["b1_plain_eager_ms"] = cuda_ms(eager_plain, repeats)
    row["b1_trace_eager_ms"] = cuda_ms(lambda: trace(loaded, x1), repeats)
    for fmt, channels_last in (("nchw", False), ("nhwc", True)):
        net = fast_model(loaded.model, channels_last)
        xg = x1.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        graph = plain_graph(net, xg, "fp32")
        row[f"b1_plain_graph_{fmt}_ms"] = cuda_ms(graph.replay, repeats)
        tracer = GraphTracer(loaded, 1, 224, keep="all", precision="fp32", channels_last=channels_last)
        row[f"b1_trace_graph_{fmt}_ms"] = cuda_ms(lambda t=tracer, x=xg: t(x), repeats)
        del net, graph, tracer
    best_plain = min(row["b1_plain_graph_nchw_ms"], row["b1_plain_graph_nhwc_ms"])
    best_trace = min(row["b1_trace_graph_nchw_ms"], row["b1_trace_graph_nhwc_ms"])
    row["b1_trace_graph_over_plain_graph"] = best_trace / best_plain

    # Exactness of the graph path: same maps as an eager trace of the same (contiguous, fp32) model.
    eager = trace(loaded, x1)
    graph_trace = GraphTracer(loaded, 1, 224, precision="fp32", channels_last=False)(x1)
    row["graph_vs_eager_max_abs"] = max(
        (graph_trace[n].float() - eager[n].float()).abs().max().item() for n in eager.maps
    )

    # bf16 deviation from fp32 (random weights: a numerical check, not an accuracy claim).
    bf16 = trace(loaded, x1, precision="bf16", keep="outputs").logits.float()
    row["bf16_logit_max_abs_dev"] = (bf16 - eager.logits).abs().max().item()
    row["bf16_logit_rel_dev"] = row["bf16_logit_max_abs_dev"] / eager.logits.abs().max().item()
    del eager, graph_trace

    # Throughput at batch N: bf16 autocast + channels_last, eager.
    net = fast_model(loaded.model, True)
    xb = torch.randn(batch, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)

    def plain_batch():
        with torch.inference_mode(), autocast(xb.device, "bf16"):
            net(xb)

    ms = cuda_ms(plain_batch, max(5, repeats // 4))
    row[f"b{batch}_plain_img_s"] = batch / ms * 1e3
    fast = type(loaded)(**{**vars(loaded), "model": net, "precision": "bf16"})
    for keep in ("summaries", "outputs", "all"):
        for mode in ("eager", "graph"):
            name = f"b{batch}_trace_{mode}_{keep}"
            try:
                if mode == "eager":
                    ms = cuda_ms(lambda k=keep: trace(fast, xb, keep=k), max(5, repeats // 4))
                else:
                    tracer = GraphTracer(loaded, batch, 224, keep=keep, precision="bf16", channels_last=True)
                    ms = cuda_ms(lambda t=tracer: t(xb), max(5, repeats // 4))
                    del tracer
                row[f"{name}_img_s"] = batch / ms * 1e3
                row[f"{name}_over_plain"] = row[f"{name}_img_s"] / row[f"b{batch}_plain_img_s"]
            except torch.OutOfMemoryError:
                row[f"{name}_img_s"] = "OOM"
            torch.cuda.empty_cache()
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RandomWeightsWarning)
    torch.backends.cudnn.benchmark = True
    rows = []
    for variant in args.variants:
        rows.append(bench_variant(variant, args.batch, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
        torch.cuda.empty_cache()
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(json.dumps(r) for r in rows) + "\n")


if __name__ == "__main__":
    main()

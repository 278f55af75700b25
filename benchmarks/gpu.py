"""GPU speed: plain timm vs the explorer, per variant, ratios computed in the same run.

For each variant (random weights, 224 px): batch-1 latency of a plain forward (eager and CUDA
graph) and of a full trace (eager and CUDA graph); batch-N throughput (bf16 autocast,
channels_last) of a plain forward and of an eager trace per keep mode; and the bf16-vs-fp32 logit
deviation. Prints one JSON line per variant; ``--out`` also writes them to a file.

    python benchmarks/gpu.py --variants hrnet_w18_small hrnet_w18 hrnet_w48
    python benchmarks/gpu.py --speed2 --variants hrnet_w18_small hrnet_w18   # issue 13: vs torch.compile

``--speed2`` measures, per variant and in one process: the plain forward eager, as a CUDA graph and
compiled (``torch.compile(mode="reduce-overhead")``, both layouts at batch 1), against the full trace as
GraphTracer (exact, and with BatchNorm folded before capture) and as CompiledTracer (the trace as one
compiled forward with outputs, BN folded); batch 1 fp32 and batch N bf16 channels_last; for w18/w30/w44 also both
fast traces with channel widths padded to multiples of 8 (``pad=True``, hrnet_explorer.pad); compile times;
the fast traces' worst per-map deviation from the exact trace; GPU memory over 500 fast traces.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
import warnings

import torch

from hrnet_explorer import load_model, trace
from hrnet_explorer.fold import worst_deviation
from hrnet_explorer.graphs import GraphTracer, warm_up
from hrnet_explorer.pad import needs_padding
from hrnet_explorer.runtime import autocast
from hrnet_explorer.zoo import VARIANTS, RandomWeightsWarning


def plain_copy(model: torch.nn.Module, channels_last: bool) -> torch.nn.Module:
    """The baseline: the model as timm builds it (in-place ReLUs, BatchNorm), an eval copy in the given layout."""
    net = copy.deepcopy(model).eval()
    return net.to(memory_format=torch.channels_last) if channels_last else net


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
        net = plain_copy(loaded.model, channels_last)
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
    net = plain_copy(loaded.model, True)
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


def _compiled(fn, x: torch.Tensor) -> tuple[object, float]:
    """First call of a compiled callable (compiles), timed; returns the callable and seconds."""
    start = time.perf_counter()
    fn(x)
    torch.cuda.synchronize()
    return fn, time.perf_counter() - start


def bench_speed2(
    variant: str, batch: int, repeats: int, skip_batch: bool = False, b1_layouts: tuple[str, ...] = ("nchw", "nhwc")
) -> dict:
    from hrnet_explorer.compiled import CompiledTracer

    torch._dynamo.reset()
    loaded = load_model(variant, "random", device="cuda", cache=False)
    row: dict = {"variant": variant, "device": torch.cuda.get_device_name(), "torch": torch.__version__}
    cl = torch.channels_last
    # Widths 18/30/44 (and their multiples) are padded; w18_small and w32/w40/w48/w64 have nothing to pad.
    pads = needs_padding(loaded.model)
    for b, precision in ((1, "fp32"), (batch, "bf16")):
        if b == batch and skip_batch:
            continue
        p = f"b{b}_"
        x = torch.randn(b, 3, 224, 224, device="cuda")
        xl = x.contiguous(memory_format=cl)
        reps = repeats if b == 1 else max(5, repeats // 3)

        def per_call(ms, b=b):  # batch 1: ms; batch N: images/s
            return ms if b == 1 else b / ms * 1e3

        layouts = [(fmt, fmt == "nhwc") for fmt in b1_layouts] if b == 1 else [("nhwc", True)]
        for fmt, channels_last in layouts:
            net = plain_copy(loaded.model, channels_last)
            xi = xl if channels_last else x

            def eager(net=net, xi=xi, precision=precision):
                with torch.inference_mode(), autocast(xi.device, precision):
                    net(xi)

            row[f"{p}plain_eager_{fmt}"] = per_call(cuda_ms(eager, reps))
            graph = plain_graph(net, xi, precision)
            row[f"{p}plain_graph_{fmt}"] = per_call(cuda_ms(graph.replay, reps))
            del graph
            compiled = torch.compile(net, mode="reduce-overhead")

            def run_compiled(xi, compiled=compiled, precision=precision):
                with torch.inference_mode(), autocast(xi.device, precision):
                    return compiled(xi)

            _, row[f"{p}plain_compiled_{fmt}_compile_s"] = _compiled(run_compiled, xi)
            row[f"{p}plain_compiled_{fmt}"] = per_call(cuda_ms(lambda f=run_compiled, xi=xi: f(xi), reps))
            del compiled, net
            torch.cuda.empty_cache()
        graphed = [("trace_graph_exact", False, False), ("trace_graph_folded", True, False)]
        graphed += [("trace_graph_padded", True, True)] if pads else []  # channels padded to multiples of 8
        for name, fold, pad in graphed:
            tracer = GraphTracer(
                loaded, b, 224, keep="all", precision=precision, channels_last=True, fold=fold, pad=pad
            )
            row[f"{p}{name}"] = per_call(cuda_ms(lambda t=tracer, xl=xl: t(xl), reps))
            if b == 1 and fold:
                exact = GraphTracer(loaded, 1, 224, keep="all", precision=precision, channels_last=False)(x).clone()
                row[f"{p}{name}_worst_rel"] = worst_deviation(tracer(xl), exact)
            del tracer
            torch.cuda.empty_cache()
        tracer = CompiledTracer(loaded, precision=precision, fold=True, channels_last=True)
        tracer(xl)
        row[f"{p}trace_compiled_compile_s"] = tracer.compile_seconds[tuple(x.shape)]
        row[f"{p}trace_compiled"] = per_call(cuda_ms(lambda t=tracer, xl=xl: t(xl), reps))
        if b == 1:
            exact = GraphTracer(loaded, 1, 224, keep="all", precision=precision, channels_last=False)(x).clone()
            row[f"{p}trace_compiled_worst_rel"] = worst_deviation(tracer(xl), exact)
            # Memory over 500 fast traces (compiled, then eager folded): allocated before vs after.
            for label, fn in (
                ("compiled", lambda t=tracer, xl=xl: t(xl)),
                ("eager_fast", lambda x=x: trace(loaded, x, exact=False)),
            ):
                for _ in range(10):
                    fn()
                torch.cuda.synchronize()
                before = torch.cuda.memory_allocated()
                for _ in range(500):
                    fn()
                torch.cuda.synchronize()
                row[f"mem500_{label}_growth_bytes"] = torch.cuda.memory_allocated() - before
        del tracer
        torch.cuda.empty_cache()
        if pads:  # the compiled trace of the channel-padded copy
            tracer = CompiledTracer(loaded, precision=precision, fold=True, pad=True, channels_last=True)
            tracer(xl)
            row[f"{p}trace_compiled_padded_compile_s"] = tracer.compile_seconds[tuple(x.shape)]
            row[f"{p}trace_compiled_padded"] = per_call(cuda_ms(lambda t=tracer, xl=xl: t(xl), reps))
            del tracer
            torch.cuda.empty_cache()
        compiled_rows = [v for k, v in row.items() if k.startswith(f"{p}plain_compiled_") and not k.endswith("_s")]
        plain = min(compiled_rows) if b == 1 else max(compiled_rows)  # the fastest: least ms, most images/s
        for name in (
            "trace_graph_exact",
            "trace_graph_folded",
            "trace_graph_padded",
            "trace_compiled",
            "trace_compiled_padded",
        ):
            # batch 1: time over the compiled plain forward's (target ≤ 1.10); batch N: throughput over its (≥ 0.95)
            if f"{p}{name}" in row:
                row[f"{p}{name}_over_compiled"] = row[f"{p}{name}"] / plain
    row["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=None)
    parser.add_argument("--speed2", action="store_true", help="issue 13: compiled baselines and fast traces")
    parser.add_argument("--skip-batch", action="store_true", help="--speed2: batch 1 only")
    parser.add_argument(
        "--b1-layouts",
        nargs="+",
        default=["nchw", "nhwc"],
        choices=("nchw", "nhwc"),
        help="--speed2: layouts of the compiled plain forward at batch 1 (each compile takes ~40 s)",
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", RandomWeightsWarning)
    torch.backends.cudnn.benchmark = True
    rows = []
    for variant in args.variants:
        if args.speed2:
            rows.append(bench_speed2(variant, args.batch, args.repeats, args.skip_batch, tuple(args.b1_layouts)))
        else:
            rows.append(bench_variant(variant, args.batch, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
        torch.cuda.empty_cache()
        if args.out:  # after every variant, so a run stopped at its time limit keeps what it measured
            with open(args.out, "w") as fh:
                fh.write("\n".join(json.dumps(r) for r in rows) + "\n")


if __name__ == "__main__":
    main()

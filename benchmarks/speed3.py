"""Speed III (issue 22): the full trace against the fastest plain forward an expert compiles, per variant.

The baseline is the plain timm model compiled for inference as PyTorch's own dashboard does
(``freezing_cudagraphs``): Inductor's freezing on (weights constant-folded, BatchNorm folded by the compiler),
``mode="reduce-overhead"`` (CUDA graphs), channels_last, under ``torch.no_grad``; fp32 at batch 1 with PyTorch's
default math (cuDNN convolutions may use TF32, matmuls don't), bf16 autocast at batch N. Beside it, as extra
columns, the old baselines: the same compile without freezing, and the eager forward. The trace is
:class:`~hrnet_explorer.compiled.CompiledTracer` with its defaults (BatchNorm folded, Inductor freezing, channel
widths padded where a width needs it and padding pays at that batch, on a GPU its own CUDA graph per shape), a full
trace (``keep="all"``, every map), in the same process.

``--cache-dir D``: the tracer saves its compiled artifacts to D; run the script a second time with ``--warm``
and the same D to measure the warm start (time to the first trace in a fresh process, per shape).
At batch 1 the row also records the CUDA memory still allocated after 500 more traces
(``b1_trace_memory_growth_500_bytes``: 0 when replays leave nothing behind). ``trace_check_before``: the trace with
the host-side input check before each call, the previous default (the tracer's graph now checks its input itself).
Prints one JSON line per variant; ``--out`` appends them to a file.

    python benchmarks/speed3.py --variants hrnet_w18_small hrnet_w18 --cache-dir /tmp/hx --out cold.jsonl
    python benchmarks/speed3.py --variants hrnet_w18_small hrnet_w18 --cache-dir /tmp/hx --warm --out warm.jsonl

``--thawed-trace``: the trace compiled without Inductor's freezing (``CompiledTracer(freeze=False)``; its BatchNorm is
folded either way). AOTAutograd's cache refuses a frozen graph ("Cannot cache a graph with freezing enabled", torch
2.14 on a CPU), so a frozen trace's warm start traces and partitions its graph again; a thawed one can load it.

``OUT=D bash benchmarks/speed3_rows.sh VARIANT...`` runs the table's way: both passes per variant, one process each,
each with a fresh ``TORCHINDUCTOR_CACHE_DIR``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings

import torch
from gpu import cuda_ms  # benchmarks/gpu.py, beside this script

from hrnet_explorer import load_model, trace
from hrnet_explorer.compiled import CompiledTracer, freezing
from hrnet_explorer.fold import worst_deviation
from hrnet_explorer.images import check_input_tensor
from hrnet_explorer.runtime import autocast
from hrnet_explorer.zoo import VARIANTS, RandomWeightsWarning


def frozen_plain(model: torch.nn.Module, x: torch.Tensor, precision: str, freeze: bool, mode: str = "reduce-overhead"):
    """The plain model compiled as an expert would for inference; → (a callable, compile seconds)."""
    net = copy.deepcopy(model).eval().requires_grad_(False).to(memory_format=torch.channels_last)
    compiled = torch.compile(net, mode=mode)

    def run():
        with torch.no_grad(), autocast(x.device, precision), freezing(freeze):
            return compiled(x)

    start = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return run, time.perf_counter() - start


def bench(
    variant: str,
    batch: int,
    repeats: int,
    cache_dir: str | None,
    warm: bool,
    unfrozen: bool = True,
    trace_freeze: bool = True,
) -> dict:
    torch._dynamo.reset()
    loaded = load_model(variant, "random", device="cuda", cache=False)
    row: dict = {"variant": variant, "device": torch.cuda.get_device_name(), "torch": torch.__version__}
    row["trace_freeze"] = trace_freeze
    for b, precision in ((1, "fp32"), (batch, "bf16")):
        p = f"b{b}_"
        x = torch.randn(b, 3, 224, 224, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
        xl = x.contiguous(memory_format=torch.channels_last)
        reps = repeats if b == 1 else max(5, repeats // 3)

        def per_call(ms, b=b):  # batch 1: ms; batch N: images/s
            return ms if b == 1 else b / ms * 1e3

        start = time.perf_counter()
        tracer = CompiledTracer(loaded, precision=precision, cache_dir=cache_dir, freeze=trace_freeze)
        tracer(xl)
        row[f"{p}trace_first_call_s"] = round(time.perf_counter() - start, 2)  # construction + compile (or load)
        row[f"{p}trace_pad"] = tracer.pads(b)
        row[f"{p}trace"] = per_call(cuda_ms(lambda t=tracer, xl=xl: t(xl), reps))
        row[f"{p}trace_check_before"] = per_call(cuda_ms(lambda t=tracer, xl=xl: t(check_input_tensor(xl)), reps))
        if b == 1:
            exact = trace(loaded, x, exact=True)
            row[f"{p}trace_worst_rel"] = worst_deviation(tracer(xl), exact)
            del exact
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            for _ in range(500):
                tracer(xl)
            torch.cuda.synchronize()
            row[f"{p}trace_memory_growth_500_bytes"] = torch.cuda.memory_allocated() - before
        del tracer
        torch.cuda.empty_cache()
        if warm:  # the warm pass measures the tracer's start only
            continue
        for name, freeze in (("plain_frozen", True), ("plain_compiled", False))[: 2 if unfrozen else 1]:
            run, seconds = frozen_plain(loaded.model, xl, precision, freeze)
            row[f"{p}{name}_compile_s"] = round(seconds, 2)
            row[f"{p}{name}"] = per_call(cuda_ms(run, reps))
            del run
            torch.cuda.empty_cache()
        net = copy.deepcopy(loaded.model).eval().to(memory_format=torch.channels_last)

        def eager(net=net, xl=xl, precision=precision):
            with torch.inference_mode(), autocast(xl.device, precision):
                net(xl)

        row[f"{p}plain_eager"] = per_call(cuda_ms(eager, reps))
        del net
        # batch 1: the trace's time over the frozen plain forward's (target ≤ 1.05); batch N: throughput (≥ 1.0)
        row[f"{p}trace_over_frozen"] = row[f"{p}trace"] / row[f"{p}plain_frozen"]
    row["max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}


def emit(row: dict, out: str | None) -> None:
    """Print the row as one JSON line; append it to ``out`` too, if given."""
    line = json.dumps(row)
    print(line, flush=True)
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--warm", action="store_true", help="second process: the tracer's warm start only")
    parser.add_argument("--no-unfrozen", action="store_true", help="skip the old baseline (compile without freezing)")
    parser.add_argument("--thawed-trace", action="store_true", help="the trace compiled without Inductor's freezing")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RandomWeightsWarning)
    for variant in args.variants:
        row = {
            "pass": "warm" if args.warm else "cold",
            **bench(
                variant,
                args.batch,
                args.repeats,
                args.cache_dir,
                args.warm,
                unfrozen=not args.no_unfrozen,
                trace_freeze=not args.thawed_trace,
            ),
        }
        emit(row, args.out)


if __name__ == "__main__":
    main()

"""Speed III's levers (issue 22): where a full compiled trace spends its time against the frozen plain forward.

Per variant and batch (batch 1 fp32, batch N bf16 channels_last), in one process on one GPU:
- ``plain_frozen``: the baseline of benchmarks/speed3.py (freezing, ``reduce-overhead``);
- ``trace_trees`` (batch 1): :class:`~hrnet_explorer.compiled.CompiledTracer` with ``mode="reduce-overhead"``
  (Inductor's CUDA-graph trees rebuild every returned map's tensor on every call);
- ``trace_graph``: the same compiled trace captured by the tracer in one CUDA graph per shape (``cuda_graph=True``:
  a call is a copy and one replay; the maps are the graph's static outputs);
- ``check_input_ms``: the host-side input check (``check_input_tensor``: one finiteness read-back);
  ``trace_graph_check_before``: the trace with it before each call (the previous default; the tracer's graph now
  checks its input on the device and reads the flag back after the replay);
- ``kernels``/``kernel_ms``: kernels per call and their summed GPU time, Inductor's Triton kernels apart from the
  library's (cuDNN/cuBLAS), memory copies apart, from ``torch.profiler`` over replays, for the plain forward and the
  traced one (``--top N``: the N most expensive kernels of each);
- ``trace_graph_unpadded``: for a variant the tracer pads, the same trace with ``pad=False`` (does padding pay at this
  batch?);
- with ``--pad-multiples``: the trace of copies padded to those channel multiples (a lever for the unpadded widths);
- with ``--max-autotune``: the plain forward compiled with ``mode="max-autotune"`` (freezing, CUDA graphs) and the
  trace with ``mode="max-autotune-no-cudagraphs"`` in the tracer's own graph (Inductor autotunes its kernels);
- with ``--conv-1x1-as-mm``: the trace compiled with Inductor's ``conv_1x1_as_mm`` (1×1 convolutions as matmuls);
- with ``--without-upsampled``: the trace in its own graph returning every map but the upsampled fusion edges
  (``edge{j}to{i}``, j > i), so the compiler never writes them. Not a trace (maps are missing): the most that storing
  each upsampled edge at its source resolution could give, whose source-resolution map the 1×1 convolution writes
  anyway, in the plain forward too.
Prints one JSON line per (variant, batch); ``--out`` appends them.

    python benchmarks/levers.py --variants hrnet_w18 hrnet_w40 --batches 1
    python benchmarks/levers.py --variants hrnet_w18_small hrnet_w64 --batches 256 --pad-multiples 16 32
"""

from __future__ import annotations

import argparse
import functools
import warnings

import torch
from gpu import cuda_ms  # benchmarks/gpu.py, beside this script
from speed3 import emit, frozen_plain

from hrnet_explorer import load_model
from hrnet_explorer.anatomy import module_refs
from hrnet_explorer.compiled import CompiledTracer, inductor_options, trace_forward
from hrnet_explorer.copies import make_copy
from hrnet_explorer.images import check_input_tensor
from hrnet_explorer.pad import needs_padding, pad_channels
from hrnet_explorer.zoo import VARIANTS, RandomWeightsWarning


def kernel_profile(fn, calls: int = 5, top: int = 0) -> dict:
    """Kernels per call and their summed GPU time (ms per call), Triton (Inductor's) and the rest (libraries);
    memory copies and sets apart; with ``top``, the ``top`` most expensive kernels by name."""
    fn()
    torch.cuda.synchronize()
    activities = [torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    out = {"kernels": 0.0, "kernel_ms": 0.0, "triton_kernels": 0.0, "triton_ms": 0.0, "copies": 0.0, "copy_ms": 0.0}
    per_kernel = []
    for event in prof.key_averages():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        ms = event.device_time_total / 1e3 / calls
        if event.key.startswith(("Memcpy", "Memset")):
            out["copies"] += event.count / calls
            out["copy_ms"] += ms
            continue
        out["kernels"] += event.count / calls
        out["kernel_ms"] += ms
        per_kernel.append((ms, event.count / calls, event.key[:80]))
        if event.key.startswith("triton"):
            out["triton_kernels"] += event.count / calls
            out["triton_ms"] += ms
    out = {k: round(v, 4) for k, v in out.items()}
    if top:
        out["top"] = [[name, round(count, 1), round(ms, 4)] for ms, count, name in sorted(per_kernel)[::-1][:top]]
    return out


def upsampled_edges(net: torch.nn.Module) -> frozenset[str]:
    """The trace names of ``net``'s upsampled fusion edges: ``edge{j}to{i}`` with j > i."""
    n = {r.name: r.num_streams for r in module_refs(net)}
    return frozenset(f"{name}.edge{j}to{i}" for name, k in n.items() for i in range(k) for j in range(i + 1, k))


def _without(net, widths: dict[str, int], dropped: frozenset[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v for k, v in trace_forward(net, x, widths).items() if k not in dropped}


def without_upsampled_edges(tracer: CompiledTracer, batch: int) -> None:
    """Recompile ``tracer``'s forward for this batch (before its first call) to return no upsampled fusion edge."""
    forward = tracer._forward(tracer.pads(batch))
    widths = dict(getattr(forward.net, "hrnet_explorer_widths", {}))
    lean = functools.partial(_without, forward.net, widths, upsampled_edges(forward.net))
    options = inductor_options(None, tracer.freeze)
    forward.compiled = torch.compile(lean, options=options, fullgraph=True, dynamic=False)


def bench(
    variant: str,
    batch: int,
    repeats: int,
    multiples: list[int],
    max_autotune: bool,
    conv_1x1_as_mm: bool,
    trees: bool = True,
    top: int = 0,
    without_upsampled: bool = False,
) -> dict:
    torch._dynamo.reset()
    loaded = load_model(variant, "random", device="cuda", cache=False)
    precision = "fp32" if batch == 1 else "bf16"
    x = torch.randn(batch, 3, 224, 224, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    xl = x.contiguous(memory_format=torch.channels_last)
    reps = repeats if batch == 1 else max(5, repeats // 3)
    row: dict = {"variant": variant, "batch": batch, "precision": precision, "device": torch.cuda.get_device_name()}

    def rate(ms):  # batch 1: ms per call; batch N: images/s
        return round(ms if batch == 1 else batch / ms * 1e3, 4)

    run, row["plain_frozen_compile_s"] = frozen_plain(loaded.model, xl, precision, True)
    row["plain_frozen"] = rate(cuda_ms(run, reps))
    row["plain_profile"] = kernel_profile(run, top=top)
    del run
    row["check_input_ms"] = round(cuda_ms(lambda: check_input_tensor(xl), reps), 4)
    if max_autotune:
        run, seconds = frozen_plain(loaded.model, xl, precision, True, "max-autotune")
        row["plain_frozen_max_autotune_compile_s"] = round(seconds, 2)
        row["plain_frozen_max_autotune"] = rate(cuda_ms(run, reps))
        del run
    levers = [("trace_graph", {"cuda_graph": True})]
    if batch == 1 and trees:  # the graph trees' per-call output rebuild matters where a call is short
        levers.insert(0, ("trace_trees", {"mode": "reduce-overhead"}))
    if needs_padding(loaded.model):
        levers.append(("trace_graph_unpadded", {"pad": False}))
    if max_autotune:
        levers.append(("trace_graph_max_autotune", {"mode": "max-autotune-no-cudagraphs", "cuda_graph": True}))
    if conv_1x1_as_mm:
        levers.append(("trace_graph_1x1mm", {}))
    if without_upsampled:
        levers.append(("trace_graph_without_upsampled", {}))
    for name, kwargs in levers:
        # Each lever compiles afresh: dynamo would reuse the compiled trace of a copy it has seen (tracers of the same
        # model share their private copy), and an Inductor setting such as conv_1x1_as_mm is none of its guards.
        torch._dynamo.reset()
        tracer = CompiledTracer(loaded, precision=precision, **kwargs)
        if name == "trace_graph_without_upsampled":
            without_upsampled_edges(tracer, batch)
        with torch._inductor.config.patch(conv_1x1_as_mm=name == "trace_graph_1x1mm"):
            tracer(xl)
        row[f"{name}_compile_s"] = round(next(iter(tracer.compile_seconds.values())), 2)
        row[f"{name}_pad"] = tracer.pads(batch)
        row[name] = rate(cuda_ms(lambda t=tracer: t(xl), reps))
        row[f"{name}_over_frozen"] = round(row[name] / row["plain_frozen"], 4)
        if name == "trace_graph":  # the previous default: the input's finiteness read back before the replay
            row["trace_graph_check_before"] = rate(cuda_ms(lambda t=tracer: t(check_input_tensor(xl)), reps))
        if name in ("trace_graph", "trace_graph_unpadded"):
            row[f"{name}_profile"] = kernel_profile(lambda t=tracer: t(xl), top=top)
        del tracer
        torch.cuda.empty_cache()
    for multiple in multiples:
        with torch.inference_mode(False):
            net = pad_channels(make_copy(loaded.model, "folded", channels_last=True), multiple)
        tracer = CompiledTracer(net, precision=precision, fold=False, pad=False, cuda_graph=True)
        tracer(xl)
        name = f"trace_graph_pad{multiple}"
        row[name] = rate(cuda_ms(lambda t=tracer: t(xl), reps))
        row[f"{name}_over_frozen"] = round(row[name] / row["plain_frozen"], 4)
        del tracer, net
        torch.cuda.empty_cache()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 256])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--pad-multiples", nargs="*", type=int, default=[])
    parser.add_argument("--no-trees", action="store_true", help="skip trace_trees")
    parser.add_argument("--max-autotune", action="store_true")
    parser.add_argument("--conv-1x1-as-mm", action="store_true")
    parser.add_argument("--without-upsampled", action="store_true", help="the trace without its upsampled edges too")
    parser.add_argument("--top", type=int, default=0, help="list the N most expensive kernels of each profile")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore", RandomWeightsWarning)
    for variant in args.variants:
        for batch in args.batches:
            row = bench(
                variant,
                batch,
                args.repeats,
                args.pad_multiples,
                args.max_autotune,
                args.conv_1x1_as_mm,
                not args.no_trees,
                args.top,
                args.without_upsampled,
            )
            emit(row, args.out)


if __name__ == "__main__":
    main()

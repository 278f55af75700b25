"""Time a full trace against a plain timm forward (batch 1, 224 px, random weights).

Plain and traced forwards are interleaved and the median of each is reported, so that load from
other processes hits both alike. Prints one JSON line per (variant, keep mode). A mode is a keep
mode ("all", "outputs", "summaries": the default path, on a CPU the fast BatchNorm-folded copy) or
one with ":exact" (``trace(..., exact=True)``, bit-exact on the model itself).

    python benchmarks/trace_cpu.py --variants hrnet_w18_small hrnet_w18 --repeats 30
    python benchmarks/trace_cpu.py --keep all all:exact --repeats 30   # issue 13: fast vs exact vs plain
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

import torch

from hrnet_explorer import load_model, trace
from hrnet_explorer.zoo import RandomWeightsWarning


def timed_ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def bench(loaded, x: torch.Tensor, keeps: list[str], repeats: int) -> dict[str, float]:
    """Median milliseconds of a plain forward and of a trace per keep mode, interleaved."""

    def plain():
        with torch.inference_mode():
            loaded.model(x)
        if x.is_cuda:
            torch.cuda.synchronize()

    def traced(mode):
        keep, _, exact = mode.partition(":")
        trace(loaded, x, keep=keep, exact=True if exact else None)
        if x.is_cuda:
            torch.cuda.synchronize()

    for _ in range(3):  # warm-up
        plain()
        for keep in keeps:
            traced(keep)
    samples: dict[str, list[float]] = {"plain": []} | {keep: [] for keep in keeps}
    for _ in range(repeats):  # one of each per round, so that outside load hits all alike
        samples["plain"].append(timed_ms(plain))
        for keep in keeps:
            samples[keep].append(timed_ms(lambda k=keep: traced(k)))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", nargs="+", default=["hrnet_w18_small", "hrnet_w18"])
    parser.add_argument("--keep", nargs="+", default=["all", "outputs", "summaries"])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    warnings.simplefilter("ignore", RandomWeightsWarning)
    for variant in args.variants:
        loaded = load_model(variant, "random", device=args.device)
        x = torch.randn(1, 3, args.size, args.size, device=loaded.device)
        ms = bench(loaded, x, args.keep, args.repeats)
        for keep in args.keep:
            row = {"variant": variant, "keep": keep, "device": str(loaded.device)}
            row |= {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
            row |= {"load_avg_1min": round(os.getloadavg()[0], 2)}
            row |= {"plain_ms": round(ms["plain"], 2), "trace_ms": round(ms[keep], 2)}
            print(json.dumps(row | {"ratio": round(ms[keep] / ms["plain"], 3)}))


if __name__ == "__main__":
    main()

"""Would padding HRNet's stream widths to multiples of 8 pay at batch 256? (issue 13's suggested lever)

Before building a function-preserving padded copy (zero channels that stay zero, then sliced off every map), measure
its upper bound: the same architecture built with every stream width rounded up to a multiple of 8 (w18: 18/36/72/144
→ 24/40/72/144; w30: 30/60/120/240 → 32/64/120/240; w44: 44/88/176/352 → 48/88/176/352) against the original, plain
forward, bf16 autocast, channels_last, batch 256, eager and as a CUDA graph (and ``torch.compile`` with
``--compile``). Padded channels are real work, so the widened model is what a padded copy would cost at best; if it
is not faster than the original, padding cannot be. Then the real thing, on the variant itself: a full trace
(``keep="all"``) from ``GraphTracer(fold=True)`` against ``GraphTracer(fold=True, pad=True)`` (hrnet_explorer.pad:
zero channels inside, maps sliced back) and the plain forward as a CUDA graph. Random weights; images/s,
CUDA-event medians.

    python benchmarks/padding.py --variants hrnet_w18 hrnet_w30 hrnet_w44
"""

from __future__ import annotations

import argparse
import json
import warnings

import timm
import torch
from gpu import cuda_ms, plain_graph
from timm.models.hrnet import HighResolutionNet

from hrnet_explorer import load_model
from hrnet_explorer.graphs import GraphTracer
from hrnet_explorer.runtime import autocast
from hrnet_explorer.zoo import RandomWeightsWarning
from hrnet_explorer.zoo.timm_hrnet import architecture_config


def widened(variant: str, multiple: int = 8) -> dict:
    cfg = architecture_config(variant)  # a copy of timm's build config
    for stage in ("stage1", "stage2", "stage3", "stage4"):
        cfg[stage]["num_channels"] = tuple(-(-c // multiple) * multiple for c in cfg[stage]["num_channels"])
    return cfg


def images_per_s(net: torch.nn.Module, batch: int, repeats: int, compile_: bool) -> dict[str, float]:
    net = net.cuda().eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)

    def eager():
        with torch.inference_mode(), autocast(x.device, "bf16"):
            net(x)

    out = {"eager": batch / cuda_ms(eager, repeats) * 1e3}
    graph = plain_graph(net, x, "bf16")
    out["graph"] = batch / cuda_ms(graph.replay, repeats) * 1e3
    del graph
    if compile_:
        compiled = torch.compile(net, mode="reduce-overhead")

        def run():
            with torch.inference_mode(), autocast(x.device, "bf16"):
                compiled(x)

        run()
        out["compiled"] = batch / cuda_ms(run, repeats) * 1e3
    torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["hrnet_w18", "hrnet_w30", "hrnet_w44"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (reduce-overhead): ~40 s each")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    warnings.simplefilter("ignore", RandomWeightsWarning)
    for variant in args.variants:
        torch.manual_seed(0)
        original = timm.create_model(variant)
        padded = HighResolutionNet(widened(variant))
        row = {"variant": variant, "device": torch.cuda.get_device_name(), "torch": torch.__version__}
        widths = (architecture_config(variant), widened(variant))
        row["widths"] = [cfg["stage4"]["num_channels"] for cfg in widths]
        for name, net in (("original", original), ("padded", padded)):
            for kind, value in images_per_s(net, args.batch, args.repeats, args.compile).items():
                row[f"{name}_{kind}_img_s"] = round(value, 1)
        for kind in ("eager", "graph", "compiled"):
            padded_img_s = row.get(f"padded_{kind}_img_s")
            if padded_img_s:
                row[f"{kind}_padded_over_original"] = round(padded_img_s / row[f"original_{kind}_img_s"], 3)
        loaded = load_model(variant, "random", device="cuda", cache=False)
        x = torch.randn(args.batch, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
        for name, pad in (("trace_folded", False), ("trace_padded", True)):
            tracer = GraphTracer(loaded, args.batch, 224, precision="bf16", fold=True, pad=pad)
            row[f"{name}_graph_img_s"] = round(args.batch / cuda_ms(lambda t=tracer, x=x: t(x), args.repeats) * 1e3, 1)
            del tracer
            torch.cuda.empty_cache()
        row["trace_padded_over_folded"] = round(row["trace_padded_graph_img_s"] / row["trace_folded_graph_img_s"], 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

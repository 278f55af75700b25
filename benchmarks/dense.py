"""Dense forward vs full dense trace vs trace + head split, batch 1: `python benchmarks/dense.py --device cuda`.

For each model (the shipped lab-seg, hrnet_w18_small; and a random HRNetV2-W48 with Cityscapes' 19 classes) and
size (224×224, 512×1024), in one process: the plain dense forward (``model(x)`` under inference_mode), the full
dense trace (every stream, edge, fused and head map kept, ``dense_trace(model, x)``) and the trace + the exact
head split (``head_split``). The three are timed in turns (plain, trace, split, plain, …) so that clock and
thermal drift fall on all three alike; the median of ``--repeats`` runs after ``--warmup`` is reported, with the
ratios to the plain forward. CUDA: fp32 (TF32 off: the trace's contract is fp32), synchronised around each call.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from hrnet_explorer import load_model
from hrnet_explorer.dense import create_dense, dense_trace, head_split
from hrnet_explorer.dense.card import load_dense

SIZES = ((224, 224), (512, 1024))


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start)


def bench(model: torch.nn.Module, size: tuple[int, int], device: torch.device, repeats: int, warmup: int) -> dict:
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)

    def plain():
        with torch.inference_mode():
            model(x)

    calls = {
        "plain_ms": plain,
        "trace_ms": lambda: dense_trace(model, x),
        "split_ms": lambda: head_split(model, dense_trace(model, x)),
    }
    times: dict[str, list[float]] = {k: [] for k in calls}
    for i in range(warmup + repeats):
        for name, fn in calls.items():
            ms = _timed(fn, device)
            if i >= warmup:
                times[name].append(ms)
    row = {k: round(statistics.median(v), 2) for k, v in times.items()}
    row["trace_over_plain"] = round(row["trace_ms"] / row["plain_ms"], 2)
    row["split_over_plain"] = round(row["split_ms"] / row["plain_ms"], 2)
    return {"input": list(size), "repeats": repeats, **row}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--models", default="lab-seg,hrnet_w48")
    parser.add_argument("--max-side", type=int, default=1024, help="skip sizes with a side above this")
    parser.add_argument("--lab-seg", type=Path, help="a lab-seg.safetensors to time (default: the shipped one)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    for name in args.models.split(","):
        if name == "lab-seg":
            model = (load_dense(args.lab_seg, device) if args.lab_seg else load_model("lab-seg", device=device)).model
        else:
            model = create_dense(name, 19, "random")[0].to(device)
        for size in SIZES:
            if max(size) <= args.max_side:
                row = {"model": name, **bench(model, size, device, args.repeats, args.warmup)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})"
    result = {
        "device": where,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "precision": "fp32" + (", TF32 off" if device.type == "cuda" else ""),
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Feature visualisation speed: every channel of one stream of one module in ONE batched optimisation, on a GPU.

    python benchmarks/microscope_gpu.py OUT_DIR [--steps 256] [--size 224] [--budget 50] [--quick]

Cases: the lab model (hrnet_w18_small: stage 4's streams have 16 … 128 channels) and hrnet_w18 with random weights
(the timing does not depend on the weights; streams of 18 … 144 channels), each stream's channels all in one batch.
Each case runs once eager (the hook engine) and once ``compiled=True`` (``torch.compile``, Inductor). Each runs a
5-step warm-up first (cuDNN's autotuning, lucent's first kornia calls, and the compile: its wall time is the row's
``first_call_s``), then the timed optimisation (``Visualisation.seconds``: wall time to the last step,
synchronised). Run the script twice in one machine session to see the compile warm from Inductor's on-disk caches.
Writes OUT_DIR/microscope_gpu.json and, for the lab model, the centre 64×64 of every unit's image
(microscope_lab_units.npz) and a contact sheet per stream (PNG). ``--cases MODEL:MAP:eager|compiled …`` picks the
cases; ``--compile-mode`` is torch.compile's mode for the compiled ones.
``--quick``: a CPU smoke test (2 steps, 64 px, two small streams).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hrnet_explorer import load_model
from hrnet_explorer.microscope import FVSettings, map_channels, visualise

fv = importlib.import_module("hrnet_explorer.microscope.visualise")  # the module; the package exports its function


def sheet(images: np.ndarray, columns: int = 16, thumb: int = 112) -> Image.Image:
    rows = -(-len(images) // columns)
    out = Image.new("RGB", (columns * thumb, rows * thumb), "white")
    for k, image in enumerate(images):
        out.paste(
            Image.fromarray(image).resize((thumb, thumb), Image.BILINEAR),
            ((k % columns) * thumb, (k // columns) * thumb),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--budget", type=float, default=50.0, help="start no new case after this many seconds")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--compile-mode", default=fv.COMPILE_MODE, help="torch.compile's mode for the compiled cases")
    parser.add_argument("--cases", nargs="+", default=None, help="MODEL:MAP:eager|compiled (bf16), in order")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() and not args.quick
    device = "cuda" if cuda else "cpu"
    torch.backends.cudnn.benchmark = True
    fv.COMPILE_MODE = None if args.compile_mode == "default" else args.compile_mode
    steps, size = (2, 64) if args.quick else (args.steps, args.size)
    begin = time.perf_counter()
    # In order of importance: the budget may stop the list early.
    cases = [
        ("hrnet_w18", "stage4.module2.fused3", "bf16", False),
        ("hrnet_w18", "stage4.module2.fused3", "bf16", True),
        ("lab", "stage4.module0.fused3", "bf16", True),
        ("lab", "stage4.module0.fused3", "bf16", False),
        ("hrnet_w18", "stage4.module2.fused0", "bf16", True),
        ("hrnet_w18", "stage4.module2.fused0", "bf16", False),
        ("lab", "stage4.module0.fused0", "bf16", True),
        ("lab", "stage4.module0.fused1", "bf16", True),
        ("lab", "stage4.module0.fused2", "bf16", True),
    ]
    if args.cases:
        cases = [(m, name, "bf16", engine == "compiled") for m, name, engine in (c.split(":") for c in args.cases)]
    if not cuda:
        cases = [("lab", "stage2.module0.fused0", "fp32", False), ("hrnet_w18", "stage2.module0.fused0", "fp32", False)]
    weights = {"lab": "default", "hrnet_w18": "random"}
    models = {v: load_model(v, weights[v], device=device) for v in weights}
    results, lab_units = [], {}
    for variant, name, precision, compiled in cases:
        if time.perf_counter() - begin > args.budget:
            break
        loaded = models[variant]
        units = map_channels(loaded)[name]
        settings = FVSettings(steps=steps, size=size, precision=precision, compiled=compiled)
        start = time.perf_counter()
        visualise(loaded, name, None, replace(settings, steps=5), use_cache=False)
        first_call = time.perf_counter() - start
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        v = visualise(loaded, name, None, settings, use_cache=False)
        row = {
            "model": variant,
            "weights": weights[variant],
            "map": name,
            "units": units,
            "steps": steps,
            "size": size,
            "precision": precision,
            "compiled": compiled,
            "compile_mode": (fv.COMPILE_MODE or "default") if compiled else None,
            "first_call_s": round(first_call, 2),
            "seconds": round(v.seconds, 3),
            "ms_per_step": round(1000 * v.seconds / steps, 2),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
            "mean_activation": float(v.activations.mean()),
        }
        print(json.dumps(row), flush=True)
        results.append(row)
        if variant == "lab" and name not in lab_units:
            lab_units[name] = v
    record = {
        "device": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "results": results,
        "wall_s": round(time.perf_counter() - begin, 1),
    }
    (args.out / "microscope_gpu.json").write_text(json.dumps(record, indent=2) + "\n")
    crops = {}
    for name, v in lab_units.items():
        c = (size - 64) // 2
        crops[name] = v.images[:, c : c + 64, c : c + 64]
        crops[f"{name}.activations"] = v.activations
        sheet(v.images).save(args.out / f"microscope_lab_{name.replace('.', '_')}.png")
    np.savez_compressed(args.out / "microscope_lab_units.npz", **crops)
    print(json.dumps({"device": record["device"], "wall_s": record["wall_s"]}))


if __name__ == "__main__":
    main()

"""Time Integrated Gradients: plain Captum on the model vs ``attribute_pixels(method="ig")``.

Both run in the same process on the same input, interleaved (one of each per round, so that load
from other processes hits both alike); the median and minimum of each are reported, with both
convergence deltas and how far the two attributions differ. Prints one JSON line.

- "plain": ``IntegratedGradients(model).attribute(x, target=t, n_steps=N, return_convergence_delta=True)``
  with Captum's default internal_batch_size (all steps in one batch), and again with ours.
- "ours": ``attribute_pixels(loaded, x, "ig", n_steps=N)`` — it also picks the top-1 target itself.
  Its first call (building the private BN-folded copy) is reported separately.

    python benchmarks/attribution.py                                  # w18_small, CPU, IG-32
    python benchmarks/attribution.py --device cuda --steps 50 --variant hrnet_w18
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings

import captum
import timm
import torch
from captum.attr import IntegratedGradients

from hrnet_explorer.attribution import attribute_pixels, default_internal_batch_size
from hrnet_explorer.zoo import RandomWeightsWarning, load_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="hrnet_w18_small")
    parser.add_argument("--weights", default="random", help="random (default) | default | TAG | PATH")
    parser.add_argument("--device", default="cpu", help="cpu | cuda[:N] | auto")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--internal-batch-size", type=int, default=None, help="ours (default: chosen for the device)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="ours (bf16: CUDA graphs)")
    parser.add_argument("--strict-fp32", action="store_true", help="CUDA: no TF32 in convolutions and matmuls")
    parser.add_argument("--cudnn-benchmark", action="store_true", help="CUDA: let cuDNN time its algorithms")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.strict_fp32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        loaded = load_model(args.variant, args.weights, device=args.device, cache=False)
    device = loaded.device
    torch.manual_seed(0)
    x = torch.randn(1, 3, args.size, args.size, device=device)
    with torch.no_grad():
        target = int(loaded.model(x).argmax())
    ibs = args.internal_batch_size or default_internal_batch_size(device, args.steps, (args.size, args.size))
    ig = IntegratedGradients(loaded.model)

    def plain(batch):
        def run():
            out = ig.attribute(
                x, target=target, n_steps=args.steps, internal_batch_size=batch, return_convergence_delta=True
            )
            _sync(device)
            return out

        return run

    def ours():
        out = attribute_pixels(loaded, x, "ig", n_steps=args.steps, internal_batch_size=ibs, precision=args.precision)
        _sync(device)
        return out

    start = time.perf_counter()
    first = ours()  # builds the private copies
    first_call_s = time.perf_counter() - start
    runs = {"plain_default": plain(None), "plain_same_batch": plain(ibs), "ours": ours}
    outputs = {name: fn() for name, fn in runs.items()}  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)

    plain_attr, plain_delta = outputs["plain_default"]
    mine = outputs["ours"]
    diff = (mine.attributions - plain_attr.detach().float().cpu()).abs().max()
    result = {
        "benchmark": "integrated_gradients",
        "variant": loaded.variant.name,
        "weights": loaded.weights.kind,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if device.type == "cuda" else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark if device.type == "cuda" else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "input": [args.size, args.size],
        "n_steps": args.steps,
        "precision_ours": args.precision,
        "internal_batch_size_ours": ibs,
        "repeats": args.repeats,
        **{f"{name}_median_s": round(statistics.median(v), 4) for name, v in samples.items()},
        **{f"{name}_min_s": round(min(v), 4) for name, v in samples.items()},
        "speedup_vs_plain_default": round(
            statistics.median(samples["plain_default"]) / statistics.median(samples["ours"]), 3
        ),
        "ours_first_call_s": round(first_call_s, 3),
        "ours_settings_model": first.settings["model"],
        "plain_delta": float(plain_delta.sum()),
        "ours_delta": mine.delta,
        "logit_minus_baseline": (mine.logit - mine.baseline_logit),
        "max_abs_diff_vs_plain": float(diff),
        "max_abs_plain": float(plain_attr.abs().max()),
        "torch": torch.__version__,
        "captum": captum.__version__,
        "timm": timm.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

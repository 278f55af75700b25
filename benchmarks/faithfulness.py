"""Time deletion + insertion (``deletion_insertion``): both curves of one image, ``--steps`` each, as one batched
forward of 2·steps images on the private BatchNorm-folded channels_last copy.

Warm: the first call (which builds the private copies) is reported apart; then ``--repeats`` calls, median and
minimum. The map is a saliency map of the image (any map costs the same: the ordering is a sort). Also timed, for
scale: one plain forward of the same 2·steps images through the caller's model (``inference_mode``), and through
the BatchNorm-folded channels_last copy that deletion_insertion uses: the floor that batching all the perturbed
images into one forward approaches. On CUDA, deletion_insertion also runs with ``graphs=False`` (its forwards eager,
not replayed from a CUDA graph), interleaved with the rest. Prints one JSON line.

    python benchmarks/faithfulness.py                                        # w18_small, CPU, 20 steps
    python benchmarks/faithfulness.py --device cuda --variant hrnet_w18      # the H100 target
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings

import timm
import torch

from hrnet_explorer.attribution import attribute_pixels, deletion_insertion
from hrnet_explorer.copies import private_copy
from hrnet_explorer.zoo import RandomWeightsWarning, load_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="hrnet_w18_small")
    parser.add_argument("--weights", default="random", help="random (default) | default | TAG | PATH")
    parser.add_argument("--device", default="cpu", help="cpu | cuda[:N] | auto")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--baseline", default="blur", choices=("blur", "zeros", "mean"))
    parser.add_argument("--batch-size", type=int, default=None, help="images per forward (default: the device's)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        loaded = load_model(args.variant, args.weights, args.device)
    device = loaded.device
    x = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    heat = attribute_pixels(loaded, x, "saliency").heatmap

    def run(graphs=None):
        return deletion_insertion(
            loaded, x, heat, steps=args.steps, baseline=args.baseline, batch_size=args.batch_size, graphs=graphs
        )

    first = _timed(run, device)
    cuda = device.type == "cuda"
    eager = (lambda: run(graphs=False)) if cuda else None  # on CUDA, the forwards without their CUDA graph
    batch = torch.randn(2 * args.steps, 3, args.size, args.size, device=device)

    def plain():
        with torch.inference_mode():
            loaded.model(batch)

    fast_copy = private_copy(loaded.model, "folded").net  # what deletion_insertion runs (BN folded, NHWC)

    def fast():
        with torch.inference_mode():
            fast_copy(batch.contiguous(memory_format=torch.channels_last))

    _timed(plain, device)
    _timed(fast, device)
    ours, floor, folded, eagerly = [], [], [], []
    for _ in range(args.repeats):  # interleaved, so that outside load hits them alike
        ours.append(_timed(run, device))
        floor.append(_timed(plain, device))
        folded.append(_timed(fast, device))
        if eager:
            eagerly.append(_timed(eager, device))
    result = run()
    check = {}
    if cuda:  # the same curves on the CPU (same random weights, same map): how far apart?
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            on_cpu = load_model(args.variant, args.weights, "cpu")
        ref = deletion_insertion(on_cpu, x.cpu(), heat, result.target, steps=args.steps, baseline=args.baseline)
        check = {
            "cpu_max_abs_diff_probability": max(
                float((a.probabilities - b.probabilities).abs().max())
                for a, b in ((result.deletion, ref.deletion), (result.insertion, ref.insertion))
            ),
            "cpu_probability": ref.probability,
        }
    print(
        json.dumps(
            {
                "variant": args.variant,
                "device": str(device),
                "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor(),
                "threads": torch.get_num_threads(),
                "size": args.size,
                "steps": args.steps,
                "images_per_call": 2 * args.steps,
                "baseline": args.baseline,
                "first_call_s": first,
                "median_s": statistics.median(ours),
                "min_s": min(ours),
                "plain_forward_median_s": statistics.median(floor),
                "plain_forward_min_s": min(floor),
                "folded_forward_median_s": statistics.median(folded),
                "eager_median_s": statistics.median(eagerly) if eagerly else None,
                "eager_min_s": min(eagerly) if eagerly else None,
                "repeats": args.repeats,
                "deletion_auc_raw": result.deletion.auc_raw,
                "insertion_auc_raw": result.insertion.auc_raw,
                "torch": torch.__version__,
                "timm": timm.__version__,
                "tf32_convolutions": torch.backends.cudnn.allow_tf32 if cuda else None,
                **check,
            }
        )
    )


if __name__ == "__main__":
    main()

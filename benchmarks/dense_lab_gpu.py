"""Score a trained dense lab model and check the truth on it: `python benchmarks/dense_lab_gpu.py DIR OUT`.

DIR holds lab-seg.safetensors + lab-seg.json (from `hrnet-explorer lab train --task segment`). Writes OUT/eval.json
(every lab condition on ``--eval-n`` test samples: mIoU, IoU per class, boundary F, interior mIoU) and
OUT/truth.json (hrnet_explorer.lab.segment_truth: stream knockouts, per-pixel stream shares, pixel attributions of
each evidence region), with the seconds each took.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hrnet_explorer.dense.card import load_dense
from hrnet_explorer.lab.segment import evaluate_segmentation
from hrnet_explorer.lab.segment_truth import attribution_truth, knockout_truth, share_truth


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--eval-n", type=int, default=1000)
    parser.add_argument("--knockout-n", type=int, default=500)
    parser.add_argument("--share-n", type=int, default=200)
    parser.add_argument("--attribution-n", type=int, default=100)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    loaded = load_dense(args.model_dir / "lab-seg.safetensors", args.device)
    config = loaded.data_config
    t0 = time.perf_counter()
    result = evaluate_segmentation(
        loaded.model, config["mean"], config["std"], args.eval_n, size=config["input_size"][-1]
    )
    evaluation = {
        **result.to_dict(),
        "device": _device_name(loaded.device),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (args.out / "eval.json").write_text(json.dumps(evaluation, indent=2) + "\n")
    for name, s in result.conditions.items():
        fam = result.family(name)
        print(f"{name:<22} mIoU {s.miou:.3f}  fine {fam.get('fine', float('nan')):.3f}  coarse "
              f"{fam.get('coarse', float('nan')):.3f}  bg-pred {s.predicted_fraction['background']:.3f}  "
              f"BF {s.boundary_f:.3f}", flush=True)  # fmt: skip
    truth: dict = {"device": _device_name(loaded.device)}
    for key, fn, n in (
        ("knockouts", knockout_truth, args.knockout_n),
        ("shares", share_truth, args.share_n),
        ("attributions", attribution_truth, args.attribution_n),
    ):
        t0 = time.perf_counter()
        truth[key] = {**fn(loaded, n), "seconds": round(time.perf_counter() - t0, 1)}
        print(key, json.dumps(truth[key])[:1500], flush=True)
        (args.out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")


if __name__ == "__main__":
    main()

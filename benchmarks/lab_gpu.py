"""Train the lab model on a GPU and score it: `python benchmarks/lab_gpu.py OUT_DIR [--steps N]`.

Writes OUT_DIR/lab.safetensors + lab.json (the card with its training record), OUT_DIR/eval.json (every
condition of `hrnet-explorer lab eval` on 2,000 test samples) and OUT_DIR/render.json (how fast the
task renders on this GPU, against one training step).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import timm
import torch
from safetensors.torch import load_file
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from hrnet_explorer.lab import CLASSES, render
from hrnet_explorer.lab.evaluate import evaluate
from hrnet_explorer.lab.train import TrainConfig, train


def render_speed(batch_size: int = 128, repeats: int = 20) -> dict:
    """Milliseconds to render one training batch on the GPU (after a warm-up)."""
    for i in range(3):
        render(range(i * batch_size, (i + 1) * batch_size), "train", 224, "cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(repeats):
        render(range(i * batch_size, (i + 1) * batch_size), "train", 224, "cuda")
    torch.cuda.synchronize()
    ms = 1000 * (time.perf_counter() - start) / repeats
    return {"device": torch.cuda.get_device_name(), "batch_size": batch_size, "render_ms": round(ms, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--eval-n", type=int, default=2000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    speed = render_speed()
    print(json.dumps(speed))
    (args.out / "render.json").write_text(json.dumps(speed, indent=2))
    card = train(args.out, TrainConfig(steps=args.steps), device="cuda", progress=False)
    print(json.dumps(card["training"], indent=2))
    model = timm.create_model(card["architecture"], num_classes=len(CLASSES))
    model.load_state_dict({k: v.float() for k, v in load_file(str(args.out / "lab.safetensors")).items()})
    result = evaluate(model.cuda().eval(), IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, args.eval_n)
    (args.out / "eval.json").write_text(json.dumps(result.to_dict(), indent=2))
    for name, acc in result.conditions.items():
        print(f"{name:<22}{acc.overall:8.2%}  fine {acc.family['fine']:7.2%}  coarse {acc.family['coarse']:7.2%}")


if __name__ == "__main__":
    main()

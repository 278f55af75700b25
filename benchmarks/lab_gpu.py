"""Train the lab model on a GPU and measure everything the lab ships, in one run:
`python benchmarks/lab_gpu.py OUT_DIR [--steps N]`.

Writes into OUT_DIR: lab.safetensors + lab.json (the card with its training record), eval.json (every
condition of `hrnet-explorer lab eval` on 2,000 test samples), knockouts.json (the true class's probability
after each final stream is knocked out, per class and per family, with and without the stream's own path),
benchmark.json (`hrnet-explorer lab benchmark --n 200 --json`: every pixel method, the reference maps, the
shifted scores and the two-evidence scenes) and render.json (how fast the task renders on this GPU, against
one training step).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from hrnet_explorer import load_model
from hrnet_explorer.lab import render
from hrnet_explorer.lab.benchmark import benchmark
from hrnet_explorer.lab.evaluate import evaluate, stream_knockouts
from hrnet_explorer.lab.train import TrainConfig, train


def render_speed(device: str, batch_size: int = 128, repeats: int = 20) -> dict:
    """Milliseconds to render one training batch on ``device`` (after a warm-up)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else lambda: None
    for i in range(3):
        render(range(i * batch_size, (i + 1) * batch_size), "train", 224, device)
    sync()
    start = time.perf_counter()
    for i in range(repeats):
        render(range(i * batch_size, (i + 1) * batch_size), "train", 224, device)
    sync()
    ms = 1000 * (time.perf_counter() - start) / repeats
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    return {"device": name, "batch_size": batch_size, "render_ms": round(ms, 2)}


def write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--size", type=int, default=TrainConfig.size)
    parser.add_argument("--eval-n", type=int, default=2000)
    parser.add_argument("--knockout-n", type=int, default=20, help="test images per class for the knockouts")
    parser.add_argument("--benchmark-n", type=int, default=200)
    parser.add_argument("--scenes-n", type=int, default=50)
    parser.add_argument("--randomisation-n", type=int, default=20)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    speed = render_speed(args.device, min(args.batch_size, 128))
    print(json.dumps(speed), flush=True)
    write(args.out / "render.json", speed)
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        size=args.size,
        eval_n=args.eval_n,
        warmup_steps=min(TrainConfig.warmup_steps, args.steps // 10),
    )
    card = train(args.out, config, device=args.device)
    print(json.dumps(card["training"], indent=2), flush=True)
    (args.out / "train_state.pt").unlink()  # the resumable state: not shipped
    loaded = load_model(card["architecture"], str(args.out / "lab.safetensors"), args.device, cache=False)
    data = loaded.data_config
    t = time.perf_counter()
    result = evaluate(loaded.model, data["mean"], data["std"], args.eval_n, size=args.size)
    write(args.out / "eval.json", {**result.to_dict(), "device": speed["device"], "seconds": time.perf_counter() - t})
    for name, acc in result.conditions.items():
        print(f"{name:<22}{acc.overall:8.2%}  fine {acc.family['fine']:7.2%}  coarse {acc.family['coarse']:7.2%}")
    t = time.perf_counter()
    knockouts = {
        "all": stream_knockouts(loaded, args.knockout_n, self_edge=True).to_dict(),
        "edges": stream_knockouts(loaded, args.knockout_n, self_edge=False).to_dict(),
        "device": speed["device"],
        "seconds": time.perf_counter() - t,
    }
    write(args.out / "knockouts.json", knockouts)
    for name, row in knockouts["all"]["per_class"].items():
        print(
            f"{name:<22} p {row['probability']:.3f} without stream 0..3: "
            + " ".join(f"{p:.3f}" for p in row["without"])
        )
    scores = benchmark(loaded, args.benchmark_n, randomisation_n=args.randomisation_n, scenes_n=args.scenes_n)
    write(args.out / "benchmark.json", {"weights": "lab.safetensors of this run", **scores.to_dict()})
    for method, row in {**scores.per_method, "random": scores.random_map, **scores.model_free}.items():
        scene = row["scenes"] or {}
        print(
            f"{method:<16} mass {row['mass_in_mask']:.3f} (shifted {row['mass_in_mask_shifted']:.3f}) core/ring "
            f"{row['boundary_contrast']:.3f} (shifted {row['boundary_contrast_shifted']:.3f}) rank "
            f"{row['rank_accuracy']:.3f} pointing {row['pointing_game']:.3f} deletion {row['deletion_auc']:.3f} "
            f"insertion {row['insertion_auc']:.3f} scenes follow {scene.get('follows', float('nan')):.3f}"
        )
    print(f"benchmark {scores.seconds:.1f} s; scene model {scores.scene_model}; total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()

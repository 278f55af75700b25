"""Train an HRNet on the lab task from scratch: seeded, resumable, bf16 + channels_last on CUDA.

Every step draws a fresh batch of the train split (samples ``step * batch_size`` onwards), rendered on
the training device, so the data never repeats and never waits on a loader. The result is a checkpoint
(fp16 safetensors) and its model card with the training record, in the format ``load_model`` reads.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..errors import InputError
from ..progress import Progress, Steps
from ..runtime import resolve_device
from .evaluate import evaluate
from .task import CLASSES, FAMILY, LabBatch, render

__all__ = ["TrainConfig", "train", "fit", "CARD_FORMAT"]

CARD_FORMAT = "hrnet-explorer-card/1"
STATE_FILE = "train_state.pt"


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "hrnet_w18_small"
    steps: int = 2500
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    size: int = 224
    seed: int = 0
    eval_n: int = 2000  # held-out test samples scored at the end, for the record
    save_every: int = 250  # steps between resumable states

    def __post_init__(self):
        from ..zoo import VARIANTS

        if self.variant not in VARIANTS:
            raise InputError(f"Unknown variant {self.variant!r}: use one of {', '.join(VARIANTS)}.")
        for name in ("steps", "batch_size", "size", "eval_n", "save_every"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be ≥ 1, got {getattr(self, name)}.")
        if self.size % 32:
            raise InputError(f"size must be a multiple of 32 (HRNet's upsampling), got {self.size}.")
        if not (self.lr > 0 and self.weight_decay >= 0 and self.warmup_steps >= 0):
            raise InputError("lr must be > 0, weight_decay and warmup_steps ≥ 0.")


def _schedule(config: TrainConfig):
    """Linear warm-up, then cosine decay to zero."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _build_model(config: TrainConfig) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return timm.create_model(config.variant, pretrained=False, num_classes=len(CLASSES))


def _versions() -> dict[str, str]:
    from .. import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "hrnet_explorer": __version__,
    }


def _resume(model: torch.nn.Module, config: TrainConfig, state_path: Path, dev: torch.device):
    """AdamW and the schedule for ``model``, resumed from ``state_path`` when a run left one there (with the same
    config); → (optimizer, scheduler, steps done, seconds spent). Shared by the lab's classifier and dense runs."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    if not state_path.exists():
        return optimizer, scheduler, 0, 0.0
    state = torch.load(state_path, map_location=dev, weights_only=True)
    if state["config"] != asdict(config):
        raise InputError(
            f"{state_path} was written with another config ({state['config']}); "
            "use a fresh --out folder or the same settings."
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return optimizer, scheduler, state["step"], state["elapsed_s"]


def fit(
    model: torch.nn.Module,
    config: TrainConfig,
    state_path: Path,
    loss_of: Callable[[torch.nn.Module, torch.Tensor, LabBatch], torch.Tensor],
    progress: Progress | None = None,
) -> tuple[float, float]:
    """The lab's training loop, shared by the classifier and the dense model: ``config.steps`` AdamW steps on
    rendered training batches, ``loss_of(model, normalised images, batch)`` under bf16 autocast on CUDA
    (channels_last), the state saved to ``state_path`` every ``config.save_every`` steps and resumed from it.
    → (the last loss read, seconds spent training, resumed runs included)."""
    dev = next(model.parameters()).device
    cuda = dev.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    optimizer, scheduler, start_step, elapsed = _resume(model, config, state_path, dev)
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_DEFAULT_STD, device=dev).view(1, 3, 1, 1)
    torch.manual_seed(config.seed + start_step)  # dropout-free models: only cuDNN's choices stay free
    model.train()
    steps = Steps(progress, config.steps, done=start_step)
    loss_value = float("nan")
    for step in range(start_step, config.steps):
        t0 = time.perf_counter()
        first = step * config.batch_size
        batch = render(range(first, first + config.batch_size), "train", config.size, dev)
        x = (batch.images - mean) / std
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_of(model, x, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if (step + 1) % 25 == 0 or step + 1 == config.steps:
            loss_value = float(loss.detach())  # a sync: only now and then
        if cuda and (step + 1) % 25 == 0:
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
        steps.advance()
        if (step + 1) % config.save_every == 0 or step + 1 == config.steps:
            _save_state(state_path, model, optimizer, scheduler, step + 1, elapsed, config)
    steps.finish()
    return loss_value, elapsed


def _save_state(state_path: Path, model, optimizer, scheduler, step: int, elapsed: float, config: TrainConfig) -> None:
    """What :func:`_resume` reads back: weights, optimizer and schedule, the step reached, the time spent."""
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "elapsed_s": elapsed,
            "config": asdict(config),
        },
        state_path,
    )


def train(
    out_dir: str | Path, config: TrainConfig = TrainConfig(), device=None, progress: Progress | None = None
) -> dict:
    """Train (or resume training) into ``out_dir``; write ``lab.safetensors`` + ``lab.json``; return the card.

    Resuming needs the same config: a state written under another config is an error, not a silent mix.
    ``progress(done, total)``: optimiser steps (a resumed run starts at its saved step).
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    model = _build_model(config).to(dev)
    loss_value, elapsed = fit(
        model, config, out / STATE_FILE, lambda net, x, batch: F.cross_entropy(net(x), batch.labels), progress
    )

    # Ship fp16 weights, and score exactly what ships (the fp16 weights read back into fp32).
    model.eval()
    shipped = {k: (v.half() if v.is_floating_point() else v).contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(shipped, str(out / "lab.safetensors"))
    scored = _build_model(config).to(dev).eval()
    scored.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in shipped.items()})
    held_out = evaluate(
        scored, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, config.eval_n, size=config.size, conditions=("clean",)
    ).conditions["clean"]
    card = {
        "format": CARD_FORMAT,
        "name": "lab",
        "architecture": config.variant,
        "num_classes": len(CLASSES),
        "class_names": list(CLASSES),
        "families": {name: FAMILY[name] for name in CLASSES},
        "preprocessing": {
            "input_size": [3, config.size, config.size],
            "mean": list(IMAGENET_DEFAULT_MEAN),
            "std": list(IMAGENET_DEFAULT_STD),
            "interpolation": "bicubic",
            "crop_pct": 1.0,
            "crop_mode": "center",
        },
        "description": (
            f"{config.variant} trained from scratch on the HRNet Explorer resolution lab "
            "(hrnet_explorer.lab): 5 fine classes (gratings of period 3–5 px) and 5 coarse classes "
            "(region shapes), on procedural clutter."
        ),
        "training": {
            "config": asdict(config),
            "steps": config.steps,
            "images_seen": config.steps * config.batch_size,
            "wall_time_s": round(elapsed, 1),
            "device": torch.cuda.get_device_name(dev)
            if cuda
            else f"cpu ({platform.processor() or platform.machine()})",
            "precision": "bf16 autocast, channels_last" if cuda else "fp32",
            "versions": _versions(),
            "command": " ".join(sys.argv),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "final_loss": loss_value,
            "held_out": {"split": "test", **asdict(held_out)},
            "weights": "fp16 safetensors; held_out scored with these fp16 weights",
        },
    }
    (out / "lab.json").write_text(json.dumps(card, indent=2) + "\n")
    return card

"""Train a dense HRNet on the dense lab from scratch: seeded, resumable, bf16 + channels_last on CUDA.

The same recipe as :mod:`hrnet_explorer.lab.train` (AdamW, warm-up then cosine, a fresh batch of the train split
each step, rendered on the training device), with a per-pixel cross-entropy on the upsampled class scores against
:func:`~hrnet_explorer.lab.segment.label_maps`. Writes ``lab-seg.safetensors`` (fp16) and its segmentation card
``lab-seg.json`` with the training record; the held-out scores in the record are those of the fp16 weights.
"""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..dense.card import dense_card, load_dense, write_dense
from ..dense.model import DenseHRNet, create_dense
from ..progress import Progress
from ..runtime import resolve_device
from .segment import SEG_CLASSES, SEG_FAMILY, evaluate_segmentation, label_maps
from .train import TrainConfig, _versions, fit

__all__ = ["LAB_SEG", "STATE_FILE", "train_segment"]

LAB_SEG = "lab-seg"
STATE_FILE = "train_segment_state.pt"


def _model(config: TrainConfig) -> DenseHRNet:
    return create_dense(config.variant, len(SEG_CLASSES), "random", seed=config.seed)[0]


def train_segment(
    out_dir: str | Path, config: TrainConfig | None = None, device=None, progress: Progress | None = None
) -> dict:
    """Train (or resume) a dense lab model into ``out_dir``; write ``lab-seg.safetensors`` + ``lab-seg.json``;
    return the card. A state written under another config is an error, not a silent mix.
    ``progress(done, total)``: optimiser steps (a resumed run starts at its saved step)."""
    config = config or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    model = _model(config).to(dev)
    # cross-entropy on float scores (autocast runs it in fp32 too), per pixel of the scores upsampled to the input
    loss_value, elapsed = fit(
        model,
        config,
        out / STATE_FILE,
        lambda net, x, batch: F.cross_entropy(net(x).float(), label_maps(batch)),
        progress,
    )

    card = dense_card(
        LAB_SEG,
        config.variant,
        SEG_CLASSES,
        (config.size, config.size),
        IMAGENET_DEFAULT_MEAN,
        IMAGENET_DEFAULT_STD,
        description=(
            f"Dense {config.variant} (HRNetV2 head) trained from scratch on the HRNet Explorer dense lab "
            "(hrnet_explorer.lab.segment): every pixel labelled background or one of the lab's 10 classes "
            "(5 fine gratings of period 3–5 px, 5 coarse shapes), on procedural clutter."
        ),
        families=SEG_FAMILY,
    )
    path = write_dense(model.eval(), out, card)
    scored = load_dense(path, dev)  # score exactly what ships: the fp16 weights read back
    held_out = evaluate_segmentation(
        scored.model,
        IMAGENET_DEFAULT_MEAN,
        IMAGENET_DEFAULT_STD,
        config.eval_n,
        size=config.size,
        conditions=("clean",),
    ).conditions["clean"]
    card["training"] = {
        "config": asdict(config),
        "steps": config.steps,
        "images_seen": config.steps * config.batch_size,
        "wall_time_s": round(elapsed, 1),
        "device": torch.cuda.get_device_name(dev) if cuda else f"cpu ({platform.processor() or platform.machine()})",
        "precision": "bf16 autocast, channels_last" if cuda else "fp32",
        "loss": "per-pixel cross-entropy on the scores upsampled to the input",
        "versions": _versions(),
        "command": " ".join(sys.argv),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "final_loss": loss_value,
        "held_out": {"split": "test", **asdict(held_out)},
        "weights": "fp16 safetensors; held_out scored with these fp16 weights",
    }
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")  # the card, now with its record
    return card

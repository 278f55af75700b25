"""Checkpoints with a model card beside them, listed by name: the lab model and a folder of the user's own."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightsError
from ..runtime import Precision
from .cards import read_card
from .loading import LoadedModel, load_model
from .variants import LAB, VARIANTS, base_variant
from .weights import shipped_checkpoint


@dataclass(frozen=True)
class ModelFile:
    """A checkpoint with its model card beside it, listed under a name (the app's own models)."""

    name: str
    checkpoint: Path
    card: dict[str, Any]

    @property
    def variant(self) -> str:
        """The variant of the card's architecture (for an ssld architecture, its base variant)."""
        return base_variant(self.card["architecture"])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.card["class_names"])

    def load(self, device: str | torch.device | None = None, precision: Precision = "fp32") -> LoadedModel:
        return load_model(self.variant, self.checkpoint, device, precision)


def _model_file(checkpoint: Path) -> ModelFile:
    card = read_card(checkpoint.with_suffix(".json"))
    return ModelFile(card.get("name", checkpoint.stem), checkpoint, card)


def model_files(folder: str | os.PathLike | None = None) -> dict[str, ModelFile]:
    """Checkpoints with a card, by name: the lab model (when :data:`LAB_DIR` holds it), then every
    ``*.safetensors`` / ``*.pth`` in ``folder`` that has a ``.json`` card beside it (others are skipped).

    A name is the card's ``name`` (default: the file stem). Two files under one name, or a name of one of
    the nine variants, is a WeightsError naming the files; every card is checked here, once.
    """
    found = []
    lab = shipped_checkpoint(LAB)
    if lab.is_file():
        found.append(dataclasses.replace(_model_file(lab), name=LAB))
    if folder is not None:
        root = Path(folder).expanduser()
        if not root.is_dir():
            raise WeightsError(f"Models folder not found: {root}")
        for path in sorted(root.iterdir()):
            if path.suffix in (".safetensors", ".pth") and path.is_file() and path.with_suffix(".json").is_file():
                found.append(_model_file(path))
    models: dict[str, ModelFile] = {}
    for m in found:
        if m.name in VARIANTS or f"hrnet_{m.name}" in VARIANTS:
            raise WeightsError(f"{m.checkpoint}: its card's name {m.name!r} is a variant's; give it another name.")
        other = models.get(m.name)
        # The same card twice (``--models`` naming LAB_DIR) is one model; two cards under one name are not.
        if other is not None and not other.checkpoint.with_suffix(".json").samefile(m.checkpoint.with_suffix(".json")):
            raise WeightsError(
                f"Two models are named {m.name!r}: {other.checkpoint} and {m.checkpoint}. Give one card another name."
            )
        models.setdefault(m.name, m)
    return models

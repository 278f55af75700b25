"""The nine HRNet ImageNet variants as data: timm's card numbers, their weight tags, their class names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import timm
from timm.data import ImageNetInfo

from ..errors import InputError

LAB = "lab"  # load_model(LAB): the model trained on the lab task, shipped as a checkpoint and its card
# Package data (in the wheel too): the example images, their sources and licences, and the lab model.
ASSETS = Path(__file__).resolve().parent.parent / "assets"
LAB_DIR = ASSETS / "lab"  # lab.safetensors + its card lab.json
LAB_SEG = "lab-seg"  # load_model(LAB_SEG): the dense model trained on the dense lab (hrnet_explorer.lab.segment)
LAB_SEG_DIR = ASSETS / "lab-seg"  # lab-seg.safetensors + its segmentation card lab-seg.json


@dataclass(frozen=True)
class VariantCard:
    """One row of the model card the product was founded on: timm's HRNet card numbers for this variant."""

    name: str  # timm architecture name, e.g. "hrnet_w18"
    width: int  # C: channels of the high-resolution stream (streams are C, 2C, 4C, 8C)
    card_params_m: float  # parameters in millions, as the card rounds them
    card_flops: int  # the card's "FLOPs" column (≈1.285 × MACs: an artefact, see costs.py)
    card_top1: float  # ImageNet-1k top-1 of the card's weights (timm tag .ms_in1k)
    card_top5: float
    card_file_bytes: int  # size of the card's weight file
    card_weight_file: str  # file name the card lists
    card_tag: str = "ms_in1k"  # the timm tag whose accuracy the card reports

    @property
    def default_tag(self) -> str:
        """The tag timm picks for ``pretrained=True`` with no tag (differs from the card for 3)."""
        return timm.models.get_pretrained_cfg(self.name).tag


VARIANTS: dict[str, VariantCard] = {
    c.name: c
    for c in (
        VariantCard(
            "hrnet_w18_small", 16, 13.19, 2_071_651_488, 72.34, 90.68, 52_934_302, "hrnet_w18_small_v1-f460c6bc.pth"
        ),
        VariantCard(
            "hrnet_w18_small_v2", 18, 15.60, 3_360_023_160, 75.11, 92.41, 62_682_879, "hrnet_w18_small_v2-4c50a8cb.pth"
        ),
        VariantCard("hrnet_w18", 18, 21.30, 5_547_205_500, 76.76, 93.44, 85_718_883, "hrnetv2_w18-8cb57bb9.pth"),
        VariantCard("hrnet_w30", 30, 37.71, 10_474_119_492, 78.21, 94.22, 151_452_218, "hrnetv2_w30-8d7f8dab.pth"),
        VariantCard("hrnet_w32", 32, 41.23, 11_524_528_320, 78.45, 94.19, 165_547_812, "hrnetv2_w32-90d8c5fb.pth"),
        VariantCard("hrnet_w40", 40, 57.56, 16_381_182_192, 78.93, 94.48, 230_899_236, "hrnetv2_w40-7cd397a4.pth"),
        VariantCard("hrnet_w44", 44, 67.06, 19_202_520_264, 78.89, 94.37, 268_957_432, "hrnetv2_w44-c9ac8c18.pth"),
        VariantCard("hrnet_w48", 48, 77.47, 22_285_865_760, 79.32, 94.51, 310_603_710, "hrnetv2_w48-abd2e6ab.pth"),
        VariantCard("hrnet_w64", 64, 128.06, 37_239_321_984, 79.46, 94.65, 513_071_818, "hrnetv2_w64-b47cc881.pth"),
    )
}


def get_variant(name: str) -> VariantCard:
    """The card of ``name`` (``hrnet_`` prefix optional), or a ValueError listing the nine."""
    key = name if name.startswith("hrnet_") else f"hrnet_{name}"
    if key not in VARIANTS:
        raise InputError(f"Unknown variant {name!r}. Choose one of: {', '.join(VARIANTS)}.")
    return VARIANTS[key]


def weight_tags(variant: str) -> list[str]:
    """Every pretrained timm name for a variant, e.g. ``hrnet_w18.ms_in1k``, ``hrnet_w18_ssld.paddle_in1k``.

    The ssld weights belong to a sibling architecture (``hrnet_w18_ssld``: no bias in the head convs).
    """
    card = get_variant(variant)
    return sorted(timm.list_pretrained(f"{card.name}.*") + timm.list_pretrained(f"{card.name}_ssld.*"))


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names by index (timm ships them; read once)."""
    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(1000))


def class_index(query: str, class_names: Sequence[str]) -> int:
    """A class by its index ("207") or its name: one of its comma-separated synonyms in any case ("Goldfish"),
    else the one name that contains ``query``. No match, or several, is an error that lists them."""
    text = str(query).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    wanted = text.lower()
    names = dict(enumerate(class_names))
    hits = [i for i, name in names.items() if wanted in (s.strip().lower() for s in name.split(","))]
    if not hits:
        hits = [i for i, name in names.items() if wanted in name.lower()]
    if len(hits) != 1:
        some = "; ".join(f"{i}: {names[i]}" for i in hits[:8])
        raise InputError(f"Class {text!r} matches {len(hits)} classes{': ' + some if hits else ''}. Use an index.")
    return hits[0]


def default_class_names(num_classes: int) -> tuple[str, ...]:
    """Names for a head without a card or labels: ImageNet's for 1000 classes, else "class 0".."class N-1"."""
    if num_classes == 1000:
        return imagenet_class_names()
    return tuple(f"class {i}" for i in range(num_classes))


@lru_cache(maxsize=1)
def architectures() -> tuple[str, ...]:
    """What a card may name: the nine variants and timm's ssld siblings of them."""
    ssld = [n for n in timm.list_models("hrnet_*_ssld") if n.removesuffix("_ssld") in VARIANTS]
    return (*VARIANTS, *ssld)


def base_variant(architecture: str) -> str:
    return architecture.removesuffix("_ssld")

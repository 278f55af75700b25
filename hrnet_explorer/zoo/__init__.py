"""The nine HRNet ImageNet variants as data, and loading one with its weights and class names.

Weights come from, in this order of preference: a local checkpoint file, timm's own Hugging Face hub
path (``pretrained=True``), or random initialisation — only when asked, or when the hub file is
neither reachable nor cached. Every :class:`LoadedModel` says where its weights came from.

A checkpoint may have any number of classes. A model card beside it (``NAME.json`` next to
``NAME.safetensors``, format :data:`CARD_FORMAT`) names its architecture, classes and preprocessing;
``load_model("lab")`` loads the card-described model shipped in :data:`LAB_DIR`.

One idea a module: :mod:`.variants` (the nine as data, their tags and class names), :mod:`.cards` (model
cards and labels files, checked), :mod:`.weights` (where weights come from, building the model),
:mod:`.loading` (``load_model`` and its cache), :mod:`.files` (carded checkpoints listed by name),
:mod:`.timm_hrnet` (the one place that reads timm's private HRNet config table).
"""

# _CACHE (an alias of itself) is read by the cache test.
from ..errors import CardError, WeightsError
from .cards import CARD_FORMAT, card_data_config, read_card, read_labels
from .files import ModelFile, model_files
from .loading import _CACHE as _CACHE
from .loading import MODEL_CACHE_SIZE, LoadedModel, clear_model_cache, load_model, register_task
from .variants import (
    ASSETS,
    LAB,
    LAB_DIR,
    LAB_SEG,
    LAB_SEG_DIR,
    VARIANTS,
    VariantCard,
    class_index,
    default_class_names,
    get_variant,
    imagenet_class_names,
    weight_tags,
)
from .weights import RandomWeightsWarning, WeightsSource, parse_weights, read_state_dict

__all__ = [
    "VARIANTS",
    "ASSETS",
    "LAB",
    "LAB_DIR",
    "LAB_SEG",
    "LAB_SEG_DIR",
    "CARD_FORMAT",
    "VariantCard",
    "WeightsError",
    "CardError",
    "WeightsSource",
    "LoadedModel",
    "ModelFile",
    "RandomWeightsWarning",
    "get_variant",
    "weight_tags",
    "imagenet_class_names",
    "class_index",
    "read_card",
    "read_labels",
    "default_class_names",
    "model_files",
    "load_model",
    "clear_model_cache",
    "MODEL_CACHE_SIZE",
    "register_task",
    # what a task built on these backbones (hrnet_explorer.dense) reads its own cards and checkpoints with
    "card_data_config",
    "parse_weights",
    "read_state_dict",
]

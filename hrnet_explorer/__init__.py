"""HRNet Explorer: see how a High-Resolution Network thinks.

image → tensor (images) → trace (trace) → analyses (fusion, attribution) → figures (figures).
"""

from .batch import predict_many, trace_many
from .costs import CARD_FLOPS_EXPLANATION, CostReport, count_macs, count_params, variant_costs
from .dense.card import SEGMENTATION, read_dense
from .errors import (
    ArgumentError,
    CardError,
    ImageError,
    InputError,
    MissingFileError,
    NotFoundError,
    NumericError,
    OutOfRangeError,
    UserError,
    WeightsError,
)
from .export import save_trace
from .fusion import FusionStats, spatial_summary
from .graphs import GraphTracer
from .images import MAX_PIXELS, display_crop, preprocess, read_image
from .predict import Prediction, class_name, predict
from .trace import ModuleRef, Trace, trace, trace_names
from .zoo import (
    LAB,
    VARIANTS,
    LoadedModel,
    RandomWeightsWarning,
    VariantCard,
    WeightsSource,
    get_variant,
    load_model,
    model_files,
    read_card,
    register_task,
    weight_tags,
)

# The zoo builds what a segmentation card describes with the dense package, a floor above it (see zoo.loading).
register_task(SEGMENTATION, read_dense)

__version__ = "0.1.0"

__all__ = [
    "ArgumentError",
    "CARD_FLOPS_EXPLANATION",
    "CardError",
    "CostReport",
    "FusionStats",
    "GraphTracer",
    "ImageError",
    "InputError",
    "LAB",
    "LoadedModel",
    "MAX_PIXELS",
    "MissingFileError",
    "NotFoundError",
    "NumericError",
    "OutOfRangeError",
    "ModuleRef",
    "Prediction",
    "RandomWeightsWarning",
    "Trace",
    "UserError",
    "VARIANTS",
    "VariantCard",
    "WeightsError",
    "WeightsSource",
    "class_name",
    "count_macs",
    "count_params",
    "display_crop",
    "get_variant",
    "load_model",
    "model_files",
    "predict",
    "predict_many",
    "preprocess",
    "read_card",
    "read_image",
    "spatial_summary",
    "trace",
    "save_trace",
    "trace_many",
    "trace_names",
    "variant_costs",
    "weight_tags",
]

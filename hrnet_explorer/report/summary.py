"""Plain-data summaries of results, shared by the CLI's --json output and the app."""

from __future__ import annotations

from ..analyses import reconstruction_error
from ..predict import topk_from_logits
from ..trace import Trace
from ..zoo import LoadedModel


def trace_summary(result: Trace, sample: int = 0, *, model: LoadedModel | None = None, topk: int = 5) -> dict:
    """Per module: stream shapes, the energy-share matrix, the reconstruction error (needs keep="all"); and the
    ``topk`` classes, named with ``model``'s class names (default: ImageNet's for 1000 logits, else "class i")."""
    modules = []
    for ref in result.modules:
        stats = result.fusion(ref.stage, ref.index)
        modules.append(
            {
                "name": ref.name,
                "stage": ref.stage,
                "index": ref.index,
                "stream_shapes": [list(result.shapes[f"{ref.name}.fused{i}"][1:]) for i in range(ref.num_streams)],
                "energy_share": stats.matrix("energy_share", sample).tolist(),
                "agreement": stats.matrix("agreement", sample).tolist(),
                "relu_share": stats.matrix("relu_share", sample).tolist(),
                "active_fraction": stats.active_fraction[sample].tolist(),
                "max_reconstruction_error": reconstruction_error(result, ref.stage, ref.index),
            }
        )
    top = topk_from_logits(result.logits[sample], topk, model.class_names if model else None)
    name = model.name if model else result.variant
    return {
        "model": name,
        "variant": result.variant,
        "num_classes": result.logits.shape[-1],
        "top": [vars(s) for s in top],
        "input_shape": list(result.input_shape),
        # a checkpoint by its model's name, never its path (the summary may be shared)
        "weights": None if result.weights is None else result.weights.to_public_dict(name),
        "maps": {name: list(shape) for name, shape in result.shapes.items()},
        "modules": modules,
    }

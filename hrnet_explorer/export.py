"""A trace out of Python: its maps as safetensors (float32, by trace name) and a JSON manifest beside them.

    paths = save_trace(result, "grace.safetensors", loaded=model)   # grace.safetensors + grace.json

The manifest says what the maps are (every traced name's shape, which were kept), what made them (model, weights,
preprocessing, device, when given the :class:`~hrnet_explorer.zoo.LoadedModel`) and every module's fusion matrices;
a caller adds its own entries (the HTML report: the image, the prediction, its figures). Core: no plotly, no gradio.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .analyses import module_fusion
from .errors import InputError
from .fusion import MEASURES, FusionStats
from .hooks import is_intermediate

if TYPE_CHECKING:
    from .trace import Trace
    from .zoo import LoadedModel

__all__ = ["TRACE_FORMAT", "SavedTrace", "save_trace"]

TRACE_FORMAT = "hrnet-explorer-trace/1"  # the safetensors metadata's "format"


@dataclass(frozen=True)
class SavedTrace:
    """What :func:`save_trace` wrote: the safetensors file, the JSON manifest, and the names of the maps saved."""

    tensors: Path
    manifest: Path
    names: tuple[str, ...]


def save_trace(
    result: Trace,
    path: str | Path,
    *,
    keep: str = "outputs",
    loaded: LoadedModel | None = None,
    manifest: Mapping[str, Any] | None = None,
    fusion: Mapping[str, FusionStats] | None = None,
    sample: int = 0,
) -> SavedTrace:
    """Write ``result``'s maps to ``path`` (its suffix becomes .safetensors) and the manifest beside it (.json).

    ``keep``: "outputs" saves every stream's output and the head (no branch, fuse edge or pre-activation maps),
    "all" every map the trace kept. ``loaded``: the model it was traced with, described in the manifest.
    ``manifest``: the caller's entries, written first (its "format" defaults to :data:`TRACE_FORMAT`).
    ``fusion``: every module's statistics when the caller has them (else read from the trace, which stays as it
    was); the manifest holds sample ``sample``'s matrices. The tensors are copied to float32 in memory of their own
    (some maps share it: head.merge0 is head.incre0).
    """
    from safetensors.torch import save_file

    if keep not in ("outputs", "all"):
        raise InputError(f"keep must be 'outputs' or 'all', not {keep!r}.")
    path = Path(path)
    tensors_path, json_path = path.with_suffix(".safetensors"), path.with_suffix(".json")
    kept = {
        n: t.detach().float().contiguous().clone()
        for n, t in result.maps.items()
        if keep == "all" or not is_intermediate(n)
    }
    model = _model_entry(result, loaded)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(tensors_path), metadata={"format": TRACE_FORMAT, "model": model["name"]})
    fusion = module_fusion(result) if fusion is None else fusion
    written = {
        "format": TRACE_FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(manifest or {}),
        "model": model,
        "fusion": {m: {k: stats.matrix(k, sample).tolist() for k in MEASURES} for m, stats in fusion.items()},
        "maps": {n: list(s) for n, s in result.shapes.items()},
        "kept": {"file": tensors_path.name, "keep": keep, "dtype": "float32", "names": list(kept)},
    }
    written["files"] = {**written.get("files", {}), "safetensors": tensors_path.name, "json": json_path.name}
    json_path.write_text(json.dumps(written, indent=2, default=str))
    return SavedTrace(tensors_path, json_path, tuple(kept))


def _model_entry(result: Trace, loaded: LoadedModel | None) -> dict[str, Any]:
    """The manifest's "model": the loaded model's name, weights and preprocessing, or what the trace knows."""
    if loaded is None:
        w = result.weights
        weights = None if w is None else w.to_public_dict(result.variant)
        return {"name": result.variant, "variant": result.variant, "weights": weights}
    name = getattr(loaded, "name", loaded.variant.name)
    return {
        "name": name,
        "variant": loaded.variant.name,
        "architecture": loaded.architecture,
        "weights": loaded.weights.to_public_dict(name),  # a checkpoint by its model's name: the file may be shared
        "preprocessing": {**loaded.data_config, "input_size": list(result.input_shape[1:])},
        "device": str(loaded.device),
    }

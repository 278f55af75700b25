"""A microscope for streams: what each channel of each resolution responds to.

- :mod:`.visualise` — feature visualisation per unit (a channel of any traced map), batched, seeded, cached on disk;
- :mod:`.units` — map names and channels checked against the model, the model's content key.
"""

from .cache import UnitCache, default_cache_dir
from .units import check_channels, check_map, map_channels, model_key, module_maps, stream_maps
from .visualise import FVSettings, Visualisation, unit_values, visualise

__all__ = [
    "FVSettings",
    "UnitCache",
    "Visualisation",
    "check_channels",
    "check_map",
    "default_cache_dir",
    "map_channels",
    "model_key",
    "module_maps",
    "stream_maps",
    "unit_values",
    "visualise",
]

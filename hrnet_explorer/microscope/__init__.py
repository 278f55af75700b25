"""A microscope for streams: what each channel of each resolution responds to.

- :mod:`.visualise` — feature visualisation per unit (a channel of any traced map), batched, seeded, cached on disk;
- :mod:`.stats` — per-channel mean, max and argmax of chosen maps as a hook-engine recorder (analyze's unit columns);
- :mod:`.examples` — the top-k images per unit, cropped around the unit's maximum;
- :mod:`.selectivity` — class and family selectivity, orientation tuning curves (pure maths on responses);
- :mod:`.gratings` — the tuning stimuli: gratings of every angle, period and phase, in the lab's convention;
- :mod:`.survey` — by resolution, side by side: where the orientation- and shape-selective units live;
- :mod:`.units` — map names and channels checked against the model, the model's content key;
- :mod:`.capture` — one map of a forward, the rest of the forward skipped.
"""

from .cache import UnitCache, default_cache_dir
from .examples import Example, crop_box, dataset_examples, rank, read_channel_stats, run_images, run_model, top_k
from .gratings import LAB_ORIENTATION, Gratings, gratings
from .selectivity import Selectivity, Tuning, class_selectivity, family_selectivity, orientation_tuning
from .stats import STATS, ChannelStats, UnitStats, channel_stats, column_names
from .survey import StreamUnits, Survey, survey, survey_module, unit_tuning
from .units import check_channels, check_map, map_channels, model_key, module_maps, stream_maps
from .visualise import FVSettings, Visualisation, unit_values, visualise

__all__ = [
    "LAB_ORIENTATION",
    "Gratings",
    "Selectivity",
    "StreamUnits",
    "Survey",
    "Tuning",
    "class_selectivity",
    "family_selectivity",
    "gratings",
    "orientation_tuning",
    "survey",
    "survey_module",
    "unit_tuning",
    "STATS",
    "ChannelStats",
    "Example",
    "UnitStats",
    "channel_stats",
    "column_names",
    "crop_box",
    "dataset_examples",
    "rank",
    "read_channel_stats",
    "run_images",
    "run_model",
    "top_k",
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

"""Plotly figures of the explorer's results — pure functions, shared by the app, the notebooks, the CLI and the reports.

Every builder takes results (a :class:`~hrnet_explorer.predict.Prediction`, a
:class:`~hrnet_explorer.trace.Trace`, a :class:`~hrnet_explorer.fusion.Decomposition`, the dataclasses of
:mod:`hrnet_explorer.attribution`, :class:`~hrnet_explorer.costs.CostReport`, the rows of an ``analyze`` run) and
returns a new ``plotly.graph_objects.Figure``; nothing is computed on the model and nothing global changes. Every
figure has a title, labelled axes, a colour bar that says what its colours mean, and hover text with the exact
numbers. Stream k has the same colour everywhere (:data:`STREAM_COLORS`, from :mod:`hrnet_explorer.display`).

One module per family: :mod:`.prediction`, :mod:`.maps`, :mod:`.fusion`, :mod:`.attribution`, :mod:`.trust`,
:mod:`.dataset`; the draft framework they build on is :mod:`._draft`.
"""

from __future__ import annotations

from ..display import (
    COMPACT_WIDTH,
    MEASURE_LABELS,
    METHOD_COLORS,
    METHOD_LABELS,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    REDUCTION_LABELS,
    STREAM_COLORS,
)
from ._draft import COMPACT_DESIGN_WIDTH
from .attribution import attribution_figure, gradcam_figure, knockout_figure, stream_shares_figure
from .dataset import (
    accuracy_figure,
    confidence_figure,
    energy_figure,
    reliance_figure,
    shares_figure,
    top_classes_figure,
)
from .fusion import decomposition_figure, fusion_matrices_figure, fusion_matrix_figure, sankey_figure
from .maps import lanes_figure, module_maps_figure
from .prediction import compare_figure, topk_figure, variants_figure
from .trust import faithfulness_figure, randomisation_figure

__all__ = [
    "STREAM_COLORS",
    "MEASURE_LABELS",
    "REDUCTION_LABELS",
    "METHOD_LABELS",
    "METHOD_COLORS",
    "NEGATIVE_COLOR",
    "POSITIVE_COLOR",
    "COMPACT_WIDTH",
    "COMPACT_DESIGN_WIDTH",
    "topk_figure",
    "variants_figure",
    "lanes_figure",
    "module_maps_figure",
    "fusion_matrix_figure",
    "fusion_matrices_figure",
    "sankey_figure",
    "decomposition_figure",
    "attribution_figure",
    "gradcam_figure",
    "stream_shares_figure",
    "knockout_figure",
    "faithfulness_figure",
    "randomisation_figure",
    "compare_figure",
    "accuracy_figure",
    "confidence_figure",
    "top_classes_figure",
    "energy_figure",
    "shares_figure",
    "reliance_figure",
]

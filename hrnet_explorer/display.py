"""What the explorer's results are called and what colour they are, in one table for every caller.

The figures, the HTML reports, the app and the CLI all read these names and colours from here, so that stream k
and a method look the same everywhere. Plain data: no plotly, no torch (the reports of ``analyze`` and the app's
menus import it without drawing anything).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "STREAM_COLORS",
    "NEGATIVE_COLOR",
    "POSITIVE_COLOR",
    "stream_color",
    "MethodName",
    "METHODS",
    "METHOD_LABELS",
    "METHOD_MENU_NAMES",
    "METHOD_SHORT_NAMES",
    "METHOD_COLORS",
    "MEASURE_LABELS",
    "MEASURE_NAMES",
    "REDUCTION_LABELS",
    "COMPACT_WIDTH",
]

# Okabe–Ito colours (readable with the common colour-vision deficiencies), one per stream.
STREAM_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")
NEGATIVE_COLOR = "#D55E00"  # a loss of evidence, a negative flow
POSITIVE_COLOR = "#0072B2"


def stream_color(k: int) -> str:
    """Stream ``k``'s colour (the table repeats beyond four streams, as a variant's streams never reach it)."""
    return STREAM_COLORS[k % len(STREAM_COLORS)]


@dataclass(frozen=True)
class MethodName:
    """How one attribution method is shown: ``label`` in figures (titles, legends, hover), ``menu`` in the app's
    choices, ``short`` in progress messages, ``color`` its line in the trust figures."""

    label: str
    menu: str
    short: str
    color: str


# One colour per pixel method (Okabe–Ito again); the random map, a reference and not a method, is grey.
METHODS: dict[str, MethodName] = {
    "ig": MethodName("Integrated Gradients", "Integrated Gradients", "IG", "#0072B2"),
    "saliency": MethodName("Saliency (|gradient|)", "Saliency", "Saliency", "#E69F00"),
    "smoothgrad": MethodName("SmoothGrad", "SmoothGrad", "SmoothGrad", "#009E73"),
    "gradshap": MethodName("GradientSHAP", "GradientSHAP", "GradientSHAP", "#CC79A7"),
    "occlusion": MethodName("Occlusion", "Occlusion", "Occlusion", "#D55E00"),
    "random": MethodName("random map", "random map", "random map", "#7F7F7F"),
}
# The table's columns by method, for callers that want one of them.
METHOD_LABELS = {k: m.label for k, m in METHODS.items()}
METHOD_MENU_NAMES = {k: m.menu for k, m in METHODS.items()}
METHOD_SHORT_NAMES = {k: m.short for k, m in METHODS.items()}
METHOD_COLORS = {k: m.color for k, m in METHODS.items()}

# The fusion measures (hrnet_explorer.fusion.MEASURES): in full for colour bars, by name for menus and hover.
MEASURE_LABELS = {
    "energy_share": "energy share ‖e_ij‖² / Σ_k ‖e_ik‖² (each row sums to 1)",
    "agreement": "agreement ⟨e_ij, z_i⟩ / ‖z_i‖² (rows sum to 1; < 0 opposes the sum)",
    "relu_share": "ReLU share ⟨e_ij, ReLU(z_i)⟩ / ‖ReLU(z_i)‖² (rows sum to 1)",
}
MEASURE_NAMES = {"energy_share": "energy share", "agreement": "agreement", "relu_share": "ReLU share"}

# The reductions of a map over its channels (hrnet_explorer.fusion.spatial_summary).
REDUCTION_LABELS = {
    "l2": "channel L2 norm",
    "mean": "channel mean",
    "pca": "first 3 principal components over channels as R, G, B",
}

# Below this width in px (of the browser's figure column) the app asks for compact figures: the wide layouts'
# subplot titles and notes run into each other.
COMPACT_WIDTH = 820

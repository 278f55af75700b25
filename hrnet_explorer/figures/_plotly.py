"""The plotly internals the figures use, in one place (pyproject pins plotly>=5.24;
tests/unit/figures/test_figures_plotly.py checks each behaviour here against the installed plotly).

``make_subplots`` keeps its grid on the figure as the private ``_grid_ref`` (a cell's ``SubplotRef`` tuples, whose
``trace_kwargs`` and ``layout_keys`` say which axes a cell's traces use) and ``_grid_str``; ``row=``/``col=`` read
them. A figure built from plain dicts carries that grid only when the dict passes both back to ``go.Figure``, as
plotly itself does when it rebuilds a subplot figure (``BaseFigure.__reduce__``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["SubplotGrid", "subplot_grid", "cell_axes", "cell_layout_keys", "figure_with_grid"]


class SubplotGrid(NamedTuple):
    """What ``make_subplots`` leaves on its figure for ``row=``/``col=``: ``ref`` (rows × cols of SubplotRef
    tuples) and ``text`` (the grid as ``print_grid`` shows it)."""

    ref: Any
    text: str


def subplot_grid(**options: Any) -> tuple[dict, SubplotGrid]:
    """``make_subplots(**options)``: its layout as a plain dict (template included) and its grid."""
    fig = make_subplots(**options)
    return fig.layout.to_plotly_json(), SubplotGrid(fig._grid_ref, fig._grid_str)


def cell_axes(grid: SubplotGrid, row: int, col: int) -> dict[str, str]:
    """The axes a trace in cell (row, col) (1-based) is drawn on: ``{"xaxis": "x3", "yaxis": "y3"}``."""
    return dict(grid.ref[row - 1][col - 1][0].trace_kwargs)


def cell_layout_keys(grid: SubplotGrid, row: int, col: int) -> tuple[str, str]:
    """The layout keys of cell (row, col)'s axes: ``("xaxis3", "yaxis3")``."""
    x, y = grid.ref[row - 1][col - 1][0].layout_keys
    return x, y


def figure_with_grid(data: list[dict], layout: dict, grid: SubplotGrid | None) -> go.Figure:
    """One ``go.Figure`` of plain-dict ``data`` and ``layout``, validated once; with ``grid``, ``row=``/``col=``
    (``add_trace``, ``get_subplot``, ``update_xaxes``) work on it as on ``make_subplots``' own figure."""
    spec: dict[str, Any] = {"data": data, "layout": layout}
    if grid is not None:
        spec["_grid_ref"], spec["_grid_str"] = grid.ref, grid.text
    return go.Figure(spec)

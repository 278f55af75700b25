"""The contract of hrnet_explorer.figures._plotly with the installed plotly (pyproject: plotly>=5.24): the private
grid that ``make_subplots`` leaves on its figure (``_grid_ref``, ``_grid_str``) says which axes each cell uses, and a
figure rebuilt from plain dicts with that grid handles ``row=``/``col=`` as ``make_subplots``' own figure does. If a
plotly release changes any of this, these tests fail before a figure silently draws in the wrong cell."""

from __future__ import annotations

import copy

import plotly
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from hrnet_explorer.figures import _plotly

OPTIONS = [
    dict(rows=2, cols=3, subplot_titles=("a", "b", "c", "d", "e", "f")),
    dict(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.03),
    dict(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.05),
]


def test_the_installed_plotly_is_in_the_pinned_range():
    major, minor = (int(p) for p in plotly.__version__.split(".")[:2])
    assert (major, minor) >= (5, 24)


@pytest.mark.parametrize("options", OPTIONS)
def test_the_grid_names_each_cells_axes_as_plotly_does(options):
    layout, grid = _plotly.subplot_grid(**options)
    plain = make_subplots(**options)
    assert layout == plain.layout.to_plotly_json()
    assert grid.text == plain._grid_str
    for row in range(1, options["rows"] + 1):
        for col in range(1, options["cols"] + 1):
            sub = plain.get_subplot(row, col)
            axes = _plotly.cell_axes(grid, row, col)
            assert axes == {"xaxis": sub.yaxis.anchor, "yaxis": sub.xaxis.anchor}  # an axis anchors on the other
            assert _plotly.cell_layout_keys(grid, row, col) == (sub.xaxis.plotly_name, sub.yaxis.plotly_name)
            # a trace added by row and col lands on the axes the adapter names
            plain.add_trace(go.Scatter(x=[0], y=[row * 10 + col]), row, col)
            assert (plain.data[-1].xaxis, plain.data[-1].yaxis) == (axes["xaxis"], axes["yaxis"])


@pytest.mark.parametrize("options", OPTIONS)
def test_a_figure_rebuilt_with_the_grid_keeps_row_and_col(options):
    layout, grid = _plotly.subplot_grid(**options)
    rows, cols = options["rows"], options["cols"]
    fig = _plotly.figure_with_grid([], copy.deepcopy(layout), _plotly.SubplotGrid(copy.deepcopy(grid.ref), grid.text))
    fig.add_trace(go.Bar(x=[1], y=[2]), rows, cols)  # plotly raises for row/col on a figure without a grid
    x, y = _plotly.cell_layout_keys(grid, rows, cols)
    assert fig.get_subplot(rows, cols).xaxis.plotly_name == x
    assert fig.data[-1].yaxis == _plotly.cell_axes(grid, rows, cols)["yaxis"]
    fig.update_yaxes(title_text="here", row=rows, col=cols)
    assert fig.layout[y].title.text == "here"


def test_a_figure_without_a_grid_refuses_row_and_col():
    """What the adapter's grid is for: without it, plotly cannot place a trace by cell."""
    fig = _plotly.figure_with_grid([], {}, None)
    with pytest.raises(Exception, match="make_subplots"):
        fig.add_trace(go.Bar(x=[1], y=[2]), 1, 1)

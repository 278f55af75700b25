"""Where users look: Plotly figures of units (for notebooks and the app) and a static, linkable HTML export.

The export writes one self-contained page per map — every unit's feature visualisation, its dataset examples and its
tuning curve, the images inline (base64 PNG) and the curves as inline SVG, so a page needs no script, no server and
no network — and an ``index.html`` linking them. Each unit has an anchor: ``stage4.module0.fused0.html#c7`` is a
link to unit 7 of that map, as OpenAI Microscope has a page per unit.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from ..errors import InputError
from .examples import Example
from .selectivity import Tuning
from .survey import Survey
from .visualise import Visualisation

__all__ = ["examples_figure", "export_html", "streams_figure", "survey_figure", "tuning_figure", "units_figure"]


def units_figure(vis: Visualisation, channels: Sequence[int] | None = None, columns: int = 8) -> go.Figure:
    """A grid of feature visualisations of one map (default: all its visualised channels)."""
    channels = list(channels) if channels is not None else list(vis.channels)
    rows = -(-len(channels) // columns)
    fig = make_subplots(
        rows,
        columns,
        subplot_titles=[f"c{c}" for c in channels],
        horizontal_spacing=0.01,
        vertical_spacing=0.04 / max(rows, 1),
    )
    for k, c in enumerate(channels):
        fig.add_trace(go.Image(z=vis.image(c), hoverinfo="skip"), k // columns + 1, k % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=f"{vis.name}: feature visualisations", height=140 * rows + 60, margin=dict(l=10, r=10))
    return fig


def streams_figure(columns: dict[str, Visualisation], channels: dict[str, Sequence[int]]) -> go.Figure:
    """By resolution, side by side: one column per map (stream 0 first), ``channels[map]`` down each column."""
    names = list(columns)
    rows = max(len(channels[n]) for n in names)
    fig = make_subplots(rows, len(names), column_titles=names, horizontal_spacing=0.02, vertical_spacing=0.01)
    for j, name in enumerate(names):
        for i, c in enumerate(channels[name]):
            fig.add_trace(go.Image(z=columns[name].image(c), name=f"{name} c{c}"), i + 1, j + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=150 * rows + 80, title="Units by resolution (columns: streams, high resolution first)")
    return fig


def tuning_figure(tuning: Tuning, channels: Sequence[int], name: str = "") -> go.Figure:
    """Orientation tuning curves of ``channels`` (mean response per grating angle), OSI and preference in the legend."""
    fig = go.Figure()
    for c in channels:
        fig.add_trace(
            go.Scatter(
                x=tuning.angles,
                y=tuning.curve[c],
                mode="lines+markers",
                name=f"c{c} · OSI {tuning.osi[c]:.2f} · {tuning.preferred[c]:.0f}°",
            )
        )
    fig.update_layout(
        title=f"{name} orientation tuning", xaxis_title="grating angle (°)", yaxis_title="mean response", height=380
    )
    return fig


def survey_figure(survey: Survey) -> go.Figure:
    """Per surveyed map: the fraction of orientation-selective and of shape-selective units."""
    rows = survey.table()
    maps = [r["map"] for r in rows]
    fig = go.Figure(
        [
            go.Bar(
                x=maps,
                y=[r["orientation_fraction"] for r in rows],
                name=f"orientation-selective (OSI ≥ {survey.osi_min})",
            ),
            go.Bar(
                x=maps,
                y=[r["shape_fraction"] for r in rows],
                name=f"shape-selective (class index ≥ {survey.class_min}, coarse)",
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        yaxis_title="fraction of the map's units",
        height=420,
        title=f"Where the selective units live ({survey.images} lab images, {survey.size} px)",
    )
    return fig


def examples_figure(examples: dict[int, list[Example]], class_names: Sequence[str] | None = None) -> go.Figure:
    """Each unit's dataset examples in a row (crops around its maximum), titled by class (or label)."""
    units = list(examples)
    k = max((len(v) for v in examples.values()), default=0)
    if not units or k == 0:
        raise InputError("No dataset examples to draw.")

    def title(e: Example) -> str:
        return class_names[e.label] if class_names is not None and e.label >= 0 else e.image_id

    titles: list[str] = []
    for c in units:
        row = [title(e) for e in examples[c]]
        titles += row + [""] * (k - len(row))
    fig = make_subplots(
        len(units),
        k,
        subplot_titles=titles,
        row_titles=[f"c{c}" for c in units],
        horizontal_spacing=0.01,
        vertical_spacing=0.03,
    )
    for i, c in enumerate(units):
        for j, e in enumerate(examples[c]):
            fig.add_trace(go.Image(z=e.image, name=f"c{c}: {e.image_id} ({e.value:.3g})"), i + 1, j + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=110 * len(units) + 60, title="Dataset examples (cropped around each unit's maximum)")
    return fig


def _png(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _svg_curve(angles: np.ndarray, curve: np.ndarray, width: int = 180, height: int = 70) -> str:
    top = float(curve.max()) or 1.0
    xs = (angles - angles.min()) / max(float(np.ptp(angles)), 1e-9) * (width - 10) + 5
    ys = height - 5 - curve / top * (height - 10)
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    return (
        f'<svg width="{width}" height="{height}" role="img" aria-label="tuning curve">'
        f'<rect width="{width}" height="{height}" fill="#fafafa" stroke="#ddd"/>'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{points}"/></svg>'
    )


_STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
.unit{display:inline-block;vertical-align:top;border:1px solid #ddd;border-radius:6px;padding:8px;margin:6px;
width:380px}.unit:target{border-color:#d62728;box-shadow:0 0 6px #d62728}.unit h3{margin:0 0 4px;font-size:1em}
.fv{width:180px;height:180px;image-rendering:pixelated}.ex{width:56px;height:56px;margin:1px;image-rendering:pixelated}
.meta{font-size:.8em;color:#555}a{color:#1f77b4}"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def export_html(
    out: str | os.PathLike,
    vis: Visualisation,
    *,
    examples: dict[int, list[Example]] | None = None,
    tuning: Tuning | None = None,
    class_names: Sequence[str] | None = None,
    model: str = "",
) -> Path:
    """Write ``out/{map}.html`` (one self-contained page: every unit of ``vis`` with its ``examples`` and its row of
    ``tuning``) and ``out/index.html`` (links to every page in ``out``). → the map's page."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if tuning is not None and tuning.osi.size <= max(vis.channels):
        raise InputError(f"The tuning holds {tuning.osi.size} units; {vis.name!r} has channel {max(vis.channels)}.")
    cards = []
    for k, c in enumerate(vis.channels):
        parts = [
            f'<div class=unit id="c{c}"><h3><a href="#c{c}">{html.escape(vis.name)} · unit {c}</a></h3>',
            f'<img class=fv alt="feature visualisation of unit {c}" src="{_png(vis.images[k])}">',
        ]
        parts.append(f"<div class=meta>activation {vis.activations[k]:.3g}</div>")
        if tuning is not None:
            parts.append(_svg_curve(tuning.angles, tuning.curve[c]))
            parts.append(
                f"<div class=meta>OSI {tuning.osi[c]:.2f} · prefers {tuning.preferred[c]:.0f}° "
                f"(angles {tuning.angles.min():.0f}–{tuning.angles.max():.0f}°)</div>"
            )
        for e in (examples or {}).get(c, []):
            label = class_names[e.label] if class_names is not None and e.label >= 0 else str(e.label)
            tip = html.escape(f"{e.image_id} · {label} · {e.value:.3g}")
            parts.append(f'<img class=ex title="{tip}" alt="{tip}" src="{_png(e.image)}">')
        cards.append("".join(parts) + "</div>")
    s = vis.settings
    head = (
        f"<h1>{html.escape(vis.name)}</h1><p class=meta>{html.escape(model)} · model key {vis.model_key} · "
        f"{len(vis.channels)} units · {s.steps} steps at {s.size} px, seed {s.seed} · "
        f'<a href="index.html">all maps</a></p>'
    )
    page = out / f"{vis.name}.html"
    page.write_text(_page(vis.name, head + "".join(cards)), encoding="utf-8")
    links = "".join(
        f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem)}</a></li>'
        for p in sorted(out.glob("*.html"))
        if p.name != "index.html"
    )
    (out / "index.html").write_text(
        _page("Microscope", f"<h1>Microscope: {html.escape(model)}</h1><ul>{links}</ul>"), encoding="utf-8"
    )
    return page

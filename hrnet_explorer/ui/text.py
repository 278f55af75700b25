"""Everything the app says in words: the page's Markdown, the banner, the summaries and tables beside the figures.

Pure functions of results (an :class:`~hrnet_explorer.ui.cache.Analysis`, a knockout, a decomposition) to
Markdown or HTML strings; names of methods and measures come from :mod:`hrnet_explorer.display`. No gradio here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ..attribution.trust import MASK_COLUMNS, TABLE_COLUMNS
from ..display import MEASURE_NAMES, METHOD_MENU_NAMES
from .cache import Analysis

__all__ = [
    "INTRO",
    "TRUST_HELP",
    "attribution_text",
    "banner_html",
    "comparison_table",
    "decomposition_table",
    "knockout_table",
    "measure_choices",
    "method_choices",
    "random_note",
    "summary",
    "trust_table",
    "weights_text",
]

INTRO = """# HRNet Explorer
See how a High-Resolution Network thinks: timm's HRNet ImageNet classifiers keep four streams at 1/4, 1/8, 1/16
and 1/32 resolution side by side and fuse them in every module. Upload an image (or paste one, or use the webcam),
pick a variant and press **Analyze**; every tab reads the same traced forward pass."""

TRUST_HELP = """The pixel methods often disagree. Score them on this image: **deletion** removes the pixels a map
ranks highest first and watches the class's probability fall (a faithful map makes it fall fast: low area),
**insertion** puts them back into a blurred image (high area is good); the **randomisation test** re-initialises
the network from the head down and checks that the map changes (a map that stays similar ignores the model).
A random map is scored beside them: a method no better than it tells you nothing. On a lab example image with
the lab model, the known evidence region is scored too."""

BANNER_STYLE = (
    "background:#fff4e5;border:2px solid #d55e00;color:#5a2a00;padding:10px 14px;border-radius:8px;"
    "font-size:15px;margin:4px 0"
)


def method_choices(methods: Sequence[str]) -> list[tuple[str, str]]:
    """(menu name, method) for a dropdown of pixel methods."""
    return [(METHOD_MENU_NAMES.get(m, m), m) for m in methods]


def measure_choices(measures: Sequence[str]) -> list[tuple[str, str]]:
    """(name, measure) for the fusion measure's radio."""
    return [(MEASURE_NAMES[m], m) for m in measures]


def random_note(a: Analysis) -> str:
    """A Markdown warning line above every analysis text while the model's weights are random; '' otherwise."""
    w = a.loaded.weights
    if not w.is_random:
        return ""
    return (
        f"⚠️ **RANDOM weights** ({w.detail}): {a.loaded.name} is untrained, so this result is meaningless: it "
        "shows the machinery, not a trained network.\n\n"
    )


def banner_html(a: Analysis) -> str:
    """A loud HTML banner while the weights are random; '' otherwise."""
    w = a.loaded.weights
    if not w.is_random:
        return ""
    return (
        f'<div role="alert" style="{BANNER_STYLE}">⚠️ <b>Random weights.</b> '
        f"{html.escape(a.loaded.name)} is running with RANDOM weights ({html.escape(w.detail)}). "
        "Every prediction, map, share and attribution below is meaningless: it shows the machinery, not "
        "a trained network. Choose weights that are available, or run where the Hugging Face hub is "
        "reachable.</div>"
    )


def weights_text(loaded: Any) -> str:
    """Where the weights came from, as a browser user may read it: a checkpoint by its model's name, never by its
    path on the server (a hub tag or the random weights' reason as they are)."""
    w = loaded.weights
    if w.kind == "file":
        return f"the checkpoint of {loaded.name}" + (" (its model card)" if loaded.card is not None else "")
    return w.describe()


def summary(a: Analysis, cached: bool, device_text: str, latency_text: str) -> str:
    """The Predict tab's summary: the model, its weights and input, the timing, the top-1."""
    cfg, m = a.loaded.data_config, a.loaded
    h, w = a.prediction.input_size
    top = a.prediction.top[0]
    model = f"**{m.name}**" + (f" ({m.architecture}, {m.num_classes} classes)" if m.card is not None else "")
    return (
        f"{model} · weights: {weights_text(m)} · device: {device_text}\n\n"
        f"Input {h}×{w} px ({cfg.get('interpolation')} resize, crop {cfg.get('crop_pct')}) · "
        + (
            f"this trace was reused from the cache (no new forward; tracing it took {a.forward_ms:.0f} ms)"
            if cached
            else f"traced forward {a.forward_ms:.0f} ms"
        )
        + f", fastest so far {latency_text} · {len(a.trace.maps)} maps kept "
        f"({a.nbytes / 2**20:.1f} MiB)\n\n"
        f"Top-1: **{top.label}** (class {top.index}, {top.probability:.1%})"
    )


def decomposition_table(dec: Any) -> str:
    """One fused map taken apart: each source's energy share, agreement and ReLU share."""
    rows = "\n".join(
        f"| {j} | {dec.energy_share[0, j]:.4f} | {dec.agreement[0, j]:+.4f} | {dec.relu_share[0, j]:+.4f} |"
        for j in dec.sources
    )
    return (
        f"**{dec.module} → stream {dec.target}**: fused = ReLU(Σ_j edge j→{dec.target}); max |reconstruction "
        f"error| = {dec.max_error:.2e}\n\n| source | energy share | agreement | ReLU share |\n|---|---|---|---|\n"
        + rows
    )


def attribution_text(result: Any, method: str, target: int) -> str:
    """One line under a pixel attribution: method (as the picker names it), class, convergence δ, time,
    settings."""
    delta = "" if result.delta is None else f" · convergence δ = {result.delta:.3e}"
    settings = ", ".join(f"{k}={v}" for k, v in result.settings.items())
    name, seconds = METHOD_MENU_NAMES.get(method, method), getattr(result, "seconds", 0.0)
    return f"**{name}** for class {target} ({result.label}){delta} · {seconds:.2f} s · {settings}"


def knockout_table(results: Sequence[Any]) -> str:
    """Knockouts as a table: what was removed, the target's logit and probability before → after, the new top-1."""
    head = "| knocked out | logit before → after | probability before → after | top-1 after |\n|---|---|---|---|\n"
    rows = "\n".join(
        f"| {r.description} | {r.logit_before:.4f} → {r.logit_after:.4f} ({r.logit_delta:+.4f}) | "
        f"{r.prob_before:.2%} → {r.prob_after:.2%} | "
        + (f"{r.top_after[0].label} ({r.top_after[0].probability:.1%})" if r.top_after else "—")
        + " |"
        for r in results
    )
    return head + rows


def comparison_table(analyses: Sequence[Analysis], latency_text: Any) -> str:
    """The Compare tab's table: model, weights, top-1, fastest traced forward (``latency_text(analysis)``)."""
    lines = "\n".join(
        f"| {a.loaded.name} | {a.loaded.weights.kind}{' ⚠️' if a.loaded.weights.is_random else ''} | "
        f"{a.prediction.top[0].label} ({a.prediction.top[0].probability:.1%}) | {latency_text(a)} |"
        for a in analyses
    )
    return "| model | weights | top-1 | fastest traced forward |\n|---|---|---|---|\n" + lines


def trust_table(rows: Sequence[Any], with_mask: bool) -> str:
    """The Trust view's method × score table (Markdown): the columns and row names the trust dataclasses give."""

    def cell(value: float | bool | None) -> str:
        if isinstance(value, bool):
            return "✔" if value else "✘"
        return "—" if value is None else f"{value:.3f}"

    columns = TABLE_COLUMNS + (MASK_COLUMNS if with_mask else ())
    head = ["method", *(title for _, title in columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        scores = r.scores()
        lines.append("| " + " | ".join([r.display_name, *(cell(scores[key]) for key, _ in columns)]) + " |")
    first = rows[0]
    f = first.faithfulness
    note = (
        f"**{first.label}** (class {first.target}) · p = {f.probability:.3f}, after deleting every pixel "
        f"({f.baseline}) {f.baseline_probability:.3f} · {f.steps} steps · AUCs of p / p(input) over the fraction "
        "of pixels"
    )
    if any(r.randomisation is not None for r in rows):  # only when the test ran: its column is "—" otherwise
        note += " · randomised: Spearman of |map| to the original once every layer is re-initialised"
    else:
        note += " · randomisation test off"
    if with_mask:
        note += f" · evidence mask of this lab image: {first.mask_fraction:.1%} of the pixels (a random map's mass)"
    return note + "\n\n" + "\n".join(lines)

"""The Microscope tab: pick a map, page through its units — each with its feature visualisation, its top lab images
(cropped around its maximum) and its orientation tuning curve (:mod:`hrnet_explorer.microscope`).

Small settings on a CPU; a page of units is optimised in one batch and cached on disk, so a page seen once comes
back at once. The dataset examples are the lab's test images, whatever the model (on the lab model they are its task).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import gradio as gr
import torch

from ..errors import InputError, OutOfRangeError
from ..lab import CLASSES, render
from ..microscope import (
    ChannelStats,
    FVSettings,
    Tuning,
    channel_stats,
    check_map,
    dataset_examples,
    gratings,
    model_key,
    unit_tuning,
    visualise,
)
from ..microscope.html import examples_figure, tuning_figure, units_figure
from ..progress import fraction
from .cache import Workbench
from .guard import user_errors

__all__ = ["PAGE", "Microscope", "add_microscope_tab", "map_choices"]

PAGE = 8  # units per page
PROGRESS = gr.Progress()


def map_choices(workbench: Workbench, variant: str) -> list[str]:
    """Every module's fused streams of ``variant`` (stage s has s streams), without loading it."""
    return [f"{m}.fused{i}" for m in workbench.module_names(variant) for i in range(int(m[len("stage")]))]


class Microscope:
    """The tab's state: the workbench's models, this device's settings, each (model, map)'s tuning and statistics."""

    def __init__(
        self,
        workbench: Workbench,
        *,
        steps: int | None = None,
        size: int | None = None,
        images: int = 100,
        cache: str | os.PathLike | None = None,
    ):
        """``cache``: the feature visualisations' folder (default: the user cache, shared with the CLI)."""
        self.cache = cache
        cuda = workbench.device.type == "cuda"
        self.ex = workbench
        self.settings = FVSettings.for_device(
            workbench.device, steps=steps or (256 if cuda else 32), size=size or (224 if cuda else 96)
        )
        self.images = images
        self._lab = None  # the lab test images, rendered on first use (not while the app starts)
        self._lock = threading.Lock()
        self._tuning: dict[tuple[str, str], Tuning] = {}
        self._stats: dict[tuple[str, str], ChannelStats] = {}

    @property
    def lab(self):
        if self._lab is None:
            self._lab = render(range(self.images), "test", self.settings.size)
        return self._lab

    def _lab_stats(self, loaded, name: str) -> ChannelStats:
        cfg = loaded.data_config
        mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
        return channel_stats(loaded, (self.lab.images - mean) / std, [name], labels=self.lab.labels.numpy())[name]

    def _per_map(self, loaded, name: str) -> tuple[Tuning, ChannelStats]:
        key = (model_key(loaded), name)
        with self._lock:  # one computation per (model, map), however many requests ask
            if key not in self._tuning:
                stimuli = gratings(8, size=self.settings.size)
                self._tuning[key] = unit_tuning(loaded, name, stimuli=stimuli)
                self._stats[key] = self._lab_stats(loaded, name)
            return self._tuning[key], self._stats[key]

    @user_errors
    def maps(self, variant: str):
        """The map picker for ``variant``: its maps, the last module's lowest-resolution stream chosen."""
        choices = map_choices(self.ex, variant)
        return gr.update(choices=choices, value=choices[-1])

    @user_errors
    def show(self, variant: str, weights: str, name: str, first: Any = 0, progress=PROGRESS):
        """A page of ``PAGE`` units of map ``name`` from channel ``first``: the visualisations, the dataset examples,
        the tuning curves, a table, and the page's first unit."""
        loaded = self.ex.load(variant, weights)
        count = check_map(loaded, name)
        try:
            first = int(first)
        except (TypeError, ValueError) as exc:
            raise InputError(f"The first unit is a channel number, got {first!r}.") from exc
        if not 0 <= first < count:
            raise OutOfRangeError(f"{name!r} has channels 0..{count - 1}; {first} is out of range.")
        channels = list(range(first, min(first + PAGE, count)))
        vis = visualise(
            loaded,
            name,
            channels,
            self.settings,
            cache=self.cache,
            progress=fraction(progress, "visualisation", "step"),
        )
        tuning, stats = self._per_map(loaded, name)
        u8 = torch.round(self.lab.images * 255).to(torch.uint8)
        crop = min(48, self.settings.size)
        examples = dataset_examples(loaded, stats, lambda rows: u8[rows], channels, k=4, crop=crop)
        rows = "\n".join(
            f"| {c} | {tuning.osi[c]:.2f} | {tuning.preferred[c]:.0f}° | {vis.activations[k]:.3g} | "
            f"{CLASSES[int(stats.labels[examples[c][0].index])]} |"
            for k, c in enumerate(channels)
        )
        text = (
            f"**{name}** · units {channels[0]}–{channels[-1]} of {count} · {vis.settings.steps} steps at "
            f"{vis.settings.size} px ({int(vis.cached.sum())} of {len(channels)} from the cache)\n\n"
            f"| unit | OSI | prefers | activation | top example |\n|---|---|---|---|---|\n{rows}"
        )
        figures = (
            units_figure(vis, columns=4),
            examples_figure(examples, CLASSES),
            tuning_figure(tuning, channels, name),
        )
        return (*figures, text, first)

    @user_errors
    def next_page(self, variant: str, weights: str, name: str, first: Any = 0, progress=PROGRESS):
        """The page after the one starting at ``first`` (back to unit 0 after the last)."""
        count = check_map(self.ex.load(variant, weights), name)
        try:
            following = int(first) + PAGE
        except (TypeError, ValueError):
            following = 0
        return self.show(variant, weights, name, following if following < count else 0, progress)


def add_microscope_tab(
    workbench: Workbench, variant: gr.components.Component, weights: gr.components.Component, default_variant: str
) -> Microscope:
    """The Microscope tab (inside the app's ``gr.Tabs``) and its events: ``microscope`` and ``microscope_next``."""
    scope = Microscope(workbench)
    choices = map_choices(workbench, default_variant)
    with gr.Tab("Microscope", id="microscope"):
        gr.Markdown("What each unit — a channel of one stream — responds to. Pick a map and page through its units.")
        with gr.Row():
            name = gr.Dropdown(choices, value=choices[-1], label="Map", allow_custom_value=True)
            first = gr.Number(0, precision=0, minimum=0, label="First unit")
            show = gr.Button("Show", variant="primary", scale=0)
            following = gr.Button("Next page", scale=0)
        units_plot = gr.Plot(label="Feature visualisations", elem_id="microscope-units")
        table = gr.Markdown(label="Units")
        examples_plot = gr.Plot(label="Dataset examples", elem_id="microscope-examples")
        tuning_plot = gr.Plot(label="Orientation tuning", elem_id="microscope-tuning")
    io = dict(inputs=[variant, weights, name, first], outputs=[units_plot, examples_plot, tuning_plot, table, first])
    show.click(scope.show, **io, api_name="microscope", concurrency_id="model")
    following.click(scope.next_page, **io, api_name="microscope_next", concurrency_id="model")
    variant.change(scope.maps, inputs=variant, outputs=name, api_name="microscope_maps", api_visibility="private")
    return scope

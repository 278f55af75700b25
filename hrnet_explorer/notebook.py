"""What the JupyterLab tutorials (``notebooks/``) share: their settings and the load-and-describe step.

Every tutorial opens with ``settings = Settings.from_env(...)``: each setting is the notebook's default
unless an ``HRNET_EXPLORER_*`` variable says otherwise, and ``print(settings)`` shows every value and
where it came from. ``load(settings)`` loads the model and prints where its weights came from
(``loaded.weights.describe()``: random weights say so). ``explore(figure, name=options, ...)`` puts
dropdowns above a figure and redraws it in place (instead of ``ipywidgets.interact``: see there).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import ArgumentError, InputError
from .runtime import resolve_device
from .zoo import ASSETS, VARIANTS, LoadedModel, RandomWeightsWarning, get_variant, load_model

PREFIX = "HRNET_EXPLORER_"

# 05: the variants loaded, timed and traced when HRNET_EXPLORER_VARIANTS is "auto". All nine at 224 px are far
# too slow for one cell on a busy CPU (issue 11 has the numbers), so a CPU gets the smallest, the first of full
# depth and a middle width.
CPU_VARIANTS = ("hrnet_w18_small", "hrnet_w18", "hrnet_w32")


@dataclass(frozen=True)
class Settings:
    """A tutorial's settings; each field is read from ``HRNET_EXPLORER_<FIELD>`` when that is set."""

    variant: str = "hrnet_w18_small"  # one of the nine ("w18" or "hrnet_w18")
    weights: str = "default"  # "default", a tag ("ms_in1k", ...), a checkpoint path, or "random"
    device: str = "auto"  # "auto" (CUDA if available, else CPU), "cpu", "cuda"
    input_size: int = 224  # crop side in pixels, a multiple of 32 (HRNet's fixed ×2 upsampling)
    image: Path = ASSETS / "grace_hopper.jpg"  # the image to explain
    fast: bool = False  # fewer attribution steps and samples: for CI, not for reading
    variants: str = "auto"  # 05 only: "auto" (all nine on CUDA, three on CPU), "all", or names: "w18_small,w32"
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)  # field → variable it came from

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **defaults) -> Settings:
        """The notebook's ``defaults`` (keyword arguments), overridden by the ``HRNET_EXPLORER_*`` variables.

        An empty variable counts as unset; ``HRNET_EXPLORER_FAST`` is on for "1", "true" or "yes".
        """
        environ = os.environ if environ is None else environ
        names = [f.name for f in dataclasses.fields(cls) if f.name != "sources"]
        unknown = sorted(set(defaults) - set(names))
        if unknown:
            raise ArgumentError(f"Unknown setting(s) {', '.join(unknown)}; the settings are: {', '.join(names)}.")
        values, sources = dict(defaults), {}
        for name in names:
            raw = environ.get(PREFIX + name.upper(), "").strip()
            if raw:
                values[name], sources[name] = raw, PREFIX + name.upper()
        return cls(**values, sources=sources)

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise the types once, here
        set_(self, "variant", get_variant(str(self.variant)).name)  # its error lists the nine names
        size = int(self.input_size)
        if size < 32 or size % 32:
            raise InputError(f"input_size must be a positive multiple of 32, not {self.input_size!r}.")
        set_(self, "input_size", size)
        set_(self, "image", Path(self.image).expanduser())
        fast = self.fast if isinstance(self.fast, bool) else str(self.fast).strip().lower() in ("1", "true", "yes")
        set_(self, "fast", fast)
        set_(self, "weights", str(self.weights))
        set_(self, "device", str(self.device))
        set_(self, "variants", str(self.variants))

    def compared_variants(self, device: str | torch.device | None = None) -> list[str]:
        """05's variants: ``variants`` as full names; "auto" is all nine on CUDA and :data:`CPU_VARIANTS` on CPU.

        ``device``: where they will run (default: this settings' ``device``).
        """
        choice = self.variants.strip()
        if choice == "auto":
            on_cuda = (resolve_device(self.device) if device is None else torch.device(device)).type == "cuda"
            return list(VARIANTS) if on_cuda else list(CPU_VARIANTS)
        if choice == "all":
            return list(VARIANTS)
        names = [get_variant(n.strip()).name for n in choice.split(",") if n.strip()]
        if not names:
            raise InputError(f"No variant in {self.variants!r}: use 'auto', 'all' or names such as 'w18_small,w32'.")
        return list(dict.fromkeys(names))

    def __str__(self) -> str:
        rows = []
        for f in dataclasses.fields(self):
            if f.name == "sources" or (f.name == "variants" and f.name not in self.sources and self.variants == "auto"):
                continue  # variants: 05's, which prints the variants it chose
            value = getattr(self, f.name)
            origin = f"from {self.sources[f.name]}" if f.name in self.sources else "default"
            rows.append(f"{f.name:<11} {str(value):<28} ({origin})")
        return "\n".join(rows)


def load(settings: Settings, variant: str | None = None) -> LoadedModel:
    """``load_model`` with the settings' weights and device (``variant``: default, the settings' one),
    then print where the weights came from, so that random weights are never silent."""
    with warnings.catch_warnings():  # its RandomWeightsWarning says what describe() prints below
        warnings.simplefilter("ignore", RandomWeightsWarning)
        loaded = load_model(variant or settings.variant, weights=settings.weights, device=settings.device)
    print(loaded.weights.describe())
    return loaded


def explore(figure: Callable[..., Any], **choices: Sequence[Any] | Mapping[str, Any]) -> None:
    """Dropdowns above ``figure(**values)``, redrawn in place when a dropdown changes.

    ``choices``: for each argument of ``figure``, its options — a list of values, or a mapping from
    label to value; the first option is shown first. The figure is displayed as an ordinary output
    (it stays in a saved or converted notebook) and is replaced through its display id, from the
    dropdowns' callbacks.

    Why not ``ipywidgets.interact``: it draws into an ``Output`` widget, and a headless runner
    (``jupyter nbconvert --execute``, nbclient) mirrors that widget by sending state updates to the
    kernel on the shell channel while it waits on that same channel for the cell's reply. The reply is
    then sometimes missed until the cell timeout (600 s by default), after which the run goes on as if
    nothing happened (jupyter/nbclient#312). Dropdowns and display updates send nothing back.
    """
    from IPython.display import display
    from ipywidgets import Dropdown, HBox

    dropdowns = {}
    for name, options in choices.items():
        pairs = list(options.items()) if isinstance(options, Mapping) else [(str(v), v) for v in options]
        if not pairs:
            raise InputError(f"explore: no options for {name!r}.")
        dropdowns[name] = Dropdown(options=pairs, value=pairs[0][1], description=name)

    def current():
        return figure(**{name: d.value for name, d in dropdowns.items()})

    display(HBox(list(dropdowns.values())))
    handle = display(current(), display_id=True)

    def redraw(_change):
        if handle is None:  # outside IPython, display() prints and returns no handle
            display(current())
        else:
            handle.update(current())

    for d in dropdowns.values():
        d.observe(redraw, names="value")

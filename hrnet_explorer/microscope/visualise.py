"""Feature visualisation per unit: the image that most excites one channel of one traced map, many channels at once.

The parameterisation and the robustness transforms are torch-lucent's (``lucent.optvis.param.image``: a batch of
images in a 1/f-scaled Fourier basis with decorrelated colour; ``lucent.optvis.transform.standard_transforms``:
pad, jitter, scale, rotate). What lucent's own ``render_vis`` loop cannot do here is ours, in this module:

- the objective reads the unit from the hook engine (:mod:`hrnet_explorer.hooks`), so every trace name is a
  target — lucent hooks module *outputs*, and HRNet's fused maps come from one shared ReLU called once per stream
  (its hook keeps only the last call); the forward stops as soon as the target map exists;
- image ``b`` of the batch maximises channel ``channels[b]`` (one gather, one backward for the whole batch);
  lucent would need one ``objectives.channel`` per image, summed;
- it runs on the caller's model's private copy, under its lock (lucent hooks every module of the model it is given
  and never removes those hooks), normalised with the weights' own mean and std, resized back to a multiple of 32
  after the transforms (lucent's random scale changes the size; HRNet needs multiples of 32);
- it is seeded: each unit's starting spectrum is drawn from its own generator, keyed by (seed, channel), so a
  unit's image does not depend on which other units share its batch (eval-mode BatchNorm keeps the images
  independent); lucent's transforms draw from NumPy's global generator, which is seeded here and restored after.

horama 0.3 was tried first: its MACO downloads a magnitude spectrum from the network on first use (refused offline)
and, like its Fourier method, optimises one image at a time (it asserts a 3-D image), so it cannot batch units.

``compiled=True`` runs the same objective through ``torch.compile`` instead:
:func:`~hrnet_explorer.compiled.trace_forward` on the BatchNorm-folded private copy (channel widths padded on a GPU
where a width needs it), channels_last, returning only the target map, so the compiler drops everything after it;
forward and backward are compiled once per (map, batch, size, precision) and kept on the copy (a short last batch is
filled up with copies of its last unit, so one run compiles one batch shape). It is a fast path
(the maps within ``FAST_RTOL`` of the exact copy's), so it has its own cache key.

Results are cached on disk, one PNG per unit (the final activation in a text chunk), under
``{cache}/{model key}/{map}/{settings key}/{channel}.png`` (:mod:`.cache`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..compiled import RECOMPILE_LIMIT, trace_forward
from ..copies import private_copy
from ..errors import InputError
from ..graphs import tracer_copy
from ..hooks import hooks_installed, hrnet_hooks
from ..images import STRIDE
from ..pad import needs_padding
from ..progress import Progress
from ..runtime import Precision, autocast, resolve_device
from ..zoo import LoadedModel
from .cache import UnitCache
from .capture import MapCapture
from .units import check_channels, check_map, model_key, network

__all__ = ["FVSettings", "Visualisation", "visualise", "unit_values"]

_INIT_SD = 0.01  # lucent's default spread of the starting spectrum


@dataclass(frozen=True)
class FVSettings:
    """How a unit is visualised; every field is part of the cache key.

    ``steps`` Adam steps of learning rate ``lr`` (lucent's default 0.05) on ``size`` px images (a multiple of 32);
    ``transforms``: lucent's standard robustness transforms (pad 12, jitter 8, scale ±10 %, rotate ±10°, jitter 4)
    each step; ``precision``: "fp32", or "bf16" autocast for the forward (CUDA); ``compiled``: the objective through
    ``torch.compile`` (a fast path: compiled on first use per map and batch size, tens of seconds, then 2–5× faster
    per step on a GPU)."""

    steps: int = 256
    size: int = 224
    lr: float = 0.05
    seed: int = 0
    transforms: bool = True
    precision: Precision = "fp32"
    compiled: bool = False

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise InputError(f"steps must be a positive int, got {self.steps!r}.")
        if not isinstance(self.size, int) or self.size < STRIDE or self.size % STRIDE:
            raise InputError(f"size must be a positive multiple of {STRIDE}, got {self.size!r}.")
        if not self.lr > 0:
            raise InputError(f"lr must be positive, got {self.lr!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError(f"seed must be an int, got {self.seed!r}.")
        if self.precision not in ("fp32", "bf16"):
            raise InputError(f"precision must be 'fp32' or 'bf16', not {self.precision!r}.")
        if not isinstance(self.compiled, bool):
            raise InputError(f"compiled must be True or False, got {self.compiled!r}.")

    @classmethod
    def for_device(cls, device: str | torch.device, **fields) -> FVSettings:
        """The app's and the CLI's settings on ``device``: bf16 autocast on a GPU, fp32 on the CPU (``fields``
        override), so both give a unit the same image (and share its cache entry) on the same machine."""
        precision = "bf16" if resolve_device(device).type == "cuda" else "fp32"
        return cls(**{"precision": precision, **fields})


@dataclass(frozen=True)
class Visualisation:
    """Feature visualisations of ``channels`` of map ``name``: ``images[k]`` (uint8 H×W×3) maximises
    ``channels[k]``, reaching ``activations[k]`` (the channel's spatial mean on the final, untransformed image).
    ``cached[k]``: read from the disk cache; ``seconds``: the optimisation's wall time (0 when all were cached)."""

    name: str
    channels: tuple[int, ...]
    images: np.ndarray
    activations: np.ndarray
    cached: np.ndarray
    settings: FVSettings
    model_key: str
    seconds: float

    def image(self, channel: int) -> np.ndarray:
        return self.images[self.channels.index(channel)]


def unit_values(maps: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """Image b's value of unit ``channels[b]``: the channel's spatial mean (lucent's ``channel`` objective), float32."""
    picked = maps[torch.arange(maps.shape[0], device=maps.device), channels]
    return picked.float().reshape(picked.shape[0], -1).mean(1)


@contextlib.contextmanager
def _numpy_seeded(seed: int) -> Iterator[None]:
    """lucent's transforms draw from NumPy's global generator: seed it for the block, give the caller's state back."""
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


def _lucent():
    try:
        from lucent.optvis import param, transform
    except ImportError as exc:
        raise InputError(
            f"Feature visualisation needs torch-lucent: pip install 'hrnet-explorer[microscope]' ({exc})."
        ) from exc
    return param, transform


def _unit_seed(seed: int, channel: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}/{channel}".encode()).digest()[:8], "little") >> 1


def settings_key(loaded_config: dict, settings: FVSettings) -> str:
    """The cache's settings key: the settings, the normalisation and the method, hashed."""
    described = {
        **asdict(settings),
        "mean": list(loaded_config["mean"]),
        "std": list(loaded_config["std"]),
        "method": "lucent-0.1.8 fft decorrelated, channel mean",
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


COMPILE_BACKEND = "inductor"  # torch.compile's backend for compiled=True (the CPU tests use "eager")
# reduce-overhead: replayed from CUDA graphs. Per step on an H200 it halved the 144-unit batch and cut an 18-unit
# batch 5x against Inductor's default mode, whose kernel launches dominated (benchmarks/README.md).
COMPILE_MODE: str | None = "reduce-overhead"


def _map_of(net: torch.nn.Module, name: str, widths: dict[str, int], x: torch.Tensor) -> torch.Tensor:
    return trace_forward(net, x, widths)[name]


@contextlib.contextmanager
def _map_forward(loaded: LoadedModel, name: str, compiled: bool) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """A forward from model input to map ``name`` (with its autograd graph) on a private copy, under its lock."""
    if not compiled:
        run = private_copy(loaded.model, "exact")
        rec = MapCapture(name)
        with run.lock, hooks_installed(hrnet_hooks(run.net, rec)):
            yield functools.partial(rec.forward, run.net)
        return
    pad = loaded.device.type == "cuda" and needs_padding(loaded.model)
    run = private_copy(loaded.model, tracer_copy(fold=True, pad=pad), channels_last=True)
    with run.lock:
        key = ("microscope", name, COMPILE_BACKEND, COMPILE_MODE)
        if key not in run.derived:
            widths = dict(getattr(run.net, "hrnet_explorer_widths", {}))
            forward = functools.partial(_map_of, run.net, name, widths)
            run.derived[key] = torch.compile(
                forward, backend=COMPILE_BACKEND, mode=COMPILE_MODE, fullgraph=True, dynamic=False
            )

        def forward_to_map(x: torch.Tensor) -> torch.Tensor:
            torch.compiler.cudagraph_mark_step_begin()  # each call is a new step (the last one has no backward)
            return run.derived[key](x.contiguous(memory_format=torch.channels_last))

        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
            yield forward_to_map


def _optimise(
    loaded: LoadedModel, name: str, channels: tuple[int, ...], settings: FVSettings, progress, done: int, total: int
) -> tuple[np.ndarray, np.ndarray]:
    """One batched optimisation: image b maximises ``channels[b]``. → uint8 images [B, S, S, 3], activations [B]."""
    param, transform = _lucent()
    device, size, b = loaded.device, settings.size, len(channels)
    with torch.random.fork_rng(devices=[]):  # lucent's start draws from torch's global generator: overwritten below
        params, image_f = param.image(size, batch=b, fft=True, decorrelate=True)
    spectrum = params[0]
    with torch.no_grad():  # each unit's start from its own generator: independent of its batch
        for k, c in enumerate(channels):
            g = torch.Generator().manual_seed(_unit_seed(settings.seed, c))
            spectrum[k].copy_(torch.randn(spectrum.shape[1:], generator=g) * _INIT_SD)
    transform_f = transform.compose(transform.standard_transforms)
    mean = torch.tensor(loaded.data_config["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(loaded.data_config["std"], device=device).view(1, 3, 1, 1)
    index = torch.tensor(channels, device=device)
    optimizer = torch.optim.Adam(params, lr=settings.lr)

    def model_input(image: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] != size or image.shape[-2] != size:
            image = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False)
        return (image.to(device) - mean) / std

    with (
        _map_forward(loaded, name, settings.compiled) as map_of,
        torch.inference_mode(False),
        torch.enable_grad(),
        _numpy_seeded(settings.seed),
    ):
        for step in range(settings.steps):
            optimizer.zero_grad(set_to_none=True)
            image = image_f()
            if settings.transforms:
                image = transform_f(image)
            with autocast(device, settings.precision):
                maps = map_of(model_input(image))
            (-unit_values(maps, index).sum()).backward()
            optimizer.step()
            if progress is not None:
                progress(done + step + 1, total)
        # Scored with grad on, as in the loop, so that a compiled forward is not compiled again for no_grad.
        final = image_f()
        with autocast(device, settings.precision):
            values = unit_values(map_of(model_input(final)), index).detach()
    pixels = torch.round(final.detach().clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return pixels, values.cpu().numpy()


def visualise(
    loaded: LoadedModel,
    name: str,
    channels: int | Iterable[int] | None = None,
    settings: FVSettings | None = None,
    *,
    batch_size: int | None = None,
    cache: UnitCache | str | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> Visualisation:
    """Feature visualisations of ``channels`` (default: all) of map ``name`` of ``loaded``, in batched optimisations
    of ``batch_size`` units (default: all in one), on the model's device.

    ``name``: any trace name (``stage4.module0.fused0``, ``stage3.module2.edge1to0``, ``head.incre2``, ``logits``…).
    ``cache``: a :class:`UnitCache` or its folder (default: :func:`~.cache.default_cache_dir`); ``use_cache=False``
    neither reads nor writes it. ``progress(done, total)``: optimisation steps. Leaves the model as found.
    """
    if not isinstance(loaded, LoadedModel):
        network(loaded)  # a TypeError for what is not a model at all
        raise InputError("visualise takes a LoadedModel (load_model(...)): its preprocessing sets the normalisation.")
    settings = settings or FVSettings()
    count = check_map(loaded, name)
    units = check_channels(channels, count, name)
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}.")
    if settings.precision == "bf16" and resolve_device(loaded.device).type != "cuda":
        raise InputError("precision='bf16' is for CUDA; use 'fp32' on the CPU.")
    store = cache if isinstance(cache, UnitCache) else UnitCache(cache)
    mkey, skey = model_key(loaded), settings_key(loaded.data_config, settings)
    found = {c: store.get(mkey, name, skey, c) for c in units} if use_cache else {}
    todo = [c for c in units if found.get(c) is None]
    images = {c: hit[0] for c, hit in found.items() if hit is not None}
    values = {c: hit[1] for c, hit in found.items() if hit is not None}
    seconds = 0.0
    if todo:
        step = batch_size or len(todo)
        pages = [tuple(todo[i : i + step]) for i in range(0, len(todo), step)]
        total = settings.steps * len(pages)
        start = time.perf_counter()
        for k, page in enumerate(pages):
            # Compiled, a short last page is filled up with copies of its last unit (each unit's image is its own):
            # one batch shape, so the last page replays the compile instead of compiling again.
            batch = page + (page[-1],) * (step - len(page)) if settings.compiled else page
            pixels, acts = _optimise(loaded, name, batch, settings, progress, k * settings.steps, total)
            for c, image, value in zip(page, pixels[: len(page)], acts[: len(page)], strict=True):
                images[c], values[c] = image, float(value)
                if use_cache:
                    store.put(mkey, name, skey, c, image, float(value))
        if loaded.device.type == "cuda":
            torch.cuda.synchronize(loaded.device)
        seconds = time.perf_counter() - start
    return Visualisation(
        name=name,
        channels=units,
        images=np.stack([images[c] for c in units]),
        activations=np.array([values[c] for c in units], dtype=np.float32),
        cached=np.array([c not in todo for c in units]),
        settings=settings,
        model_key=mkey,
        seconds=seconds,
    )

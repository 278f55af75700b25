"""Read what people upload, validate it, and preprocess it exactly as the chosen weights expect.

Accepted: JPEG, PNG (8/16-bit, palette, transparency), WebP, BMP, TIFF, GIF (first frame), in any
mode Pillow decodes (grayscale, CMYK, LA, ...), EXIF orientation applied; arrays and tensors in
HxW, HxWx3 or HxWx4 layout. Everything else is rejected with an :class:`ImageError` that says why.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from timm.data import create_transform

from .errors import ArgumentError, ImageError, InputError

__all__ = [
    "ImageError",
    "ImageInput",
    "MAX_PIXELS",
    "MAX_ASPECT",
    "ACCEPTED_FORMATS",
    "read_image",
    "preprocess",
    "to_batch",
    "display_crop",
    "check_input_size",
    "check_finite",
    "check_input_tensor",
    "OUTLIER_PERC",
    "display_scale",
]

MAX_PIXELS = 40_000_000  # decompression-bomb guard: 40 megapixels (a 7,300 × 5,500 photo fits)
MAX_ASPECT = 16.0  # longer side / shorter side; beyond it the resize to the crop size explodes
ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF", "GIF")
STRIDE = 32  # HRNet's fixed x2 nearest upsampling needs sizes that are multiples of 32

ImageInput = str | os.PathLike | bytes | io.IOBase | Image.Image | np.ndarray | torch.Tensor


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Composite transparency onto white: what a viewer shows, and what a classifier should see."""
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grayscale (PNG/TIFF): scale the full 16-bit range to 8 bits.
        arr = np.asarray(img, dtype=np.float64) / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8)).convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ImageError("The image holds NaN or infinite pixel values.")
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8)).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return _flatten_alpha(img)
    return img.convert("RGB")


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"The image is empty ({width}×{height} pixels).")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"The image is {width}×{height} = {width * height:,} pixels; the limit is {MAX_PIXELS:,} "
            "(a guard against decompression bombs). Downscale it first."
        )
    aspect = max(width, height) / min(width, height)
    if aspect > MAX_ASPECT:
        raise ImageError(
            f"The image is {width}×{height}: an aspect ratio of {aspect:.0f}:1 is beyond the "
            f"{MAX_ASPECT:.0f}:1 limit. Crop it to the region of interest first."
        )


def _open_pil(data: Any) -> Image.Image:
    try:
        img = Image.open(data)
    except UnidentifiedImageError as exc:
        raise ImageError("This file is not an image we can read. Use JPEG, PNG, WebP, BMP, TIFF or GIF.") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"The image is too large to decode safely: its header declares over {2 * Image.MAX_IMAGE_PIXELS:,} "
            f"pixels; the limit is {MAX_PIXELS:,} (a guard against decompression bombs)."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow identified the format but its header is cut short or corrupt (e.g. a JPEG truncated in
        # its markers raises OSError, an oversized PNG text chunk ValueError).
        raise ImageError(f"The file is damaged or truncated and cannot be decoded ({exc}).") from exc
    if img.format not in ACCEPTED_FORMATS:
        raise ImageError(f"{img.format} images are not supported. Use JPEG, PNG, WebP, BMP, TIFF or GIF.")
    _check_size(*img.size)  # from the header, before any pixel is decoded
    try:
        img.seek(0)  # first frame of an animation
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"The {img.format} file is damaged or truncated and cannot be decoded ({exc}).") from exc
    return img


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW → HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageError(f"An image array must be HxW, HxWx3 or HxWx4 (or CxHxW); got shape {tuple(arr.shape)}.")
    _check_size(arr.shape[1], arr.shape[0])
    if arr.dtype == np.uint8:
        data = arr
    elif arr.dtype == np.uint16:
        data = np.rint(arr / 257.0).astype(np.uint8)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ImageError("The image array holds NaN or infinite values.")
        if arr.min() < 0.0 or arr.max() > 1.0:
            raise ImageError(
                f"A float image array must lie in [0, 1]; got values in [{arr.min():.3g}, {arr.max():.3g}]."
            )
        data = np.rint(arr * 255.0).astype(np.uint8)
    else:
        raise ImageError(f"Image arrays must be uint8, uint16 or float in [0, 1]; got dtype {arr.dtype}.")
    img = Image.fromarray(np.ascontiguousarray(data))
    return _to_rgb(img)


def read_image(source: ImageInput) -> Image.Image:
    """Any accepted input → an RGB PIL image, EXIF orientation applied, transparency on white."""
    if isinstance(source, Image.Image):
        _check_size(*source.size)
        img = source
    elif isinstance(source, torch.Tensor):
        t = source.detach().cpu()
        if t.dtype == torch.bfloat16:  # NumPy has no bfloat16
            t = t.float()
        try:
            arr = t.numpy()
        except (TypeError, RuntimeError) as exc:  # sparse, quantized, ...
            raise ImageError(f"Cannot read an image from a {t.dtype} {t.layout} tensor ({exc}).") from exc
        return _from_array(arr)
    elif isinstance(source, np.ndarray):
        return _from_array(source)
    elif isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("The file is empty.")
        img = _open_pil(io.BytesIO(source))
    elif isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise ImageError(f"No such image file: {os.fspath(source)!r}.")
        if os.path.getsize(source) == 0:
            raise ImageError(f"The file {os.path.basename(source)!r} is empty.")
        try:
            with open(source, "rb") as fh:
                data = fh.read()
        except OSError as exc:  # unreadable: permissions, a directory, I/O errors
            raise ImageError(f"Cannot read {os.fspath(source)!r}: {exc.strerror or exc}.") from exc
        img = _open_pil(io.BytesIO(data))
    elif hasattr(source, "read"):
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):  # a text stream: never read its content as a path
            raise ImageError(f"Read images from a binary stream (open(..., 'rb')), not a {type(source).__name__}.")
        return read_image(data)
    else:
        raise ImageError(f"Cannot read an image from a {type(source).__name__}.")
    img = ImageOps.exif_transpose(img) or img
    return _to_rgb(img)


def check_input_tensor(x: torch.Tensor, finite: bool = True) -> torch.Tensor:
    """A preprocessed batch must be float Bx3xHxW with H and W multiples of 32, all finite; returned as float32
    (the weights' dtype: float64 or float16 inputs would not run; bf16 is autocast's business).
    ``finite=False``: all but the finiteness check (one read-back from the device), which is then the caller's
    (:func:`check_finite`, or a CUDA graph that checks its input on the device)."""
    if not isinstance(x, torch.Tensor):
        raise ArgumentError(f"Expected a torch.Tensor batch, got {type(x).__name__}.")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(f"Expected a Bx3xHxW tensor, got shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        raise InputError(f"Expected a floating-point tensor, got {x.dtype}.")
    h, w = x.shape[-2:]
    if h % STRIDE or w % STRIDE:
        raise InputError(
            f"HRNet needs input height and width that are multiples of {STRIDE}; got {h}×{w}. "
            f"Resize to e.g. {max(STRIDE, round(h / STRIDE) * STRIDE)}×{max(STRIDE, round(w / STRIDE) * STRIDE)}."
        )
    if finite:
        check_finite(torch.isfinite(x).all())
    return x.float()  # the same tensor when it is float32 already


def check_finite(all_finite: torch.Tensor) -> None:
    """Raise for an input whose ``torch.isfinite(x).all()`` is False (a read-back when it lives on a GPU)."""
    if not all_finite:
        raise InputError("The input tensor holds NaN or infinite values.")


def check_input_size(input_size: int | None) -> None:
    """``None`` (the weights' own size) or a positive multiple of 32, else a ValueError."""
    if input_size is not None and (input_size < STRIDE or input_size % STRIDE):
        raise InputError(f"input_size must be a positive multiple of {STRIDE}; got {input_size}.")


def _config_for(data_config: dict[str, Any], input_size: int | None) -> dict[str, Any]:
    check_input_size(input_size)
    if input_size is None:
        return data_config
    return {**data_config, "input_size": (3, input_size, input_size)}


def preprocess(image: ImageInput, data_config: dict[str, Any], input_size: int | None = None) -> torch.Tensor:
    """Read ``image`` and apply timm's eval transform for ``data_config`` → a 1x3xHxW tensor.

    ``input_size`` (a multiple of 32) overrides the config's square crop size; the crop fraction and
    interpolation stay those of the weights.
    """
    cfg = _config_for(data_config, input_size)
    x = create_transform(**cfg, is_training=False)(read_image(image)).unsqueeze(0)
    return check_input_tensor(x)


def to_batch(inputs: ImageInput, data_config: dict[str, Any], input_size: int | None = None) -> torch.Tensor:
    """A preprocessed Bx3xHxW tensor, checked; anything else read and preprocessed as one image."""
    if isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
        return check_input_tensor(inputs)
    return preprocess(inputs, data_config, input_size)


def display_crop(image: ImageInput, data_config: dict[str, Any], input_size: int | None = None) -> Image.Image:
    """The resized, center-cropped RGB image the network sees (before normalisation), for overlays."""
    transform = create_transform(**_config_for(data_config, input_size), is_training=False)
    img = read_image(image)
    for step in transform.transforms[:-2]:  # all but MaybeToTensor and Normalize
        img = step(img)
    return img


OUTLIER_PERC = 2.0  # Captum's ``outlier_perc`` default for visualisation: the top 2 % of |values| saturate


def display_scale(maps: Any, outlier_perc: float = OUTLIER_PERC) -> float:
    """The colour-scale end for showing attribution map(s): the (100 − ``outlier_perc``)th percentile of |map|
    over all ``maps`` (one array or a sequence), so that a few outlier pixels saturate instead of scaling
    everything else to black (Captum's ``outlier_perc`` convention). Falls back to the max, then to 1."""
    arrays = [maps] if isinstance(maps, (np.ndarray, torch.Tensor)) else list(maps)
    flat = [
        np.abs(a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float64)).ravel()
        for a in arrays
    ]
    values = np.concatenate(flat) if flat else np.zeros(0)
    values = values[np.isfinite(values)]
    if not values.size:
        return 1.0
    top = float(np.percentile(values, 100.0 - outlier_perc)) if outlier_perc > 0 else 0.0
    if top <= 0:
        top = float(values.max())
    return top if top > 0 else 1.0

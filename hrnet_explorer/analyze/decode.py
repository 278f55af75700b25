"""``analyze --decode gpu``: JPEG files decoded on the run's device, batched, then resized and center-cropped there.

DataLoader workers only read each file and check its header (:class:`Encoded`); the main process decodes a batch's
JPEGs with :func:`torchvision.io.decode_jpeg` on the device — nvJPEG on CUDA, batched; libjpeg-turbo on the CPU,
which is how the tests run it — and applies the weights' own eval transform (timm's ``create_transform``: the
shorter side resized to ``size / crop_pct`` with the weights' interpolation, antialiased, then the center crop)
to the decoded tensors, images of one shape in one call (:class:`DeviceDecoder`). Out comes the uint8
[n, 3, S, S] batch on the device that :class:`~hrnet_explorer.rows.RowEngine` takes.

PIL stays the reference and the fallback, image by image: a file that is not a colour JPEG that PIL would read
as it is (another format, greyscale or CMYK, an EXIF rotation, a size beyond :mod:`hrnet_explorer.images`' limits,
no end-of-image marker), or one the device fails to decode, goes through the PIL path of
:class:`~hrnet_explorer.analyze.inputs.Crops` — in the workers, or for a device failure in the main process — so
its crop, or its error message, is exactly today's.

Tolerance against the PIL path (uint8 crops, grey levels), measured on this machine's CPU on 500×375, 375×500,
640×480, 1000×300, 448×448, 300×301, 97×131 and square pictures, crops of 64 and 224, bicubic and bilinear, crop_pct
0.875, 0.95 and 1: on the CPU (libjpeg-turbo decodes for both; torchvision resizes uint8 natively) mean |Δ| ≤ 0.04,
max |Δ| 2. CUDA resizes in float32 (then rounds), which on the CPU gives mean |Δ| ≤ 0.22, max 3 (bicubic; 1 bilinear).
The tests hold both to mean ≤ 0.5, max ≤ 4. nvJPEG's IDCT and chroma upsampling differ from libjpeg's, so the CUDA
path may differ more; it was not measured (no GPU time): ``benchmarks/analyze_gpu.py decode`` measures it.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from PIL import ExifTags, Image
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.transforms.v2 import functional as F

from ..errors import InputError
from ..images import MAX_ASPECT, MAX_PIXELS
from ..sources import Source
from .inputs import Crops, eval_steps

__all__ = ["Encoded", "EncodedBatch", "DeviceDecoder", "collate", "device_decodes", "resolve_decode", "variant_decode"]

_EOI = b"\xff\xd9"
_DEVICE_STEPS = (transforms.Resize, transforms.CenterCrop)


def _decode_jpeg(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():  # torchvision 0.29 deprecates its image I/O (for TorchCodec) on every call
        warnings.filterwarnings("ignore", "The image decoding and encoding capabilities", DeprecationWarning)
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


@functools.cache
def device_decodes(device: str) -> str | None:
    """None when torchvision's decode_jpeg decodes on ``device`` (a 16×16 JPEG round trip), else why not."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        return "CUDA is not available"
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 90)).save(buf, "JPEG", quality=95)
    try:
        (out,) = _decode_jpeg([torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)], device)
    except (RuntimeError, TypeError, ValueError) as exc:  # e.g. torchvision built without nvJPEG
        return f"{type(exc).__name__}: {exc}"
    if tuple(out.shape) != (3, 16, 16) or abs(int(out[0].float().mean()) - 200) > 3:
        return f"a test JPEG decoded on {device} to the wrong pixels"
    return None


def resolve_decode(decode: str, device: str, source: Source) -> str:
    """The run's decode path, "pil" or "gpu", from the one asked for (checked before any work). "auto": gpu on
    CUDA for a folder source when decode_jpeg works there; "gpu" where decode_jpeg does not work: an InputError."""
    if decode == "auto":
        cuda_folder = device.startswith("cuda") and source.kind == "folder"
        return "gpu" if cuda_folder and device_decodes(device) is None else "pil"
    why = device_decodes(device) if decode == "gpu" else None
    if why is not None:
        raise InputError(f"--decode gpu: torchvision cannot decode JPEGs on {device} here ({why}); use --decode pil.")
    return decode


def variant_decode(decode: str, asked: str, data_config: dict, size: int) -> str:
    """The path one variant's images take: the run's ``decode``, unless the weights' preprocessing is more than the
    resize and crop the device applies — then pil when "auto" was ``asked``, an InputError when "gpu" was."""
    # torchvision's Resize and CenterCrop (timm's center and squash crops) take tensors as they take PIL images
    unsupported = [type(s).__name__ for s in eval_steps(data_config, size) if type(s) not in _DEVICE_STEPS]
    if decode == "pil" or not unsupported:
        return decode
    if asked == "auto":
        return "pil"
    raise InputError(
        f"--decode gpu resizes and crops on the device; this preprocessing also needs {', '.join(unsupported)} "
        "(a crop_mode other than center or squash): use --decode pil."
    )


def _device_jpeg(path: str) -> torch.Tensor | None:
    """The file's bytes when the device can decode them to what PIL reads; None: leave it to PIL."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        header = Image.open(io.BytesIO(data))  # lazy: parses the markers up to the first scan, decodes nothing
        width, height = header.size
        orientation = header.getexif().get(ExifTags.Base.Orientation, 1)
        fmt, mode = header.format, header.mode
    except Exception:  # unreadable, not an image, a decompression bomb: PIL's path says which, as it does today
        return None
    if fmt != "JPEG" or mode != "RGB" or orientation in range(2, 9):  # greyscale, CMYK; exif_transpose would turn it
        return None
    if width * height > MAX_PIXELS or max(width, height) > MAX_ASPECT * min(width, height) or min(width, height) < 1:
        return None  # read_image refuses it, with its message
    if not data.rstrip(b"\0").endswith(_EOI):  # truncated: PIL raises; a device decoder might fill in grey
        return None
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _on_tensor(step, x: torch.Tensor) -> torch.Tensor:
    """One of timm's eval steps on a uint8 [B, 3, H, W] batch, with its own numbers. torchvision's v2 functional,
    not the step itself: the v1 step resizes a uint8 tensor in float32 (15× slower on the CPU), v2 in uint8 there."""
    if isinstance(step, transforms.Resize):
        return F.resize(x, step.size, step.interpolation, step.max_size, antialias=step.antialias)
    return F.center_crop(x, step.size)


@dataclass
class EncodedBatch:
    """A batch from :class:`Encoded`: the images' indices, labels and error messages ("" when read), the JPEGs
    for the device (their positions in ``jpeg_at``) and the crops PIL made of the others (positions in ``crop_at``)."""

    idx: torch.Tensor
    labels: torch.Tensor
    errors: list[str]
    jpegs: list[torch.Tensor] = field(default_factory=list)
    jpeg_at: list[int] = field(default_factory=list)
    crops: torch.Tensor | None = None
    crop_at: list[int] = field(default_factory=list)

    def pin_memory(self) -> EncodedBatch:
        """DataLoader's pin_memory calls this: only the crops are copied to the device by us (nvJPEG reads the
        bytes itself)."""
        if self.crops is not None:
            self.crops = self.crops.pin_memory()
        return self


class Encoded(Dataset):
    """Item k: image ``indices[k]`` of ``source`` as (index, label, JPEG bytes or None, PIL crop or None, error):
    the bytes when the device can decode them to what PIL reads (:func:`_device_jpeg`), else the PIL path's item."""

    def __init__(self, source: Source, indices: Sequence[int], data_config: dict, size: int):
        self.crops = Crops(source, indices, data_config, size)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, k: int):
        i = int(self.crops.indices[k])
        located = self.crops.source.file(i)
        if located is not None:
            data = _device_jpeg(located[0])
            if data is not None:
                return i, -1 if located[1] is None else located[1], data, None, ""
        x, i, label, error = self.crops[k]
        return i, label, None, x, error


def collate(items: list) -> EncodedBatch:
    """DataLoader's collate_fn for :class:`Encoded`: the bytes stay a list (every file has its own length)."""
    batch = EncodedBatch(
        idx=torch.tensor([it[0] for it in items], dtype=torch.int64),
        labels=torch.tensor([it[1] for it in items], dtype=torch.int64),
        errors=[it[4] for it in items],
    )
    crops = []
    for pos, (_, _, data, crop, _) in enumerate(items):
        if data is not None:
            batch.jpegs.append(data)
            batch.jpeg_at.append(pos)
        else:
            crops.append(crop)
            batch.crop_at.append(pos)
    if crops:
        batch.crops = torch.stack(crops)
    return batch


class DeviceDecoder:
    """An :class:`EncodedBatch` → (uint8 [n, 3, S, S] on ``device``, indices, labels, errors): what the PIL path's
    DataLoader gives, with the crops already on the device. ``counts``: images decoded on the device and by PIL."""

    def __init__(self, source: Source, data_config: dict, size: int, device: str | torch.device):
        self.device, self.size = torch.device(device), size
        self.crops = Crops(source, [], data_config, size)  # the PIL path, for images the device fails on
        self.steps = eval_steps(data_config, size)  # the very steps Crops applies to PIL images
        self.counts = {"device": 0, "pil": 0}
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def __call__(self, batch: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
        n = len(batch.errors)
        out = torch.empty(n, 3, self.size, self.size, dtype=torch.uint8, device=self.device)
        if batch.crops is not None:
            out[batch.crop_at] = batch.crops.to(self.device, non_blocking=True)
        decoded = self._decode(batch.jpegs)
        groups: dict[tuple[int, ...], list[int]] = {}
        for j, image in enumerate(decoded):
            if image is not None:
                groups.setdefault(tuple(image.shape), []).append(j)
            else:  # the device could not decode it: PIL's path, its crop or its error
                pos = batch.jpeg_at[j]
                x, _, batch.labels[pos], batch.errors[pos] = self.crops.item(int(batch.idx[pos]))
                out[pos] = x.to(self.device)
        for members in groups.values():  # one resize and crop for all images of one shape
            x = torch.stack([decoded[j] for j in members])
            for step in self.steps:
                x = _on_tensor(step, x)
            if tuple(x.shape[1:]) != (3, self.size, self.size):
                raise RuntimeError(f"the device preprocessing gave shape {tuple(x.shape)}, not [*, 3, S, S]")
            out[[batch.jpeg_at[j] for j in members]] = x
        on_device = sum(len(m) for m in groups.values())
        self.counts["device"] += on_device
        self.counts["pil"] += n - on_device
        return out, batch.idx, batch.labels, batch.errors

    def _decode(self, jpegs: list[torch.Tensor]) -> list[torch.Tensor | None]:
        """Decoded images, None where the device failed. decode_jpeg on a list returns nothing when one image
        fails, so a failed batch is decoded again image by image."""
        if not jpegs:
            return []
        try:
            return self._on_device(jpegs)
        except RuntimeError:
            pass
        out: list[torch.Tensor | None] = []
        for data in jpegs:
            try:
                out.append(self._on_device([data])[0])
            except RuntimeError:
                out.append(None)
        return out

    def _on_device(self, jpegs: list[torch.Tensor]) -> list[torch.Tensor]:
        """decode_jpeg, on CUDA from a stream of our own. torchvision allocates the outputs on the current stream but
        has nvJPEG write them from a private one that does not wait for it (pytorch/vision#9606): on the run's stream
        it could be handed memory the previous batch's kernels still read. On this stream nothing else allocates; the
        outputs are marked as used by the run's stream, so their memory is not reused before its kernels are done."""
        if self.stream is None:
            return list(_decode_jpeg(jpegs, self.device))
        main = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.stream):
            images = list(_decode_jpeg(jpegs, self.device))
        main.wait_stream(self.stream)
        for image in images:
            image.record_stream(main)
        return images

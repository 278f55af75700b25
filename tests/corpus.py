"""Bad and odd inputs, made here (nothing is downloaded), and a tally of how each surface met them.

A :class:`Case` is data: a name, a factory for the input (file bytes, or any object for the Python API),
the outcome we expect ("ok" or "reject") and a substring of the rejection message. ``FILE_CASES`` go
through the core API, the CLI and the app; ``API_CASES`` (arrays, tensors, odd Python objects) through
the core API only. ``SUMMARY`` collects one line per surface; tests/conftest.py prints it at the end of
the run.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import signal
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from PIL import Image
from repo import ROOT
from servers import free_port

from hrnet_explorer.images import MAX_ASPECT, MAX_PIXELS

SUMMARY: dict[str, str] = {}  # surface → "corpus/<surface>: tried=… handled=… rejected=… crashes=…"

NOT_AN_IMAGE = "not an image we can read"
DAMAGED = "damaged or truncated"
TOO_MANY_PIXELS = f"limit is {MAX_PIXELS:,}"
UPLOAD_LIMIT = "maximum file size"  # Gradio's words when an upload is over launch(max_file_size=...)
APP_MAX_FILE_SIZE = "2mb"  # the limit the tests launch the app with (the default is 20 MB)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], Any]  # bytes for a file case; any object for an API case
    outcome: str  # "ok" or "reject"
    message: str = ""  # a substring of the rejection message
    suffix: str = ".png"  # the name the bytes travel under (CLI, app)
    check: Callable[[Image.Image], bool] | None = None  # on the RGB image read_image returns
    app: tuple[str, str] | None = None  # a different (outcome, message) through the app


# ------------------------------------------------------------------------------------------ makers


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def picture(size=(96, 64), mode="RGB") -> Image.Image:
    """A small image with structure (not a flat colour), converted to ``mode``."""
    return Image.effect_mandelbrot(size, (-2, -1.2, 1, 1.2), 48).convert("RGB").convert(mode)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_by_hand(width: int, height: int, depth: int, color_type: int, rows: bytes | None = None, extra=b"") -> bytes:
    """A PNG written chunk by chunk: headers that lie about the size, 16-bit RGB, odd chunks."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    idat = zlib.compress(rows if rows is not None else b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def rgb16_png() -> bytes:
    rows = b"".join(b"\x00" + struct.pack(">HHH", 65535, 0, 32896) * 8 for _ in range(8))
    return png_by_hand(8, 8, 16, 2, rows)


def jpeg_with_size(width: int, height: int) -> bytes:
    """A real 8×8 JPEG whose SOF0 marker claims ``width``×``height``."""
    data = bytearray(encode(picture((8, 8)), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_with_size(width: int, height: int) -> bytes:
    screen = struct.pack("<HH", width, height) + b"\x00\x00\x00"
    frame = b"," + struct.pack("<HHHH", 0, 0, width, height) + b"\x00\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + frame + b";"


def truncated(fmt: str) -> bytes:
    """The first half of a small ``fmt`` file: headers intact, pixels cut off."""
    data = encode(picture(), fmt)
    return data[: len(data) // 2]


def animation(fmt: str) -> bytes:
    frames = [Image.new("RGB", (24, 16), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=40, loop=0)
    return buf.getvalue()


def palette_with_transparency() -> bytes:
    img = Image.new("P", (16, 16), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (0, 0, 8, 16))
    return encode(img, "PNG", transparency=0)  # palette entry 0 (red) is transparent


def exif_rotated(orientation: int = 6, exif: bytes | None = None) -> bytes:
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    tags = Image.Exif()
    tags[0x0112] = orientation
    return encode(img, "JPEG", exif=exif if exif is not None else tags, quality=95)


def noise_png(megabytes: float) -> bytes:
    """Incompressible pixels: a valid PNG of about ``megabytes`` MB."""
    side = int((megabytes * 1e6 / 3) ** 0.5)
    return encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)), "PNG")


def _red_on_top(img: Image.Image) -> bool:
    a = np.asarray(img)
    return img.size == (20, 40) and a[5, 10, 0] > 200 and a[35, 10, 2] > 200


def _pixel(xy, rgb, tol=8) -> Callable[[Image.Image], bool]:
    return lambda img: bool(np.abs(np.asarray(img, dtype=int)[xy[1], xy[0]] - rgb).max() <= tol)


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>'
HTML = b"<html><body><script>alert(1)</script></body></html>"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto 10 10 lineto stroke\n"


def ztxt_bomb() -> bytes:
    """A PNG whose compressed text chunk inflates to 16 MB (16 kB on disk): Pillow refuses over 1 MB."""
    return png_by_hand(8, 8, 8, 0, extra=_chunk(b"zTXt", b"comment\x00\x00" + zlib.compress(b"a" * (16 * 2**20))))


FILE_CASES: list[Case] = [
    # --- not images at all
    Case("empty file", lambda: b"", "reject", "empty"),
    Case("text renamed .jpg", lambda: b"Dear diary, today I pretended to be a JPEG.\n", "reject", NOT_AN_IMAGE, ".jpg"),
    Case("SVG", lambda: SVG, "reject", NOT_AN_IMAGE, ".svg"),
    Case("HTML with a script", lambda: HTML, "reject", NOT_AN_IMAGE),
    Case("PDF", lambda: PDF, "reject", NOT_AN_IMAGE, ".pdf"),
    Case("ZIP header", lambda: b"PK\x03\x04" + bytes(26), "reject", NOT_AN_IMAGE, ".jpg"),
    Case("unknown format (random bytes)", lambda: np.random.default_rng(1).bytes(4096), "reject", NOT_AN_IMAGE, ".xyz"),
    Case("ICO (Pillow reads it; we do not)", lambda: encode(picture((32, 32)), "ICO"), "reject", "ICO images", ".ico"),
    Case("EPS (never hand it to Ghostscript)", lambda: EPS, "reject", "EPS images", ".eps"),
    # --- damaged
    Case("JPEG cut in its markers", lambda: encode(picture(), "JPEG")[:300], "reject", DAMAGED, ".jpg"),
    *(
        Case(f"truncated {fmt}", functools.partial(truncated, fmt), "reject", DAMAGED, suffix)
        for fmt, suffix in (
            ("JPEG", ".jpg"),
            ("PNG", ".png"),
            ("GIF", ".gif"),
            ("WEBP", ".webp"),
            ("BMP", ".bmp"),
            ("TIFF", ".tif"),
        )
    ),
    Case("JPEG start marker only", lambda: b"\xff\xd8\xff", "reject", NOT_AN_IMAGE, ".jpg"),
    Case("PNG with a 16 MB zTXt chunk", ztxt_bomb, "reject", DAMAGED),
    # --- sizes
    Case(
        "1×1", lambda: encode(Image.new("RGB", (1, 1), (10, 200, 30)), "PNG"), "ok", check=_pixel((0, 0), (10, 200, 30))
    ),
    Case("1×20000", lambda: encode(Image.new("L", (1, 20000), 128), "PNG"), "reject", "aspect ratio"),
    Case("1×16 (the aspect limit)", lambda: encode(Image.new("L", (1, int(MAX_ASPECT)), 9), "PNG"), "ok"),
    Case("decompression bomb: PNG 40000×40000", lambda: png_by_hand(40_000, 40_000, 8, 2), "reject", TOO_MANY_PIXELS),
    Case(
        "decompression bomb: JPEG 60000×60000",
        lambda: jpeg_with_size(60_000, 60_000),
        "reject",
        TOO_MANY_PIXELS,
        ".jpg",
    ),
    Case(
        "decompression bomb: GIF 65535×65535", lambda: gif_with_size(65_535, 65_535), "reject", TOO_MANY_PIXELS, ".gif"
    ),
    Case(
        "PNG 8000×6000 (over our limit, under Pillow's)",
        lambda: png_by_hand(8000, 6000, 8, 0),
        "reject",
        TOO_MANY_PIXELS,
    ),
    # --- odd but fine
    Case("animated GIF", lambda: animation("GIF"), "ok", suffix=".gif", check=_pixel((5, 5), (255, 0, 0))),
    Case("animated PNG", lambda: animation("PNG"), "ok", check=_pixel((5, 5), (255, 0, 0))),
    Case("animated WebP", lambda: animation("WEBP"), "ok", suffix=".webp", check=_pixel((5, 5), (255, 0, 0), tol=24)),
    Case(
        "16-bit grayscale PNG",
        lambda: encode(Image.fromarray(np.full((8, 8), 65535, np.uint16)), "PNG"),
        "ok",
        check=_pixel((0, 0), (255, 255, 255)),
    ),
    Case("16-bit RGB PNG", rgb16_png, "ok", check=_pixel((0, 0), (255, 0, 128), tol=1)),
    Case(
        "CMYK JPEG",
        lambda: encode(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "JPEG", quality=100),
        "ok",
        suffix=".jpg",
        check=_pixel((8, 8), (0, 255, 255), tol=20),
    ),
    Case(
        "palette with transparency",
        palette_with_transparency,
        "ok",
        check=lambda img: _pixel((2, 2), (0, 0, 255))(img) and _pixel((12, 2), (255, 255, 255))(img),
    ),
    Case(
        "LA (transparent black)",
        lambda: encode(Image.new("LA", (9, 9), (0, 0)), "PNG"),
        "ok",
        check=_pixel((4, 4), (255, 255, 255)),
    ),
    Case("RGBA", lambda: encode(picture(mode="RGBA"), "PNG"), "ok"),
    Case("1-bit", lambda: encode(picture(mode="1"), "PNG"), "ok"),
    Case("EXIF-rotated JPEG", exif_rotated, "ok", suffix=".jpg", check=_red_on_top),
    Case("EXIF orientation 9 (invalid)", lambda: exif_rotated(9), "ok", suffix=".jpg"),
    Case("corrupt EXIF block", lambda: exif_rotated(exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f"), "ok", suffix=".jpg"),
    Case(
        "float TIFF",
        lambda: encode(Image.new("F", (8, 8), 200.0), "TIFF"),
        "ok",
        suffix=".tif",
        check=_pixel((0, 0), (200, 200, 200), tol=0),
    ),
    Case("float TIFF with NaN", lambda: encode(Image.new("F", (8, 8), float("nan")), "TIFF"), "reject", "NaN", ".tif"),
    Case("LAB TIFF", lambda: encode(picture(mode="LAB"), "TIFF"), "ok", suffix=".tif"),
    Case("JPEG named .png", lambda: encode(picture(), "JPEG"), "ok"),
    Case(
        "file over the upload limit",
        lambda: noise_png(2.6),
        "ok",  # a valid 0.9-megapixel image for the API and the CLI...
        app=("reject", UPLOAD_LIMIT),  # ...over the app's max_file_size
    ),
]


def _sparse() -> torch.Tensor:
    return torch.rand(3, 32, 32).to_sparse()


API_CASES: list[Case] = [
    Case("NaN array", lambda: np.full((32, 32, 3), np.nan, np.float32), "reject", "NaN or infinite"),
    Case("inf array", lambda: np.full((32, 32, 3), np.inf), "reject", "NaN or infinite"),
    Case("float array outside [0, 1]", lambda: np.full((32, 32, 3), 255.0), "reject", "[0, 1]"),
    Case("int64 array", lambda: np.zeros((32, 32, 3), np.int64), "reject", "dtype int64"),
    Case("bool array", lambda: np.ones((32, 32), bool), "reject", "dtype bool"),
    Case("complex array", lambda: np.zeros((32, 32, 3), np.complex64), "reject", "dtype complex64"),
    Case("object array", lambda: np.full((4, 4), None), "reject", "dtype object"),
    Case(
        "2-D uint8 array (grayscale)",
        lambda: np.full((32, 48), 77, np.uint8),
        "ok",
        check=_pixel((0, 0), (77, 77, 77), tol=0),
    ),
    Case(
        "4-channel array (transparent)",
        lambda: np.zeros((32, 32, 4), np.uint8),
        "ok",
        check=_pixel((0, 0), (255, 255, 255), tol=0),
    ),
    Case("5-channel array", lambda: np.zeros((32, 32, 5), np.uint8), "reject", "shape (32, 32, 5)"),
    Case("1-D array", lambda: np.zeros(1024, np.uint8), "reject", "shape (1024,)"),
    Case("4-D array", lambda: np.zeros((1, 32, 32, 3), np.uint8), "reject", "shape (1, 32, 32, 3)"),
    Case("0×0 array", lambda: np.zeros((0, 0), np.uint8), "reject", "empty"),
    Case("1×20000 array", lambda: np.zeros((1, 20000), np.uint8), "reject", "aspect ratio"),
    Case("uint16 array", lambda: np.full((16, 16, 3), 65535, np.uint16), "ok", check=_pixel((0, 0), (255, 255, 255))),
    Case("float16 array", lambda: np.full((16, 16, 3), 0.5, np.float16), "ok"),
    Case("CHW float tensor", lambda: torch.rand(3, 24, 40), "ok", check=lambda img: img.size == (40, 24)),
    Case("bfloat16 CHW tensor", lambda: torch.rand(3, 32, 32).bfloat16(), "ok"),
    Case("tensor that requires grad", lambda: torch.rand(3, 32, 32, requires_grad=True), "ok"),
    Case("sparse tensor", _sparse, "reject", "Cannot read an image from a torch.float32 torch.sparse_coo tensor"),
    Case("batch 1×3×64×64 float64", lambda: torch.rand(1, 3, 64, 64, dtype=torch.float64), "ok"),
    Case("batch 1×3×240×240 (not ×32)", lambda: torch.rand(1, 3, 240, 240), "reject", "multiples of 32"),
    Case("batch 1×4×64×64", lambda: torch.rand(1, 4, 64, 64), "reject", "Bx3xHxW"),
    Case("batch of uint8", lambda: torch.zeros(1, 3, 64, 64, dtype=torch.uint8), "reject", "floating-point"),
    Case("batch with NaN", lambda: torch.full((1, 3, 64, 64), float("nan")), "reject", "NaN"),
    Case("batch of two", lambda: torch.rand(2, 3, 64, 64), "reject", "one image"),
    Case("PIL image 20000×1", lambda: Image.new("RGB", (20000, 1)), "reject", "aspect ratio"),
    Case("PIL image 0×0", lambda: Image.new("RGB", (0, 0)), "reject", "empty"),
    Case("None", lambda: None, "reject", "from a NoneType"),
    Case("an int", lambda: 42, "reject", "from a int"),
    Case("missing path", lambda: "/nonexistent/cat.jpg", "reject", "No such image file"),
    Case("a directory", lambda: os.path.dirname(__file__), "reject", "No such image file"),
    Case("text stream", lambda: io.StringIO("/etc/passwd"), "reject", "binary stream"),
    Case("binary stream", lambda: io.BytesIO(encode(picture(), "PNG")), "ok"),
    Case("bytearray", lambda: bytearray(encode(picture(), "WEBP")), "ok"),
]


# ------------------------------------------------------------------------------------------- tally


@dataclass
class Tally:
    """How one surface met the corpus. A crash is an exception that is not a clean rejection."""

    surface: str
    handled: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)  # handled when a rejection was expected, or the reverse

    def record(self, case: Case, outcome: str, detail: str = "", expected: tuple[str, str] | None = None) -> None:
        want, message = expected or (case.outcome, case.message)
        if outcome == "crash":
            self.crashes.append(f"{case.name}: {detail}")
            return
        (self.handled if outcome == "ok" else self.rejected).append(case.name)
        if outcome != want:
            self.wrong.append(f"{case.name}: expected {want}, got {outcome} ({detail})")
        elif outcome == "reject" and message not in detail:
            self.wrong.append(f"{case.name}: expected a message with {message!r}, got {detail!r}")

    @property
    def tried(self) -> int:
        return len(self.handled) + len(self.rejected) + len(self.crashes)

    def line(self) -> str:
        return (
            f"corpus/{self.surface}: tried={self.tried} handled={len(self.handled)} "
            f"rejected={len(self.rejected)} crashes={len(self.crashes)}"
        )

    def report(self) -> str:
        """Put the counts line into SUMMARY; return everything that went wrong (empty when all is well)."""
        SUMMARY[self.surface] = self.line()
        return "\n".join(self.crashes + self.wrong)


def write_files(folder, cases: list[Case] = FILE_CASES) -> dict[str, str]:
    """Each file case written to ``folder`` as case-<k><suffix>; case name → path."""
    paths = {}
    for k, case in enumerate(cases):
        path = os.path.join(folder, f"case-{k:02d}{case.suffix}")
        with open(path, "wb") as fh:
            fh.write(case.make())
        paths[case.name] = path
    return paths


# ------------------------------------------------------------------------------ the app, as users get it


class AppServer:
    """``python app.py`` in a subprocess, exactly as a user starts it (no --host), on a free port.

    Its uploads go to a private GRADIO_TEMP_DIR (``temp_dir``); ``stop()`` ends it with Ctrl-C, which
    runs Gradio's shutdown (and its ``delete_cache`` clean-up).
    """

    def __init__(self, folder: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.temp_dir = folder / "gradio-temp"
        self.log_path = folder / "app.log"
        environ = {k: v for k, v in os.environ.items() if k not in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")}
        environ.update(HRNET_EXPLORER_MAX_FILE_SIZE=APP_MAX_FILE_SIZE, GRADIO_TEMP_DIR=str(self.temp_dir), **env)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "--port", str(self.port)],
                cwd=ROOT,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.process = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "config", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"app.py did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def rss(self) -> int:
        return self.process.memory_info().rss

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode


@contextlib.contextmanager
def app_server(folder: Path, **env: str) -> Iterator[AppServer]:
    server = AppServer(folder, **env)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()

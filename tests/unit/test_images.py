"""Every image kind people upload is read correctly, or rejected with a message."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from hrnet_explorer import ImageError, display_crop, preprocess, read_image
from hrnet_explorer.images import MAX_PIXELS, check_finite, check_input_tensor

CONFIG = {
    "input_size": (3, 224, 224),
    "interpolation": "bilinear",
    "crop_pct": 0.875,
    "crop_mode": "center",
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def rgb(color, size=(40, 30)) -> Image.Image:
    return Image.new("RGB", size, color)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_common_formats(fmt):
    out = read_image(encode(rgb((200, 30, 60)), fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {})))
    assert out.mode == "RGB" and out.size == (40, 30)
    assert np.abs(np.asarray(out, dtype=int)[15, 20] - (200, 30, 60)).max() <= 6


def test_sixteen_bit_grayscale_png_scales_full_range():
    arr = np.array([[0, 32896, 65535]], dtype=np.uint16).repeat(3, 0)
    out = np.asarray(read_image(encode(Image.fromarray(arr), "PNG")))
    assert out[0, :, 0].tolist() == [0, 128, 255]


def test_palette_with_transparency_is_composited_on_white():
    img = Image.new("P", (8, 8), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.putpixel((0, 0), 1)
    data = encode(img, "PNG", transparency=0)  # palette entry 0 (red) is transparent
    out = np.asarray(read_image(data))
    assert out[4, 4].tolist() == [255, 255, 255]
    assert out[0, 0].tolist() == [0, 0, 255]


def test_grayscale_and_la():
    assert np.asarray(read_image(encode(Image.new("L", (9, 9), 77), "PNG")))[0, 0].tolist() == [77, 77, 77]
    la = Image.new("LA", (9, 9), (0, 0))  # fully transparent black
    assert np.asarray(read_image(encode(la, "PNG")))[0, 0].tolist() == [255, 255, 255]


def test_cmyk_jpeg():
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    out = np.asarray(read_image(encode(cyan, "JPEG", quality=100)), dtype=int)[8, 8]
    assert out[0] < 20 and out[1] > 235 and out[2] > 235


def test_gif_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out = np.asarray(read_image(buf.getvalue()))
    assert out[5, 5, 0] > 200 and out[5, 5, 2] < 50


def test_exif_rotation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    out = read_image(encode(img, "JPEG", exif=exif, quality=95))
    assert out.size == (20, 40)
    top, bottom = np.asarray(out)[5, 10], np.asarray(out)[35, 10]
    assert top[0] > 200 and bottom[2] > 200  # the red half is now on top


def test_arrays_and_tensors():
    gray = np.full((32, 48), 0.5, dtype=np.float32)
    assert read_image(gray).size == (48, 32)
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)  # transparent → white
    assert np.asarray(read_image(rgba))[0, 0].tolist() == [255, 255, 255]
    chw = torch.rand(3, 24, 40)
    assert read_image(chw).size == (40, 24)
    with pytest.raises(ImageError, match="NaN or infinite"):
        read_image(np.full((8, 8, 3), np.nan, dtype=np.float32))
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        read_image(np.full((8, 8, 3), 3.0))
    with pytest.raises(ImageError, match="dtype"):
        read_image(np.zeros((8, 8, 3), dtype=np.int64))
    with pytest.raises(ImageError, match="shape"):
        read_image(np.zeros((8, 8, 5), dtype=np.uint8))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height but holds almost no pixel data (a bomb's shape)."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, I am text pretending to be a jpeg", "not an image we can read"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "not an image we can read"),
        (encode(rgb((1, 2, 3), (64, 64)), "JPEG")[:300], "damaged or truncated"),
        (encode(rgb((1, 2, 3), (64, 64)), "PNG")[:60], "damaged or truncated"),
        (_png_header_only(40_000, 40_000), f"limit is {MAX_PIXELS:,}"),
        (encode(rgb((1, 2, 3), (20_000, 1)), "PNG"), "aspect ratio"),
        (encode(rgb((1, 2, 3), (16, 16)), "ICO"), "ICO images are not supported"),
    ],
    ids=["empty", "text", "svg", "truncated-jpeg", "truncated-png", "bomb", "1x20000", "ico"],
)
def test_bad_files_are_rejected_with_a_message(data, message):
    with pytest.raises(ImageError, match=message):
        read_image(data)


def test_paths(tmp_path):
    with pytest.raises(ImageError, match="No such image file"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "ok.png").write_bytes(encode(rgb((9, 9, 9)), "PNG"))
    assert read_image(tmp_path / "ok.png").size == (40, 30)


def test_tiny_image_still_preprocesses():
    x = preprocess(rgb((10, 20, 30), (1, 1)), CONFIG)
    assert x.shape == (1, 3, 224, 224)


def test_input_size_must_be_a_multiple_of_32():
    assert preprocess(rgb((0, 0, 0), (300, 300)), CONFIG, input_size=256).shape == (1, 3, 256, 256)
    with pytest.raises(ValueError, match="multiple of 32"):
        preprocess(rgb((0, 0, 0)), CONFIG, input_size=240)
    with pytest.raises(ValueError, match="multiples of 32.*240"):
        check_input_tensor(torch.zeros(1, 3, 240, 240))
    with pytest.raises(ValueError, match="Bx3xHxW"):
        check_input_tensor(torch.zeros(1, 4, 64, 64))
    with pytest.raises(ValueError, match="NaN"):
        check_input_tensor(torch.full((1, 3, 64, 64), float("inf")))
    infinite = check_input_tensor(torch.full((1, 3, 64, 64), float("inf")), finite=False)  # the caller's check
    with pytest.raises(ValueError, match="NaN"):
        check_finite(torch.isfinite(infinite).all())


def test_display_crop_matches_network_input_geometry():
    img = display_crop(rgb((5, 5, 5), (500, 300)), CONFIG)
    assert img.size == (224, 224)

"""Regenerate the procedurally drawn example images of this folder: ``python hrnet_explorer/assets/make_assets.py``.

Deterministic: the same Pillow gives the same pixels. grace_hopper.jpg is copied from matplotlib's
bundled sample data when matplotlib is installed (see README.md for sources and licences).
"""

from __future__ import annotations

import math
import random
import shutil
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent


def _gradient(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for y in range(h):
        t = y / max(1, h - 1)
        draw.line([(0, y), (w, y)], fill=tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    return img


def balloons(path: Path) -> None:
    rng = random.Random(3)
    img = _gradient((384, 320), (90, 160, 230), (200, 230, 250))
    draw = ImageDraw.Draw(img)
    for cx, cy, color in [
        (90, 110, (220, 40, 50)),
        (170, 80, (250, 200, 40)),
        (250, 120, (60, 170, 90)),
        (310, 70, (150, 70, 200)),
        (200, 170, (240, 120, 30)),
    ]:
        rx, ry = rng.randint(30, 38), rng.randint(38, 46)
        draw.line([(cx, cy + ry), (cx + rng.randint(-25, 25), 320)], fill=(80, 80, 80), width=2)
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=color, outline=tuple(c // 2 for c in color), width=2)
        draw.polygon([(cx - 5, cy + ry + 6), (cx + 5, cy + ry + 6), (cx, cy + ry - 2)], fill=color)
        draw.ellipse([cx - rx // 2, cy - ry // 2, cx - rx // 2 + 10, cy - ry // 2 + 14], fill=(255, 255, 255))
    img.filter(ImageFilter.SMOOTH).save(path, quality=90)


def chessboard(path: Path) -> None:
    img = Image.new("RGB", (320, 320), (120, 80, 50))
    draw = ImageDraw.Draw(img)
    square = 36
    x0 = y0 = 16
    for r in range(8):
        for c in range(8):
            color = (235, 215, 180) if (r + c) % 2 == 0 else (110, 70, 40)
            draw.rectangle([x0 + c * square, y0 + r * square, x0 + (c + 1) * square, y0 + (r + 1) * square], fill=color)
    for r, c, dark in [(0, 4, True), (1, 3, True), (6, 4, False), (7, 3, False), (3, 5, False), (4, 2, True)]:
        cx, cy = x0 + c * square + square // 2, y0 + r * square + square // 2
        fill, edge = ((30, 30, 30), (200, 200, 200)) if dark else ((245, 245, 240), (40, 40, 40))
        draw.ellipse([cx - 12, cy - 4, cx + 12, cy + 14], fill=fill, outline=edge, width=2)
        draw.ellipse([cx - 7, cy - 14, cx + 7, cy], fill=fill, outline=edge, width=2)
    img.save(path, quality=90)


def sailboat(path: Path) -> None:
    w, h = 400, 300
    img = _gradient((w, h), (250, 150, 70), (255, 220, 170))
    draw = ImageDraw.Draw(img)
    draw.ellipse([250, 120, 330, 200], fill=(255, 240, 200))
    sea = _gradient((w, 120), (40, 90, 140), (10, 40, 80))
    img.paste(sea, (0, 180))
    for k in range(14):
        y = 190 + 8 * k
        draw.line([(0, y + 3 * math.sin(k)), (w, y)], fill=(70, 120, 170), width=1)
    draw.polygon([(120, 215), (260, 215), (240, 238), (140, 238)], fill=(90, 40, 20))
    draw.line([(190, 215), (190, 70)], fill=(60, 40, 30), width=4)
    draw.polygon([(194, 75), (194, 205), (255, 205)], fill=(250, 250, 245))
    draw.polygon([(186, 90), (186, 205), (135, 205)], fill=(235, 235, 230))
    img.save(path, quality=90)


LAB_EXAMPLES = (2, 4, 7, 8)  # test-split indices: stripes-diagonal, checker, triangle, ring


def lab_examples() -> None:
    """A few lab test images (PNG: lossless, so they are exactly ``hrnet_explorer.lab.sample(i)``)."""
    from hrnet_explorer.lab import sample

    for index in LAB_EXAMPLES:
        s = sample(index)
        s.image.save(HERE / f"lab_{index:04d}_{s.class_name}.png", optimize=True)


def main() -> None:
    lab_examples()
    balloons(HERE / "balloons.jpg")
    chessboard(HERE / "chessboard.jpg")
    sailboat(HERE / "sailboat.jpg")
    try:
        from matplotlib import cbook

        shutil.copyfile(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), HERE / "grace_hopper.jpg")
    except ImportError:
        print("matplotlib is not installed: grace_hopper.jpg not refreshed")


if __name__ == "__main__":
    main()

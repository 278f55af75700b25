"""`analyze --decode gpu` on the CPU: torchvision's decode_jpeg and the resize/crop on the run's device against the
PIL path (the reference), the per-image fallback to PIL, and a whole run against a PIL run. hrnet_w18_small at 64 px.

The decoder runs here on the CPU (libjpeg-turbo), as it does on a machine without CUDA; the same code decodes with
nvJPEG when the device is CUDA (benchmarks/analyze_gpu.py decode measures that path against PIL)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hrnet_explorer import analyze as an
from hrnet_explorer.analyze.decode import (
    DeviceDecoder,
    Encoded,
    collate,
    device_decodes,
    resolve_decode,
    variant_decode,
)
from hrnet_explorer.analyze.inputs import Crops
from hrnet_explorer.cli import main
from hrnet_explorer.errors import InputError
from hrnet_explorer.sources import open_source
from hrnet_explorer.zoo import RandomWeightsWarning

SIZE = 64
# The tolerance of decode.py's docstring: uint8 crops against PIL's, grey levels (measured: mean ≤ 0.04, max 2 on the
# CPU; mean ≤ 0.22, max 3 in CUDA's float32 resize arithmetic).
MEAN_TOL, MAX_TOL = 0.5, 4
SIZES = [(500, 375), (375, 500), (640, 480), (1000, 300), (97, 131), (64, 64), (301, 300)]
BICUBIC = {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 0.875, "crop_mode": "center"}
BILINEAR = {"input_size": (3, 224, 224), "interpolation": "bilinear", "crop_pct": 0.95, "crop_mode": "center"}
NORM = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
# What stays with PIL: not a colour JPEG as it is, or no end marker; "bad_huffman" passes the header check and
# fails on the device, so it falls back there (and PIL fails on it too: an error row, as today).
TO_PIL = {"grey.jpg", "cmyk.jpg", "picture.png", "rotated.jpg", "truncated.jpg", "empty.jpg"}


def _photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A smooth colour field plus noise: detail at every scale, like a photo (the resize filters differ there)."""
    base = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
    noisy = np.asarray(base).astype(np.int16) + rng.normal(0, 18, (h, w, 3)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def _bad_huffman(jpeg: bytes) -> bytes:
    """A JPEG whose header reads but whose first Huffman table declares far too many codes."""
    data = bytearray(jpeg)
    at = data.find(b"\xff\xc4")
    data[at + 5 : at + 21] = b"\xff" * 16
    return bytes(data)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Two classes: colour JPEGs of several sizes and aspect ratios, and the files PIL keeps or refuses."""
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir()
        for k, (w, h) in enumerate(SIZES):
            _photo(rng, w, h).save(root / c / f"{k}_{w}x{h}.jpg", quality=90)
    other = root / "b"
    picture = _photo(rng, 320, 240)
    picture.convert("L").save(other / "grey.jpg", quality=90)
    picture.convert("CMYK").save(other / "cmyk.jpg", quality=90)
    picture.save(other / "picture.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: read_image turns it upright, decode_jpeg would not
    picture.save(other / "rotated.jpg", quality=90, exif=exif)
    good = (root / "a" / "2_640x480.jpg").read_bytes()
    (other / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (other / "bad_huffman.jpg").write_bytes(_bad_huffman(good))
    (other / "empty.jpg").write_bytes(b"")
    return root


def _run(*args: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return main(list(args))


@pytest.mark.parametrize("config", [BICUBIC, BILINEAR], ids=["bicubic-0.875", "bilinear-0.95"])
@pytest.mark.parametrize("size", [64, 224])
def test_device_crops_match_pil(folder, config, size):
    """Every colour JPEG decoded, resized and cropped on the device within the tolerance of PIL's crop; the rest
    (and the JPEG the device fails on) are PIL's own crops and error messages, bit for bit."""
    source = open_source(str(folder))
    cfg = {**config, **NORM}
    indices = list(range(len(source)))
    reference = [Crops(source, indices, cfg, size)[k] for k in indices]
    batch = collate([Encoded(source, indices, cfg, size)[k] for k in indices])
    names = [source.image_id(i).split("/")[-1] for i in indices]
    assert {names[p] for p in batch.crop_at} == TO_PIL
    decoder = DeviceDecoder(source, cfg, size, "cpu")
    x, idx, labels, errors = decoder(batch)
    assert x.dtype == torch.uint8 and tuple(x.shape) == (len(indices), 3, size, size)
    assert idx.tolist() == indices and labels.tolist() == [r[2] for r in reference]
    assert errors == [r[3] for r in reference]  # the same messages, from the same code
    assert {names[k] for k, e in enumerate(errors) if e} == {"truncated.jpg", "bad_huffman.jpg", "empty.jpg"}
    assert decoder.counts == {"device": 2 * len(SIZES), "pil": len(TO_PIL) + 1}
    worst_mean = 0.0
    for k, name in enumerate(names):
        delta = (x[k].int() - reference[k][0].int()).abs()
        if name in TO_PIL or name == "bad_huffman.jpg":
            assert int(delta.max()) == 0, name
        else:
            assert float(delta.float().mean()) <= MEAN_TOL and int(delta.max()) <= MAX_TOL, name
            worst_mean = max(worst_mean, float(delta.float().mean()))
    assert worst_mean > 0  # the device path did run: torch's resize is not Pillow's to the last grey level


@pytest.fixture(scope="module")
def lab_folder(tmp_path_factory) -> Path:
    """Lab test images as JPEG files in class folders named as the lab's classes: the trained lab model is sure of
    them (random weights' near-tied logits would let a grey level flip a top-1). Some as they are, some in a wider
    canvas (another aspect ratio), some upscaled 2× (the resize antialiases), and three for PIL."""
    from hrnet_explorer import lab

    root = tmp_path_factory.mktemp("lab_jpegs")
    data = lab.LabDataset(12, "test", 224)
    for i in range(len(data)):
        image, label = data[i]
        (root / lab.CLASSES[label]).mkdir(exist_ok=True)
        if i % 3 == 1:
            canvas = Image.new("RGB", (288, 224), (128, 128, 128))
            canvas.paste(image, (32, 0))
            image = canvas
        elif i % 3 == 2:
            image = image.resize((448, 448), Image.BICUBIC)
        image.save(root / lab.CLASSES[label] / f"{i:02d}.jpg", quality=95)
        if i < 3:
            fallback = root / lab.CLASSES[label] / f"{i:02d}_pil"
            (image.convert("L" if i == 0 else "CMYK") if i != 1 else image).save(
                fallback.with_suffix(".png" if i == 1 else ".jpg")
            )  # greyscale JPEG, PNG, CMYK JPEG
    return root


@pytest.mark.parametrize("config", [BICUBIC, BILINEAR], ids=["bicubic-0.875", "bilinear-0.95"])
def test_cudas_float_resize_arithmetic_is_within_the_tolerance(folder, config):
    """On CUDA torchvision resizes uint8 in float32 and rounds (no uint8 kernel there): the same arithmetic on the CPU,
    on the same decoded pictures, stays within the tolerance too (further from PIL than the uint8 kernel)."""
    from hrnet_explorer.analyze.decode import _decode_jpeg, _on_tensor

    source = open_source(str(folder))
    cfg = {**config, **NORM}
    indices = [i for i in range(len(source)) if source.image_id(i).startswith("a/")]  # the colour JPEGs
    crops = Crops(source, indices, cfg, 224)
    decoder = DeviceDecoder(source, cfg, 224, "cpu")
    worst = 0.0
    for k, i in enumerate(indices):
        data = torch.frombuffer(bytearray(Path(source.file(i)[0]).read_bytes()), dtype=torch.uint8)
        x = _decode_jpeg([data], torch.device("cpu"))[0][None].float()
        for step in decoder.steps:
            x = _on_tensor(step, x)
        x = x.clamp(0, 255).round().to(torch.uint8)[0]
        delta = (x.int() - crops[k][0].int()).abs()
        assert float(delta.float().mean()) <= MEAN_TOL and int(delta.max()) <= MAX_TOL, source.image_id(i)
        worst = max(worst, float(delta.float().mean()))
    assert worst > 0.05  # it is another arithmetic than the uint8 kernel's (mean ≤ 0.04)


def _analyze(folder, out, decode: str, *extra: str) -> int:
    args = ["analyze", str(folder), "--out", str(out), "-v", "lab", "--device", "cpu", "-b", "8", "--shard-size", "8"]
    return _run(*args, "-q", "--decode", decode, *extra)


def test_gpu_decode_run_gives_the_pil_run_rows(lab_folder, folder, tmp_path):
    """`analyze --decode gpu` on the CPU: the same rows (ids, labels, top-1), statistics within what a grey level or
    two moves them; the same error rows; the manifest says which path ran and how many images each decoded."""
    pil, gpu = tmp_path / "pil", tmp_path / "gpu"
    assert _analyze(lab_folder, pil, "pil", "--workers", "0") == 0
    assert _analyze(lab_folder, gpu, "gpu", "--workers", "2") == 0  # the workers read the files
    a = an.read_rows(pil).sort_by("image_id")
    b = an.read_rows(gpu).sort_by("image_id")
    assert a.schema == b.schema and a.num_rows == b.num_rows == 15
    for name in ("image_id", "label", "label_name", "top1", "top1_name", "correct"):
        assert a.column(name).to_pylist() == b.column(name).to_pylist(), name
    np.testing.assert_allclose(np.array(b.column("top1_prob")), np.array(a.column("top1_prob")), atol=0.02)
    energy = [c for c in a.column_names if c.startswith("energy.")]
    moved = max(float(np.abs(np.array(b.column(c)) / np.array(a.column(c)) - 1).max()) for c in energy)
    assert 0 < moved < 0.05
    manifest = json.loads((gpu / "manifest.json").read_text())
    info = manifest["variants"]["lab"]
    assert manifest["run"]["decode"] == "gpu" and info["decode"] == "gpu" and manifest["settings"]["decode"] == "gpu"
    assert [r["decoded"] for r in info["this_run"]["per_rank"]] == [{"device": 12, "pil": 3}]
    assert json.loads((pil / "manifest.json").read_text())["variants"]["lab"]["decode"] == "pil"
    # A run's pixels come from one decoder: resuming the gpu run with PIL is refused.
    assert _analyze(lab_folder, gpu, "pil", "--workers", "0") == 2
    # Broken files: the same error rows, with the same messages, as the PIL path's.
    errors = {}
    for decode in ("pil", "gpu"):
        out = tmp_path / f"broken-{decode}"
        assert _analyze(folder, out, decode, "--workers", "0", "--input-size", str(SIZE)) == 0
        errors[decode] = an.read_errors(out).sort_by("image_id")
        assert an.read_rows(out).num_rows == len(an.read_rows(out).column("image_id").unique()) == 2 * len(SIZES) + 4
    assert errors["pil"].equals(errors["gpu"]) and errors["gpu"].num_rows == 3


def test_auto_is_pil_on_the_cpu(lab_folder, tmp_path):
    out = tmp_path / "auto"
    assert _analyze(lab_folder, out, "auto", "--workers", "0", "--limit", "3") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["decode"] == "pil" and manifest["variants"]["lab"]["decode"] == "pil"
    assert "decode" not in manifest["settings"]  # a pil run: resumable with --decode pil, as runs before decode were
    assert "decoded" not in manifest["variants"]["lab"]["this_run"]["per_rank"][0]


def test_bad_decode_settings_are_one_clear_error(tmp_path, capsys):
    with pytest.raises(InputError, match=r"decode must be one of pil, gpu, auto, not 'nvjpeg'"):
        an.RunSettings("lab:4", (), tmp_path, decode="nvjpeg")
    out = tmp_path / "x"
    with pytest.raises(SystemExit) as exit_:  # the command line refuses it as it parses (argparse's choices)
        _run("analyze", "lab:4", "--out", str(out), "--device", "cpu", "-q", "--decode", "nvjpeg")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--decode" in err and "nvjpeg" in err and err.count("\n") == 1 and not out.exists()
    # The device resizes and crops with torchvision's Resize and CenterCrop; timm's border crop is not those.
    border = {**BICUBIC, **NORM, "crop_mode": "border"}
    with pytest.raises(InputError, match="use --decode pil"):
        variant_decode("gpu", "gpu", border, SIZE)
    assert variant_decode("gpu", "auto", border, SIZE) == "pil"
    assert variant_decode("gpu", "gpu", {**BICUBIC, **NORM}, SIZE) == "gpu"


def test_device_decodes_reports_why_not(folder):
    """ "gpu" where decode_jpeg cannot decode is refused before any work, with the reason; "auto" is pil there."""
    source = open_source(str(folder))
    assert device_decodes("cpu") is None
    assert resolve_decode("gpu", "cpu", source) == "gpu" and resolve_decode("auto", "cpu", source) == "pil"
    why = device_decodes("cuda")
    if why is None:  # a CUDA machine whose torchvision has nvJPEG
        assert torch.cuda.is_available() and resolve_decode("auto", "cuda", source) == "gpu"
    else:
        with pytest.raises(InputError, match=f"cannot decode JPEGs on cuda here \\({why}"):
            resolve_decode("gpu", "cuda", source)
        assert resolve_decode("auto", "cuda", source) == "pil"


def test_a_jpeg_the_device_cannot_decode_is_pils_in_the_batch(folder):
    """One bad JPEG among good ones: decode_jpeg's batch call fails whole, the good ones are decoded one by one."""
    source = open_source(str(folder))
    cfg = {**BICUBIC, **NORM}
    wanted = {"0_500x375.jpg", "bad_huffman.jpg", "1_375x500.jpg"}
    indices = [i for i in range(len(source)) if source.image_id(i) in {f"b/{name}" for name in wanted}]
    batch = collate([Encoded(source, indices, cfg, SIZE)[k] for k in range(len(indices))])
    assert len(batch.jpegs) == 3 and batch.crops is None
    decoder = DeviceDecoder(source, cfg, SIZE, "cpu")
    x, _, _, errors = decoder(batch)
    assert decoder.counts == {"device": 2, "pil": 1}
    assert [bool(e) for e in errors] == [source.image_id(i).endswith("bad_huffman.jpg") for i in indices]
    assert int(x[[bool(e) for e in errors]].max()) == 0  # the error row's crop is zeros, as the PIL path's

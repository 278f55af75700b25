"""`hrnet-explorer analyze`: rows and their schema, the numbers in them, broken files, resuming, torchrun
(gloo on the CPU), and the three kinds of source (folder, lab:N, hf:NAME). hrnet_w18_small at 64 px."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import timm
import torch
from PIL import Image
from repo import ROOT
from safetensors.torch import save_file

from hrnet_explorer import analyze as an
from hrnet_explorer import load_model, trace
from hrnet_explorer.analyze import parquet
from hrnet_explorer.attribution import resolution_reliance
from hrnet_explorer.cli import main
from hrnet_explorer.fusion import MEASURES
from hrnet_explorer.images import preprocess
from hrnet_explorer.zoo import RandomWeightsWarning

SIZE = 64
FIXED = ["image_id", "variant", "label", "label_name", "top1", "top1_name", "top1_prob", "correct", "top5", "top5_prob"]


def _picture(rng: np.random.Generator, w: int = 96, h: int = 80) -> Image.Image:
    """A smooth random picture (JPEG-friendly), different for every call."""
    base = rng.random((4, 5, 3)) * 255
    return Image.fromarray(base.astype(np.uint8)).resize((w, h), Image.BILINEAR)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    """Random hrnet_w18_small weights in a file: every process (and every rank) loads exactly these."""
    torch.manual_seed(1)
    model = timm.create_model("hrnet_w18_small", pretrained=False)
    path = tmp_path_factory.mktemp("weights") / "w18_small_random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """ImageFolder layout: 3 classes × 6 images, and 3 broken files among them."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for c in ("ant", "bee", "cat"):
        (root / c).mkdir()
        for i in range(6):
            _picture(rng).save(root / c / f"{i}.jpg" if i % 2 else root / c / f"{i}.png")
    good = (root / "ant" / "1.jpg").read_bytes()
    (root / "ant" / "broken_truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "bee" / "broken_garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png at all")
    (root / "cat" / "broken_empty.jpg").write_bytes(b"")
    (root / "cat" / "notes.txt").write_text("not an image: not listed")
    return root


def _on_folder(folder, weights_file, out) -> list[str]:
    """The common arguments: `analyze` a source with the test weights on CPU, images read in-process."""
    source = ["analyze", str(folder), "--out", str(out), "-w", str(weights_file)]
    return [*source, "--device", "cpu", "--input-size", str(SIZE), "--workers", "0"]


def _run(*args: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return main(list(args))


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("variant", "ascending"), ("image_id", "ascending")])


def _assert_same_rows(a: pa.Table, b: pa.Table, atol: float = 1e-5) -> None:
    a, b = _sorted(a), _sorted(b)
    assert a.schema == b.schema
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        if a.schema.field(name).type in (pa.float32(), pa.list_(pa.float32())):
            np.testing.assert_allclose(np.array(x, dtype=float), np.array(y, dtype=float), atol=atol, err_msg=name)
        else:
            assert x == y, name


# ------------------------------------------------------------------------------------------ the numbers


def test_row_engine_matches_trace_and_knockouts(w18_small):
    """One batch through the engine: top-5, energies, stage-4 shares and reliance equal what the
    explorer's own trace, fusion statistics and resolution_reliance say, image by image."""
    rng = np.random.default_rng(3)
    crops = torch.from_numpy(rng.integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)).permute(0, 3, 1, 2)
    engine = an.RowEngine(w18_small, 4, SIZE, reliance=True)
    out = engine.submit(crops.contiguous()).get()
    cfg = w18_small.data_config
    mean, std = torch.tensor(cfg["mean"]).view(1, 3, 1, 1), torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    x = (crops.float() / 255.0 - mean) / std
    result = trace(w18_small, x, keep="all")
    probs = result.logits.softmax(-1)
    top_p, top_i = probs.topk(5, dim=1)
    assert (out["top_i"] == top_i.numpy()).all()
    np.testing.assert_allclose(out["top_p"], top_p.numpy(), rtol=1e-5)
    for c, name in enumerate(engine.energy_names):
        _, stage, module, stream = name.split(".")
        fused = result[f"{stage}.{module}.fused{stream.removeprefix('stream')}"]
        np.testing.assert_allclose(out["energy"][:, c], fused.square().mean((1, 2, 3)).numpy(), rtol=1e-4)
    assert len(engine.share_names) == len(MEASURES) * 16  # w18_small: one stage-4 module, 4×4 edges
    for c, name in enumerate(engine.share_names):
        measure, stage, module, edge = name.split(".")
        j, i = (int(v) for v in edge.removeprefix("edge").split("to"))
        stats = result.fusion(int(stage.removeprefix("stage")), int(module.removeprefix("module")))
        np.testing.assert_allclose(out["shares"][:, c], getattr(stats, measure)[:, i, j].numpy(), atol=2e-5)
    for b in range(3):
        reliance = resolution_reliance(w18_small, x[b : b + 1])
        expected = [r.prob_delta for r in reliance]
        np.testing.assert_allclose(out["reliance"][b], expected, atol=1e-5)


def test_folder_rows_schema_and_broken_files(folder, weights_file, tmp_path):
    """18 good images give 18 rows; the 3 broken files give 3 error rows, each with its message."""
    out = tmp_path / "run"
    assert _run(*_on_folder(folder, weights_file, out), "-b", "8", "-q") == 0
    rows = an.read_rows(out)
    assert rows.num_rows == 18
    assert rows.column_names[: len(FIXED)] == FIXED
    manifest = json.loads((out / "manifest.json").read_text())
    info = manifest["variants"]["hrnet_w18_small"]
    energy, shares = info["columns"]["energy"], info["columns"]["shares"]
    assert rows.schema == an.schema(energy, shares)
    assert len(energy) == 2 + 3 + 4 and len(shares) == 48 and info["columns"]["reliance"] == []
    assert sorted(set(rows.column("label_name").to_pylist())) == ["ant", "bee", "cat"]
    assert rows.column("correct").null_count == 18  # 3 folder classes are not the model's 1000
    assert all(len(t) == 5 for t in rows.column("top5").to_pylist())
    for measure in MEASURES:  # each target's row of shares sums to 1
        for i in range(4):
            total = sum(np.array(rows.column(f"{measure}.stage4.module0.edge{j}to{i}")) for j in range(4))
            np.testing.assert_allclose(total, 1.0, atol=1e-4)
    errors = an.read_errors(out)
    assert sorted(errors.column("image_id").to_pylist()) == [
        "ant/broken_truncated.jpg",
        "bee/broken_garbage.png",
        "cat/broken_empty.jpg",
    ]
    assert all(e for e in errors.column("error").to_pylist())
    assert info["rows"] == 18 and info["errors"] == 3 and manifest["complete"]
    assert info["weights"]["kind"] == "file" and len(info["weights"]["sha256"]) == 64
    assert manifest["source"]["classes"] == ["ant", "bee", "cat"]
    # The device-side preprocessing (uint8 crops normalised on the device) is the app's preprocessing.
    loaded = load_model("hrnet_w18_small", str(weights_file), "cpu")
    row = next(r for r in rows.to_pylist() if r["image_id"] == "bee/3.jpg")
    x = preprocess(folder / "bee" / "3.jpg", loaded.data_config, SIZE)
    with torch.inference_mode():
        p = loaded.model(x).softmax(-1)[0]
    assert row["top1"] == int(p.argmax())
    assert row["top1_prob"] == pytest.approx(float(p.max()), rel=1e-4)


def test_resume_skips_finished_shards(folder, weights_file, tmp_path, monkeypatch):
    """A run that dies after its first shard leaves that shard; the rerun keeps it and does the rest."""
    out = tmp_path / "run"
    args = [*_on_folder(folder, weights_file, out), "-b", "4", "--shard-size", "8", "-q", "--reliance"]
    real_write = parquet.ShardWriter._write
    calls = []

    def dies_after_one(self, shard, buf):
        if calls:
            raise KeyboardInterrupt("interrupted")
        calls.append(shard)
        real_write(self, shard, buf)

    monkeypatch.setattr(parquet.ShardWriter, "_write", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        _run(*args)
    monkeypatch.setattr(parquet.ShardWriter, "_write", real_write)
    first = parquet.shard_path(out, "rows", "hrnet_w18_small", 0)
    assert first.exists() and not (out / "manifest.json").exists()
    assert not parquet.shard_path(out, "rows", "hrnet_w18_small", 1).exists()
    stamp = first.stat().st_mtime_ns
    assert _run(*args) == 0
    assert first.stat().st_mtime_ns == stamp  # not redone
    manifest = json.loads((out / "manifest.json").read_text())
    info = manifest["variants"]["hrnet_w18_small"]
    assert info["this_run"]["images"] == 21 - 8 and info["rows"] == 18 and info["errors"] == 3
    assert manifest["complete"] and manifest["shards"] == 3
    assert len(info["columns"]["reliance"]) == 4
    # A third run does nothing; other settings are refused, with a message, exit status 2.
    assert _run(*args) == 0
    assert json.loads((out / "manifest.json").read_text())["variants"]["hrnet_w18_small"]["this_run"]["images"] == 0
    assert _run(*[a if a != "8" else "16" for a in args]) == 2


def test_torchrun_two_ranks_give_the_rows_of_one_process(folder, weights_file, tmp_path):
    """`torchrun --nproc-per-node 2 -m hrnet_explorer analyze` (gloo, CPU): the same rows as one process."""
    common = [
        str(folder),
        "-w",
        str(weights_file),
        "--device",
        "cpu",
        "--input-size",
        str(SIZE),
        "--workers",
        "0",
        "-b",
        "4",
        "--shard-size",
        "4",
        "-q",
    ]
    single = tmp_path / "single"
    assert _run("analyze", *common, "--out", str(single)) == 0
    multi = tmp_path / "multi"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "hrnet_explorer",
        "analyze",
        *common,
        "--out",
        str(multi),
    ]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    _assert_same_rows(an.read_rows(single), an.read_rows(multi))
    assert _sorted(an.read_errors(single)).equals(_sorted(an.read_errors(multi)))
    manifest = json.loads((multi / "manifest.json").read_text())
    assert manifest["run"]["world_size"] == 2 and manifest["run"]["backend"] == "gloo"
    per_rank = manifest["variants"]["hrnet_w18_small"]["this_run"]["per_rank"]
    assert [r["images"] for r in per_rank] == [12, 9]  # shards 0, 2, 4 and 1, 3, 5 (the last one short)
    written = sorted(p.name for p in (multi / "rows" / "hrnet_w18_small").iterdir())
    assert written == [f"shard-{k:05d}.parquet" for k in range(6)]


def test_lab_64_rows_per_variant(tmp_path):
    """`analyze lab:64` with the lab model and a second variant: 64 readable rows each, with the schema."""
    out = tmp_path / "lab"
    assert (
        _run(
            "analyze",
            "lab:64",
            "-v",
            "lab",
            "-v",
            "hrnet_w18_small",
            "--out",
            str(out),
            "--device",
            "cpu",
            "--input-size",
            str(SIZE),
            "--workers",
            "0",
            "-b",
            "16",
            "-q",
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "lab" and len(manifest["source"]["classes"]) == 10
    for variant in ("lab", "hrnet_w18_small"):
        rows = an.read_rows(out, variant)
        assert rows.num_rows == 64, variant
        cols = manifest["variants"][variant]["columns"]
        assert rows.schema == an.schema(cols["energy"], cols["shares"], cols["reliance"])
        assert rows.column("image_id").to_pylist() == [f"lab/test/{i}" for i in range(64)]
        assert rows.column("label").null_count == 0
    lab_rows = an.read_rows(out, "lab")
    assert lab_rows.column("correct").null_count == 0  # the lab's classes are the lab model's
    assert set(lab_rows.column("top1_name").to_pylist()) <= set(manifest["source"]["classes"])
    assert an.read_rows(out, "hrnet_w18_small").column("correct").null_count == 64  # 10 classes ≠ ImageNet's
    assert an.read_errors(out).num_rows == 0


def test_lab_defaults_to_the_lab_model(tmp_path):
    out = tmp_path / "lab"
    assert (
        _run(
            "analyze", "lab:4", "--out", str(out), "--device", "cpu", "--input-size", str(SIZE), "-q", "--workers", "0"
        )
        == 0
    )
    assert json.loads((out / "manifest.json").read_text())["settings"]["variants"] == ["lab"]


def test_hf_dataset_saved_to_disk(weights_file, tmp_path):
    """hf:PATH reads a `datasets` dataset written by save_to_disk, offline, with its ClassLabel names."""
    import datasets

    rng = np.random.default_rng(5)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["x", "y"])})
    data = datasets.Dataset.from_dict(
        {"image": [_picture(rng) for _ in range(5)], "label": [0, 1, 1, 0, 1]}, features=features
    )
    saved = tmp_path / "tiny"
    datasets.DatasetDict({"validation": data}).save_to_disk(str(saved))
    out = tmp_path / "run"
    assert _run(*_on_folder(f"hf:{saved}", weights_file, out), "-q", "--limit", "4") == 0
    rows = an.read_rows(out)
    assert rows.num_rows == 4
    assert rows.column("image_id").to_pylist() == [f"{saved}/validation/{i}" for i in range(4)]
    assert rows.column("label_name").to_pylist() == ["x", "y", "y", "x"]


def test_flat_folder_has_no_labels_and_workers_read_it(weights_file, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(7)
    for i in range(5):
        _picture(rng).save(flat / f"img{i}.jpg")
    out = tmp_path / "run"
    # the last --workers wins: two DataLoader workers read the flat folder
    assert _run(*_on_folder(flat, weights_file, out), "--workers", "2", "-b", "2", "-q") == 0
    rows = an.read_rows(out)
    assert rows.num_rows == 5
    assert rows.column("label").null_count == 5 and rows.column("correct").null_count == 5


@pytest.mark.parametrize(
    "source, message",
    [("/no/such/folder", "No folder"), ("lab:zero", "positive number"), ("hf:", "needs a dataset name")],
)
def test_bad_sources_are_one_line_errors(source, message, tmp_path, capsys):
    assert _run("analyze", source, "--out", str(tmp_path / "x"), "--device", "cpu", "-q") == 2
    err = capsys.readouterr().err
    assert err.startswith("hrnet-explorer: error:") and message in err


def test_python_dash_m_is_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "hrnet_explorer", "analyze", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0 and "--reliance" in done.stdout and "torchrun" in done.stdout


def test_memory_does_not_hold_the_dataset(folder, weights_file, tmp_path):
    """At most one shard of rows is in memory: the writer holds nothing once a shard is written."""
    held = []
    real_add = parquet.ShardWriter.add

    def spy(self, *args):
        real_add(self, *args)
        held.append(sum(len(p[0]) for buf in self.open.values() for p in buf["rows"]))

    out = tmp_path / "run"
    parquet.ShardWriter.add = spy
    try:
        assert _run(*_on_folder(folder, weights_file, out), "-b", "2", "--shard-size", "4", "-q") == 0
    finally:
        parquet.ShardWriter.add = real_add
    assert max(held) < 4 and held[-1] == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--shard-size", "0"], "--shard-size must be at least 1"),
        (["--input-size", "100"], "multiple of 32"),
        (["--limit", "0"], "--limit must be at least 1"),
        (["-b", "0"], "--batch-size must be at least 1"),
        (["--workers", "-1"], "--workers must be 0 or more"),
    ],
)
def test_bad_settings_are_one_line_errors_before_any_work(extra, message, tmp_path, capsys):
    out = tmp_path / "x"
    assert _run("analyze", "lab:4", "--out", str(out), "--device", "cpu", "-q", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("hrnet-explorer: error:") and message in err and err.count("\n") == 1
    assert not out.exists()  # refused before run.json was written


def test_run_settings_are_frozen_and_normalised(tmp_path):
    import dataclasses

    settings = an.RunSettings("lab:4", ["lab"], str(tmp_path), command=["x", "y"])
    assert settings.variants == ("lab",) and settings.out == tmp_path and settings.command == ("x", "y")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.limit = 3
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        an.RunSettings("lab:4", (), tmp_path, precision="fp16")

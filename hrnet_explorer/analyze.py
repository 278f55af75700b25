"""Whole datasets: one row per image and variant, written as Parquet shards, on one process or many.

    hrnet-explorer analyze SOURCE --variant V [--variant V2 …] --out DIR [--reliance]
    torchrun --nproc-per-node N -m hrnet_explorer analyze SOURCE … --out DIR

SOURCE is a folder, ``lab:N`` or ``hf:NAME[:SPLIT]`` (:mod:`hrnet_explorer.sources`). Per image and
variant one row (:func:`schema`): ``image_id``, ``variant``, ``label`` (nullable; an index into the
source's classes), ``label_name``, ``top1``, ``top1_name``, ``top1_prob``, ``correct`` (nullable:
only when the source's classes are the model's), ``top5``, ``top5_prob``; then

- ``energy.stage{s}.module{m}.stream{i}`` — the mean square of every stream at every module's output
  (the fused map, ``‖fused_i‖² / numel``);
- ``{energy_share,agreement,relu_share}.stage4.module{m}.edge{j}to{i}`` — stage 4's fusion share
  matrices, flattened (:mod:`hrnet_explorer.fusion` defines them);
- with ``--reliance``: ``reliance.stream{k}`` — the change of the top-1 class's probability when
  stream k stops feeding the other streams in every module (:func:`~hrnet_explorer.attribution.resolution_reliance`).

Layout of DIR::

    run.json                              the settings; a rerun with other settings is refused
    rows/<variant>/shard-00000.parquet    rows of images [0, S), [S, 2S), … (S = --shard-size)
    errors/<variant>/shard-00000.parquet  image_id, variant, error: images that could not be read
    manifest.json                         versions, weights and their hash, preprocessing, command, counts

A shard is written whole (to a temporary name, then renamed), so a rerun skips every finished shard
and redoes only the rest. Shards are dealt to torchrun's ranks round-robin; each rank writes its own,
and rank 0 writes the manifest after a barrier.

How it stays fast: DataLoader workers decode, resize and crop to uint8 (a quarter of float32's bytes
through shared memory, pinned for the copy); normalisation, the forward pass, every statistic and the
top-5 run on the device, on CUDA as one CUDA graph per batch, so only a few hundred numbers per image
come back — copied asynchronously while the next batch runs. Memory is flat in the dataset's length:
at most one shard of rows is held.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from timm.data import ImageNetInfo, create_transform
from torch.utils.data import DataLoader, Dataset

from . import distributed
from .images import STRIDE
from .rows import MEASURES, RowEngine
from .runtime import resolve_device
from .sources import Source, open_source
from .zoo import LoadedModel, RandomWeightsWarning, get_variant, load_model

__all__ = ["analyze", "RowEngine", "read_rows", "read_errors", "schema", "add_analyze_command", "FORMAT"]

FORMAT = "hrnet-explorer-analyze/1"
DEFAULT_SHARD_SIZE = 2048


# ------------------------------------------------------------------------------------------- input


class _Crops(Dataset):
    """Item k: image ``indices[k]`` of ``source``, resized and center-cropped as the weights expect, as
    uint8 [3, H, W]; with its index, label (-1: none) and the error message ("" when it was read)."""

    def __init__(self, source: Source, indices: Sequence[int], data_config: dict, size: int):
        self.source, self.indices, self.size = source, indices, size
        cfg = {**data_config, "input_size": (3, size, size)}
        self.steps = create_transform(**cfg, is_training=False).transforms[:-2]  # all but ToTensor, Normalize

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = int(self.indices[k])
        try:
            image, label = self.source.load(i)
            for step in self.steps:
                image = step(image)
            array = np.asarray(image, dtype=np.uint8)
            if array.shape != (self.size, self.size, 3):
                raise ValueError(f"preprocessing gave shape {array.shape}, not {(self.size, self.size, 3)}")
            x = torch.from_numpy(array.copy()).permute(2, 0, 1)
            return x, i, -1 if label is None else label, ""
        except Exception as exc:  # any unreadable image goes to the errors table; the run goes on
            message = f"{type(exc).__name__}: {exc}"
            return torch.zeros(3, self.size, self.size, dtype=torch.uint8), i, -1, message


# ------------------------------------------------------------------------------------------ schema


def schema(energy_names: Sequence[str], share_names: Sequence[str], reliance_names: Sequence[str] = ()):
    """The Arrow schema of a variant's rows."""
    import pyarrow as pa

    fields = [
        ("image_id", pa.string()),
        ("variant", pa.string()),
        ("label", pa.int32()),
        ("label_name", pa.string()),
        ("top1", pa.int32()),
        ("top1_name", pa.string()),
        ("top1_prob", pa.float32()),
        ("correct", pa.bool_()),
        ("top5", pa.list_(pa.int32())),
        ("top5_prob", pa.list_(pa.float32())),
    ]
    fields += [(n, pa.float32()) for n in (*energy_names, *share_names, *reliance_names)]
    return pa.schema(fields)


def _error_schema():
    import pyarrow as pa

    return pa.schema([("image_id", pa.string()), ("variant", pa.string()), ("error", pa.string())])


def _model_class_names(loaded: LoadedModel) -> list[str]:
    names = getattr(loaded, "class_names", None)
    if names:
        return list(names)
    n = loaded.model.num_classes
    if n == 1000:
        info = ImageNetInfo()
        return [info.index_to_description(i) for i in range(n)]
    return [str(i) for i in range(n)]


def _label_map(classes: list[str] | None, model_names: list[str], num_classes: int) -> np.ndarray | None:
    """Source label → model class index (-1: none), or None when the source's classes are not the model's.

    By name (the lab's classes, or ImageNet synset folders like n01440764); else, with exactly as many
    classes as the model, by position (torchvision's sorted ImageFolder convention = ImageNet's order).
    """
    if not classes:
        return None
    index = {name: i for i, name in enumerate(model_names)}
    if num_classes == 1000:
        index.update({synset: i for i, synset in enumerate(ImageNetInfo().label_names())})
    if all(c in index for c in classes):
        return np.array([index[c] for c in classes], dtype=np.int64)
    if len(classes) == num_classes:
        return np.arange(num_classes, dtype=np.int64)
    return None


# ------------------------------------------------------------------------------------------ output


def _variant_key(name: str) -> str:
    try:
        return get_variant(name).name
    except ValueError:
        return name  # a model the zoo knows under its own name (e.g. "lab")


def _shard_path(out: Path, table: str, variant: str, shard: int) -> Path:
    return out / table / variant / f"shard-{shard:05d}.parquet"


def _write_atomic(table, path: Path | None) -> None:
    """Write ``table`` to ``path`` whole (a temporary name, then a rename); ``None``: to memory."""
    import pyarrow.parquet as pq

    if path is None:
        pq.write_table(table, io.BytesIO())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class _ShardWriter:
    """Holds the rows of the shards in progress; writes a shard as soon as all its images are in, on a
    background thread (Parquet encoding releases the GIL), at most two shards behind the main loop."""

    def __init__(self, out: Path, variant: str, source: Source, n: int, shard_size: int, names, label_map, model_names):
        self.out, self.variant, self.source, self.n, self.size = out, variant, source, n, shard_size
        self.names, self.label_map, self.model_names = names, label_map, model_names
        self.schema = schema(*names)
        self.open: dict[int, dict] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="analyze-writer")
        self._writing: list[Future] = []
        _write_atomic(self.schema.empty_table(), None)  # pyarrow's first-use set-up, before the clock runs

    def _submit(self, shard: int, buf: dict) -> None:
        self._writing.append(self._pool.submit(self._write, shard, buf))
        while len(self._writing) > 2 or (self._writing and self._writing[0].done()):
            self._writing.pop(0).result()  # re-raises a failed write here

    def close(self) -> None:
        """Wait for every write; raise the first error."""
        try:
            for future in self._writing:
                future.result()
        finally:
            self._writing = []
            self._pool.shutdown(wait=True)

    def expected(self, shard: int) -> int:
        return min(self.size, self.n - shard * self.size)

    def add(self, indices: np.ndarray, labels: np.ndarray, errors: list[str], result: dict[str, np.ndarray]) -> None:
        shards = indices // self.size
        for shard in np.unique(shards):
            sel = shards == shard
            buf = self.open.setdefault(int(shard), {"rows": [], "errors": [], "count": 0})
            ok = sel & np.array([not e for e in errors])
            if ok.any():
                buf["rows"].append(
                    (indices[ok], labels[ok], {k: v[ok] for k, v in result.items()}),
                )
            buf["errors"] += [(int(i), errors[k]) for k, i in enumerate(indices) if sel[k] and errors[k]]
            buf["count"] += int(sel.sum())
            if buf["count"] == self.expected(int(shard)):
                self._submit(int(shard), self.open.pop(int(shard)))

    def _table(self, parts):
        import pyarrow as pa

        if not parts:
            return self.schema.empty_table()
        idx = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        res = {k: np.concatenate([p[2][k] for p in parts]) for k in parts[0][2]}
        n = len(idx)
        has_label = labels >= 0
        classes = self.source.classes or []
        top1 = res["top_i"][:, 0].astype(np.int32)
        if self.label_map is not None:
            target = np.where(has_label, self.label_map[np.clip(labels, 0, None)], -1)
            correct = pa.array(top1 == target, mask=~(has_label & (target >= 0)))
        else:
            correct = pa.nulls(n, pa.bool_())
        columns = {
            "image_id": pa.array([self.source.image_id(int(i)) for i in idx], pa.string()),
            "variant": pa.array([self.variant] * n, pa.string()),
            "label": pa.array(labels.astype(np.int32), mask=~has_label),
            "label_name": pa.array([classes[v] if v >= 0 else None for v in labels], pa.string()),
            "top1": pa.array(top1),
            "top1_name": pa.array([self.model_names[v] for v in top1], pa.string()),
            "top1_prob": pa.array(res["top_p"][:, 0].astype(np.float32)),
            "correct": correct,
            "top5": pa.array(list(res["top_i"].astype(np.int32)), pa.list_(pa.int32())),
            "top5_prob": pa.array(list(res["top_p"].astype(np.float32)), pa.list_(pa.float32())),
        }
        for key, names in (("energy", self.names[0]), ("shares", self.names[1]), ("reliance", self.names[2])):
            for c, name in enumerate(names):
                columns[name] = pa.array(res[key][:, c].astype(np.float32))
        return pa.table(columns, schema=self.schema)

    def _write(self, shard: int, buf: dict) -> None:
        import pyarrow as pa

        if buf["errors"]:
            errors = pa.table(
                {
                    "image_id": [self.source.image_id(i) for i, _ in buf["errors"]],
                    "variant": [self.variant] * len(buf["errors"]),
                    "error": [m for _, m in buf["errors"]],
                },
                schema=_error_schema(),
            )
            _write_atomic(errors, _shard_path(self.out, "errors", self.variant, shard))
        _write_atomic(self._table(buf["rows"]), _shard_path(self.out, "rows", self.variant, shard))


def read_rows(out: str | os.PathLike, variant: str | None = None):
    """Every row of an analyze run (one variant, or all) as one pyarrow Table."""
    return _read_tables(Path(out) / "rows", variant)


def read_errors(out: str | os.PathLike, variant: str | None = None):
    """The errors table of an analyze run (image_id, variant, error)."""
    return _read_tables(Path(out) / "errors", variant, _error_schema())


def _read_tables(root: Path, variant: str | None, empty_schema=None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folders = [root / variant] if variant else sorted(p for p in root.glob("*") if p.is_dir())
    tables = [pq.read_table(f) for d in folders for f in sorted(d.glob("shard-*.parquet"))]
    if not tables:
        return (empty_schema or pa.schema([])).empty_table()
    return pa.concat_tables(tables, promote_options="permissive")


# ------------------------------------------------------------------------------------------ running


class _Progress:
    """images done / total and images/s on stderr (a live line on a terminal, a line every 10 s otherwise)."""

    def __init__(self, label: str, total: int, enabled: bool):
        self.label, self.total, self.enabled = label, total, enabled
        self.done, self.start, self.last = 0, time.perf_counter(), 0.0
        self.tty = sys.stderr.isatty()

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self.last >= (0.5 if self.tty else 10.0) or self.done == self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            line = f"{self.label}: {self.done:,}/{self.total:,} images · {rate:,.0f} images/s"
            print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty and self.done:
            print(file=sys.stderr, flush=True)


def _state_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _default_workers(ranks: distributed.Ranks) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(16, cpus // ranks.local_world - 1))


def _versions() -> dict[str, str]:
    import pyarrow
    import timm

    from . import __version__

    return {
        "hrnet_explorer": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "pyarrow": pyarrow.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda or "none",
    }


def _check_settings(out: Path, settings: dict, ranks: distributed.Ranks) -> None:
    """Refuse to mix runs: DIR/run.json must hold these settings (written by rank 0 when absent)."""
    path = out / "run.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            raise ValueError(
                f"{out} holds a run with other settings ({', '.join(f'{k}: {old.get(k)!r}' for k in diff)}); "
                "use another --out, or delete it to start over."
            )
    distributed.barrier(ranks)  # every rank has read the old file before rank 0 writes a new one
    if ranks.is_main and not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".run.json.tmp")
        tmp.write_text(json.dumps(settings, indent=2))
        os.replace(tmp, path)
    distributed.barrier(ranks)


def analyze(
    source: str,
    variants: Sequence[str] | None,
    out: str | os.PathLike,
    *,
    weights: str = "default",
    reliance: bool = False,
    batch_size: int | None = None,
    device: str | None = "auto",
    workers: int | None = None,
    limit: int | None = None,
    input_size: int | None = None,
    precision: str = "auto",
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = True,
    command: Sequence[str] | None = None,
) -> dict:
    """Analyze every image of ``source`` with every variant; write DIR (see the module's docstring).

    Under torchrun each rank runs this with the same arguments and takes its share of the shards.
    ``precision`` "auto": bf16 on CUDA, fp32 on the CPU. Returns the manifest (rank 0) or this rank's part.
    """
    if shard_size < 1:
        raise ValueError(f"--shard-size must be at least 1, got {shard_size}.")
    if input_size is not None and (input_size < STRIDE or input_size % STRIDE):
        raise ValueError(f"--input-size must be a positive multiple of {STRIDE}; got {input_size}.")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}.")
    ranks, device = distributed.setup(device)
    device = str(resolve_device(device))
    try:
        return _analyze(
            ranks,
            source,
            variants,
            Path(out),
            weights=weights,
            reliance=reliance,
            batch_size=batch_size,
            device=device,
            workers=workers,
            limit=limit,
            input_size=input_size,
            precision=precision,
            shard_size=shard_size,
            progress=progress,
            command=command,
        )
    finally:
        distributed.teardown(ranks)


def _analyze(
    ranks,
    spec,
    variants,
    out,
    *,
    weights,
    reliance,
    batch_size,
    device,
    workers,
    limit,
    input_size,
    precision,
    shard_size,
    progress,
    command,
) -> dict:
    src = open_source(spec, size=input_size)
    variants = list(variants or [src.default_variant or "hrnet_w18_small"])
    keys = [_variant_key(v) for v in variants]
    if len(set(keys)) != len(keys):
        raise ValueError(f"--variant names a model twice: {', '.join(variants)}.")
    n = min(len(src), limit) if limit else len(src)
    cuda = device.startswith("cuda")
    precision = ("bf16" if cuda else "fp32") if precision == "auto" else precision
    batch_size = batch_size or (256 if cuda else 16)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}.")
    workers = _default_workers(ranks) if workers is None else workers
    settings = {
        "format": FORMAT,
        "source": spec,
        "images": n,
        "variants": keys,
        "weights": weights,
        "reliance": reliance,
        "input_size": input_size,
        "precision": precision,
        "shard_size": shard_size,
    }
    _check_settings(out, settings, ranks)
    num_shards = -(-n // shard_size)
    mine = [s for s in range(num_shards) if s % ranks.world == ranks.rank]
    per_variant, timing = {}, {}
    for key, name in zip(keys, variants, strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)  # said once, below and in the manifest
            loaded = load_model(name, weights, device, precision)
        if loaded.weights.is_random and ranks.is_main:
            print(f"WARNING: {key}: {loaded.weights.describe()}", file=sys.stderr)
        size = input_size or loaded.data_config["input_size"][-1]
        model_names = _model_class_names(loaded)
        label_map = _label_map(src.classes, model_names, loaded.model.num_classes)
        todo = [s for s in mine if not _shard_path(out, "rows", key, s).exists()]
        indices = [i for s in todo for i in range(s * shard_size, min(n, (s + 1) * shard_size))]
        per_variant[key] = {
            "name": name,
            "architecture": loaded.architecture,
            "weights": {
                "kind": loaded.weights.kind,
                "detail": loaded.weights.detail,
                "tag": loaded.weights.tag,
                "random": loaded.weights.is_random,
                "sha256": _state_hash(loaded.model) if ranks.is_main else None,
            },
            "preprocessing": {**loaded.data_config, "input_size": [3, size, size], "normalised_on": "device"},
            "precision": precision,
            "num_classes": loaded.model.num_classes,
            "class_names": model_names if loaded.model.num_classes != 1000 else "imagenet-1k",
            "label_map": None if label_map is None else label_map.tolist(),
        }
        seconds, startup, done = 0.0, 0.0, 0
        if indices:
            begin = time.perf_counter()
            engine = RowEngine(loaded, batch_size if cuda else min(batch_size, len(indices)), size, reliance=reliance)
            names = (engine.energy_names, engine.share_names, engine.reliance_names)
            per_variant[key]["columns"] = {"energy": names[0], "shares": names[1], "reliance": names[2]}
            writer = _ShardWriter(out, key, src, n, shard_size, names, label_map, model_names)
            loader = DataLoader(
                _Crops(src, indices, loaded.data_config, size),
                batch_size=engine.batch_size,
                num_workers=workers,
                pin_memory=cuda,
                prefetch_factor=4 if workers else None,
            )
            label = f"{key} (rank {ranks.rank}/{ranks.world})" if ranks.enabled else key
            bar = _Progress(label, len(indices), progress and ranks.is_main)
            start, pending = None, None
            try:
                for x, idx, labels, errors in loader:
                    if start is None:  # the clock runs from the first batch: set-up is timed apart
                        start = time.perf_counter()
                        startup = start - begin
                    submitted = (engine.submit(x), idx.numpy(), labels.numpy(), list(errors))
                    if pending is not None:
                        done += _consume(writer, pending, bar)
                    pending = submitted
                if pending is not None:
                    done += _consume(writer, pending, bar)
            finally:
                writer.close()
            seconds = time.perf_counter() - start
            bar.close()
            if writer.open:
                raise RuntimeError(f"shards {sorted(writer.open)} of {key} were not completed")
            del engine
            if cuda:
                torch.cuda.empty_cache()
        timing[key] = {"images": done, "seconds": round(seconds, 3), "startup_seconds": round(startup, 3)}
    everyone = distributed.gather(ranks, timing)
    distributed.barrier(ranks)
    if not ranks.is_main:
        return {"rank": ranks.rank, "timing": timing}
    manifest = _manifest(out, src, n, settings, per_variant, everyone, ranks, workers, batch_size, device, command)
    tmp = out / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(tmp, out / "manifest.json")
    return manifest


def _consume(writer: _ShardWriter, pending, bar: _Progress) -> int:
    handle, idx, labels, errors = pending
    writer.add(idx, labels, errors, handle.get())
    bar.update(len(idx))
    return len(idx)


def _manifest(out, src, n, settings, per_variant, everyone, ranks, workers, batch_size, device, command) -> dict:
    import pyarrow.parquet as pq

    num_shards = -(-n // settings["shard_size"])
    for key, info in per_variant.items():
        rows = [_shard_path(out, "rows", key, s) for s in range(num_shards)]
        errs = [_shard_path(out, "errors", key, s) for s in range(num_shards)]
        info["shards_done"] = sum(p.exists() for p in rows)
        info["rows"] = sum(pq.read_metadata(p).num_rows for p in rows if p.exists())
        info["errors"] = sum(pq.read_metadata(p).num_rows for p in errs if p.exists())
        images = sum(t[key]["images"] for t in everyone)
        slowest = max(t[key]["seconds"] for t in everyone)
        with_startup = max(t[key]["seconds"] + t[key]["startup_seconds"] for t in everyone)
        info["this_run"] = {
            "images": images,
            "seconds_slowest_rank": round(slowest, 3),
            "images_per_s": round(images / slowest, 1) if slowest else None,  # first batch → last shard written
            "images_per_s_with_startup": round(images / with_startup, 1) if with_startup else None,  # + capture
            "per_rank": [t[key] for t in everyone],
        }
        if "columns" not in info:  # every shard was done already: name the columns from the files
            names = pq.read_schema(rows[0]).names if rows and rows[0].exists() else []
            info["columns"] = {
                "energy": [c for c in names if c.startswith("energy.")],
                "shares": [c for c in names if c.split(".", 1)[0] in MEASURES],
                "reliance": [c for c in names if c.startswith("reliance.")],
            }
    return {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": list(command) if command is not None else [Path(sys.argv[0]).name, *sys.argv[1:]],
        "settings": settings,
        "complete": all(v["shards_done"] == num_shards for v in per_variant.values()),
        "source": src.describe(),
        "shards": num_shards,
        "layout": {"rows": "rows/<variant>/shard-NNNNN.parquet", "errors": "errors/<variant>/shard-NNNNN.parquet"},
        "run": {
            "world_size": ranks.world,
            "backend": ranks.backend,
            "device": str(device),
            "device_name": torch.cuda.get_device_name() if str(device).startswith("cuda") else platform.processor(),
            "batch_size": batch_size,
            "workers_per_rank": workers,
        },
        "versions": _versions(),
        "variants": per_variant,
    }


# ------------------------------------------------------------------------------------------ CLI


def _cmd_analyze(args: argparse.Namespace) -> None:
    manifest = analyze(
        args.source,
        args.variant,
        args.out,
        weights=args.weights,
        reliance=args.reliance,
        batch_size=args.batch_size,
        device=args.device,
        workers=args.workers,
        limit=args.limit,
        input_size=args.input_size,
        precision=args.precision,
        shard_size=args.shard_size,
        progress=not args.quiet,
    )
    if "variants" not in manifest:
        return  # not rank 0
    for key, info in manifest["variants"].items():
        run = info["this_run"]
        speed = f", {run['images_per_s']:,.0f} images/s" if run["images_per_s"] else " (all shards were done)"
        print(f"{key}: {info['rows']:,} rows, {info['errors']:,} errors; this run {run['images']:,} images{speed}")
    print(f"wrote {Path(args.out) / 'manifest.json'}")


def add_analyze_command(subparsers) -> argparse.ArgumentParser:
    """Register ``analyze`` on the ``hrnet-explorer`` command's subparsers."""
    p = subparsers.add_parser(
        "analyze",
        help="a whole dataset → one row per image and variant, in Parquet shards (torchrun for many GPUs)",
        description="Analyze a dataset. Under `torchrun --nproc-per-node N -m hrnet_explorer analyze …` the "
        "shards are spread over the ranks (NCCL on GPUs, gloo on the CPU).",
    )
    p.add_argument("source", help="a folder (ImageFolder layout or flat), lab:N, or hf:NAME[:SPLIT]")
    p.add_argument(
        "--variant",
        "-v",
        action="append",
        default=None,
        help="repeat for several (default: lab for lab:N, else w18_small)",
    )
    p.add_argument("--out", "-o", required=True, help="output folder (rerun to resume)")
    p.add_argument("--weights", "-w", default="default", help="default | TAG | PATH | random (every variant)")
    p.add_argument("--reliance", action="store_true", help="also knock out each final stream (5 forwards)")
    p.add_argument("--batch-size", "-b", type=int, default=None, help="default 256 on CUDA, 16 on the CPU")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers per rank (default: CPUs − 1)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--input-size", type=int, default=None, help="square crop size, a multiple of 32")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="auto: bf16 on CUDA")
    p.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="images per Parquet shard")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress line")
    p.set_defaults(func=_cmd_analyze)
    return p

"""Running an analyze run: each rank's shards through the RowEngine into Parquet, then rank 0's manifest."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .. import distributed
from ..errors import InputError
from ..progress import progress_bar
from ..rows import MEASURES, RowEngine
from ..runtime import resolve_device
from ..sources import Source, open_source
from ..zoo import LoadedModel, RandomWeightsWarning, get_variant, load_model
from .decode import DeviceDecoder, Encoded, collate, resolve_decode, variant_decode
from .inputs import Crops, label_map
from .parquet import ShardWriter, shard_path
from .settings import RunSettings

FORMAT = "hrnet-explorer-analyze/1"
LOG_EVERY_S = 10.0  # off a terminal (a torchrun job's log), a progress line this often


@dataclass(frozen=True)
class _Plan:
    """The settings resolved on this rank: its place among the ranks, its device and the defaults that follow."""

    ranks: distributed.Ranks
    device: str
    precision: str
    batch_size: int
    workers: int
    images: int  # how many of the source's images the run covers
    names: tuple[str, ...]  # the variants as asked
    keys: tuple[str, ...]  # their names in the output (the zoo's full names)
    decode: str  # "pil" or "gpu" (hrnet_explorer.analyze.decode)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def shards(self, shard_size: int) -> int:
        return -(-self.images // shard_size)


def _variant_key(name: str) -> str:
    try:
        return get_variant(name).name
    except ValueError:
        return name  # a model the zoo knows under its own name (e.g. "lab")


def _default_workers(ranks: distributed.Ranks) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(16, cpus // ranks.local_world - 1))


def _plan(settings: RunSettings, ranks: distributed.Ranks, device: str, src: Source) -> _Plan:
    names = settings.variants or (src.default_variant or "hrnet_w18_small",)
    keys = tuple(_variant_key(v) for v in names)
    if len(set(keys)) != len(keys):
        raise InputError(f"--variant names a model twice: {', '.join(names)}.")
    cuda = device.startswith("cuda")
    return _Plan(
        ranks=ranks,
        device=device,
        precision=("bf16" if cuda else "fp32") if settings.precision == "auto" else settings.precision,
        batch_size=settings.batch_size or (256 if cuda else 16),
        workers=_default_workers(ranks) if settings.workers is None else settings.workers,
        images=min(len(src), settings.limit) if settings.limit else len(src),
        decode=resolve_decode(settings.decode, device, src),
        names=names,
        keys=keys,
    )


def _recorded(settings: RunSettings, plan: _Plan) -> dict:
    """What run.json holds: the settings a rerun in the same folder must share (resuming mixes no runs)."""
    return {
        "format": FORMAT,
        "source": settings.source,
        "images": plan.images,
        "variants": list(plan.keys),
        "weights": settings.weights,
        "reliance": settings.reliance,
        "input_size": settings.input_size,
        "precision": plan.precision,
        "shard_size": settings.shard_size,
        **({"unit_maps": list(settings.unit_maps)} if settings.unit_maps else {}),  # absent: older runs resume
        **({"decode": plan.decode} if plan.decode != "pil" else {}),  # other pixels, within decode's tolerance
    }


def _check_settings(out: Path, recorded: dict, ranks: distributed.Ranks) -> None:
    """Refuse to mix runs: DIR/run.json must hold these settings (written by rank 0 when absent)."""
    path = out / "run.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(recorded) if old.get(k) != recorded.get(k))
        if diff:
            raise InputError(
                f"{out} holds a run with other settings ({', '.join(f'{k}: {old.get(k)!r}' for k in diff)}); "
                "use another --out, or delete it to start over."
            )
    distributed.barrier(ranks)  # every rank has read the old file before rank 0 writes a new one
    if ranks.is_main and not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".run.json.tmp")
        tmp.write_text(json.dumps(recorded, indent=2))
        os.replace(tmp, path)
    distributed.barrier(ranks)


def analyze(source: str, variants: Sequence[str] | None, out: str | os.PathLike, **options) -> dict:
    """Analyze every image of ``source`` with every variant; write the folder ``out`` (see the package's docstring).

    ``options``: the other fields of :class:`RunSettings` (``weights``, ``reliance``, ``batch_size``, ``device``,
    ``workers``, ``limit``, ``input_size``, ``precision``, ``shard_size``, ``progress``, ``command``, ``unit_maps``,
    ``decode``). Under torchrun each rank runs this with the same arguments and takes its share of the shards.
    Returns the manifest (rank 0) or this rank's part.
    """
    return run(RunSettings(source, tuple(variants or ()), Path(out), **options))


def run(settings: RunSettings) -> dict:
    """:func:`analyze` with its settings made already."""
    ranks, device = distributed.setup(settings.device)
    try:
        src = open_source(settings.source, size=settings.input_size)
        plan = _plan(settings, ranks, str(resolve_device(device)), src)
        recorded = _recorded(settings, plan)
        _check_settings(settings.out, recorded, ranks)
        num_shards = plan.shards(settings.shard_size)
        mine = [s for s in range(num_shards) if s % ranks.world == ranks.rank]
        per_variant, timing = {}, {}
        for key, name in zip(plan.keys, plan.names, strict=True):
            per_variant[key], timing[key] = _run_variant(settings, plan, src, key, name, mine)
        everyone = distributed.gather(ranks, timing)
        distributed.barrier(ranks)
        if not ranks.is_main:
            return {"rank": ranks.rank, "timing": timing}
        manifest = _manifest(settings, plan, src, recorded, per_variant, everyone)
        tmp = settings.out / ".manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(tmp, settings.out / "manifest.json")
        return manifest
    finally:
        distributed.teardown(ranks)


def _state_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _variant_info(loaded: LoadedModel, name: str, plan: _Plan, size: int, labels: np.ndarray | None) -> dict:
    """The manifest's record of one variant: its weights (and their hash), preprocessing and classes."""
    return {
        "name": name,
        "architecture": loaded.architecture,
        "weights": {
            "kind": loaded.weights.kind,
            "detail": loaded.weights.detail,
            "tag": loaded.weights.tag,
            "random": loaded.weights.is_random,
            "sha256": _state_hash(loaded.model) if plan.ranks.is_main else None,
        },
        "preprocessing": {**loaded.data_config, "input_size": [3, size, size], "normalised_on": "device"},
        "precision": plan.precision,
        "num_classes": loaded.model.num_classes,
        "class_names": list(loaded.class_names) if loaded.model.num_classes != 1000 else "imagenet-1k",
        "label_map": None if labels is None else labels.tolist(),
    }


def _run_variant(
    settings: RunSettings, plan: _Plan, src: Source, key: str, name: str, mine: list[int]
) -> tuple[dict, dict]:
    """This rank's unfinished shards of one variant → (its manifest record, its timing)."""
    ranks, n, shard_size = plan.ranks, plan.images, settings.shard_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # said once, below and in the manifest
        loaded = load_model(name, settings.weights, plan.device, plan.precision).check_classifier("analyze")
    if loaded.weights.is_random and ranks.is_main:
        print(f"WARNING: {key}: {loaded.weights.describe()}", file=sys.stderr)
    size = settings.input_size or loaded.data_config["input_size"][-1]
    model_names = list(loaded.class_names)
    labels = label_map(src.classes, model_names, loaded.model.num_classes)
    todo = [s for s in mine if not shard_path(settings.out, "rows", key, s).exists()]
    indices = [i for s in todo for i in range(s * shard_size, min(n, (s + 1) * shard_size))]
    info = _variant_info(loaded, name, plan, size, labels)
    info["decode"] = variant_decode(plan.decode, settings.decode, loaded.data_config, size)  # the path that ran
    seconds, startup, done, decoder = 0.0, 0.0, 0, None
    if indices:
        begin = time.perf_counter()
        batch = plan.batch_size if plan.cuda else min(plan.batch_size, len(indices))
        engine = RowEngine(loaded, batch, size, reliance=settings.reliance, unit_maps=settings.unit_maps)
        names = (engine.energy_names, engine.share_names, engine.reliance_names, engine.unit_names)
        info["columns"] = {"energy": names[0], "shares": names[1], "reliance": names[2], "units": names[3]}
        writer = ShardWriter(settings.out, key, src, n, shard_size, names, labels, model_names)
        if info["decode"] == "gpu":  # workers read the files; the device decodes, resizes and crops
            dataset, collate_fn = Encoded(src, indices, loaded.data_config, size), collate
            decoder = DeviceDecoder(src, loaded.data_config, size, plan.device)
        else:
            dataset, collate_fn = Crops(src, indices, loaded.data_config, size), None
        loader = DataLoader(
            dataset,
            batch_size=engine.batch_size,
            num_workers=plan.workers,
            collate_fn=collate_fn,
            pin_memory=plan.cuda,
            prefetch_factor=4 if plan.workers else None,
        )
        label = f"{key} (rank {ranks.rank}/{ranks.world})" if ranks.enabled else key
        quiet = not (settings.progress and ranks.is_main)
        with progress_bar(label, "image", quiet=quiet, every=LOG_EVERY_S) as progress:

            def consume(pending) -> None:
                nonlocal done
                done += _consume(writer, pending)
                if progress is not None:
                    progress(done, len(indices))

            start, pending = None, None
            try:
                for batch in loader:
                    x, idx, batch_labels, errors = decoder(batch) if decoder is not None else batch
                    if start is None:  # the clock runs from the first batch: set-up is timed apart
                        start = time.perf_counter()
                        startup = start - begin
                    submitted = (engine.submit(x), idx.numpy(), batch_labels.numpy(), list(errors))
                    if pending is not None:
                        consume(pending)  # the batch before: its copy back overlapped this one's forward
                    pending = submitted
                if pending is not None:
                    consume(pending)
            finally:
                writer.close()
        seconds = time.perf_counter() - start
        if writer.open:
            raise RuntimeError(f"shards {sorted(writer.open)} of {key} were not completed")
        del engine
        if plan.cuda:
            torch.cuda.empty_cache()
    timing = {"images": done, "seconds": round(seconds, 3), "startup_seconds": round(startup, 3)}
    if decoder is not None:
        timing["decoded"] = dict(decoder.counts)  # on the device, and by PIL (other files, device failures)
    return info, timing


def _consume(writer: ShardWriter, pending) -> int:
    handle, idx, labels, errors = pending
    writer.add(idx, labels, errors, handle.get())
    return len(idx)


def _versions() -> dict[str, str]:
    import pyarrow
    import timm

    from .. import __version__

    return {
        "hrnet_explorer": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "pyarrow": pyarrow.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda or "none",
    }


def _manifest(settings: RunSettings, plan: _Plan, src: Source, recorded: dict, per_variant: dict, everyone) -> dict:
    import pyarrow.parquet as pq

    out, num_shards = settings.out, plan.shards(settings.shard_size)
    for key, info in per_variant.items():
        rows = [shard_path(out, "rows", key, s) for s in range(num_shards)]
        errs = [shard_path(out, "errors", key, s) for s in range(num_shards)]
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
                "units": [c for c in names if c.startswith("unit.")],
            }
    command = settings.command if settings.command is not None else (Path(sys.argv[0]).name, *sys.argv[1:])
    return {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": list(command),
        "settings": recorded,
        "complete": all(v["shards_done"] == num_shards for v in per_variant.values()),
        "source": src.describe(),
        "shards": num_shards,
        "layout": {"rows": "rows/<variant>/shard-NNNNN.parquet", "errors": "errors/<variant>/shard-NNNNN.parquet"},
        "run": {
            "world_size": plan.ranks.world,
            "backend": plan.ranks.backend,
            "device": plan.device,
            "device_name": torch.cuda.get_device_name() if plan.cuda else platform.processor(),
            "batch_size": plan.batch_size,
            "workers_per_rank": plan.workers,
            "decode": plan.decode,  # each variant's "decode" is the path its images took
        },
        "versions": _versions(),
        "variants": per_variant,
    }

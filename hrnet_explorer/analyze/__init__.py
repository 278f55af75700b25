"""Whole datasets: one row per image and variant, written as Parquet shards, on one process or many.

    hrnet-explorer analyze SOURCE --variant V [--variant V2 …] --out DIR [--reliance]
    torchrun --nproc-per-node N -m hrnet_explorer analyze SOURCE … --out DIR
    hrnet_explorer.analyze.analyze(SOURCE, [V, …], DIR, reliance=True)   # the same from Python

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
top-5 run on the device (:class:`~hrnet_explorer.rows.RowEngine`), on CUDA as one CUDA graph per batch,
so only a few hundred numbers per image come back — copied asynchronously while the next batch runs.
Memory is flat in the dataset's length: at most one shard of rows is held.

The package, in the order the data flows: :mod:`.settings` (the run's settings, checked), :mod:`.inputs`
(images to uint8 crops, labels to the model's classes), :mod:`.engine` (the run, the manifest),
:mod:`.parquet` (the schema, the shards, reading them back).
"""

from ..rows import RowEngine
from .engine import FORMAT, analyze, run
from .parquet import read_errors, read_rows, schema
from .settings import DEFAULT_SHARD_SIZE, RunSettings

__all__ = [
    "analyze",
    "run",
    "RunSettings",
    "RowEngine",
    "read_rows",
    "read_errors",
    "schema",
    "FORMAT",
    "DEFAULT_SHARD_SIZE",
]

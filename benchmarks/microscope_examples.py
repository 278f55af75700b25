"""Dataset examples from Parquet: how long the top-k images per unit of one map take over 10,000 lab images.

    python benchmarks/microscope_examples.py [--rows 10000] [--map stage4.module0.fused3] [--units 8]

Writes a run folder in analyze's layout (manifest.json + rows/lab/shard-*.parquet of 2,048 rows) holding the map's
unit columns with random values (reading and ranking do not depend on the values), then times, on this CPU:
reading the map's columns back (:func:`read_channel_stats`), ranking every channel's top 9 (:func:`rank`), and the
examples of one page of ``--units`` units (their top-9 lab images rendered, run up to the map, cropped at the peak).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from hrnet_explorer import load_model
from hrnet_explorer.microscope import column_names, dataset_examples, map_channels, rank, read_channel_stats, run_images


def write_run(root: Path, rows: int, name: str, channels: int, size: int) -> None:
    rng = np.random.default_rng(0)
    for shard, start in enumerate(range(0, rows, 2048)):
        n = min(2048, rows - start)
        columns = {
            "image_id": pa.array([f"lab/test/{i}" for i in range(start, start + n)]),
            "label": pa.array((np.arange(start, start + n) % 10).astype(np.int32)),
        }
        for col in column_names(name, channels):
            stat = col.rsplit(".", 1)[1]
            v = rng.integers(0, 7, n) if stat in ("y", "x") else rng.random(n)
            columns[col] = pa.array(v.astype(np.float32))
        path = root / "rows" / "lab" / f"shard-{shard:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), path)
    variant = {"architecture": "hrnet_w18_small", "preprocessing": {"input_size": [3, size, size]}}
    manifest = {"settings": {"source": f"lab:{rows}", "input_size": size}, "variants": {"lab": variant}}
    (root / "manifest.json").write_text(json.dumps(manifest))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--map", default="stage4.module0.fused3")
    parser.add_argument("--units", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(2)
    lab = load_model("lab", device="cpu")
    channels = map_channels(lab)[args.map]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_run(root, args.rows, args.map, channels, 224)
        t0 = time.perf_counter()
        stats = read_channel_stats(root, args.map)
        t1 = time.perf_counter()
        rank(stats, 9)
        t2 = time.perf_counter()
        examples = dataset_examples(lab, stats, run_images(root, lab, stats), list(range(args.units)), k=9)
        t3 = time.perf_counter()
    record = {
        "cpu": "this machine's, 2 threads",
        "rows": args.rows,
        "map": args.map,
        "channels": channels,
        "read_s": round(t1 - t0, 3),
        "rank_all_channels_top9_s": round(t2 - t1, 3),
        "examples_units": args.units,
        "examples_images": len({e.index for found in examples.values() for e in found}),
        "examples_s": round(t3 - t2, 3),
        "total_s": round(t3 - t0, 3),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()

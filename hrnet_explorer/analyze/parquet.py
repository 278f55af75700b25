"""What ``analyze`` writes and reads back: the rows' Arrow schema, the shards (each written whole), the errors.

Layout of the output folder::

    rows/<variant>/shard-00000.parquet    rows of images [0, S), [S, 2S), … (S = the shard size)
    errors/<variant>/shard-00000.parquet  image_id, variant, error: images that could not be read
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..sources import Source

__all__ = ["schema", "read_rows", "read_errors"]


def schema(
    energy_names: Sequence[str],
    share_names: Sequence[str],
    reliance_names: Sequence[str] = (),
    unit_names: Sequence[str] = (),
):
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
    fields += [(n, pa.float32()) for n in (*energy_names, *share_names, *reliance_names, *unit_names)]
    return pa.schema(fields)


def _error_schema():
    import pyarrow as pa

    return pa.schema([("image_id", pa.string()), ("variant", pa.string()), ("error", pa.string())])


def shard_path(out: Path, table: str, variant: str, shard: int) -> Path:
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


class ShardWriter:
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
        keys = ("energy", "shares", "reliance", "units")  # units: microscope.stats columns, when asked for
        for key, names in zip(keys, self.names, strict=False):
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
            _write_atomic(errors, shard_path(self.out, "errors", self.variant, shard))
        _write_atomic(self._table(buf["rows"]), shard_path(self.out, "rows", self.variant, shard))


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

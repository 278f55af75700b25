"""The HTML report of an ``analyze`` run: its rows reduced to a few numbers per class, module and edge (here), drawn
by :mod:`hrnet_explorer.figures.dataset`, with a summary table, the images each knockout changes most, and the
images that could not be read.

    dataset_report("runs/imagenette")    # → runs/imagenette/report.html
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import MissingFileError
from ..zoo.weights import public_detail
from .page import SHARE_NOTES, esc, figure_html, render_page, table, write

if TYPE_CHECKING:
    import pyarrow as pa

    from ..figures.dataset import ClassCounts, ClassReliance, EdgeQuartiles, GroupAccuracy, StreamEnergy

__all__ = [
    "dataset_report",
    "accuracy_by",
    "top_classes",
    "stream_energy",
    "edge_quartiles",
    "class_reliance",
]

Tables = dict[str, "pa.Table"]  # variant → its rows (hrnet_explorer.analyze.read_rows)


def _columns(t: pa.Table, prefix: str) -> list[str]:
    return [c for c in t.column_names if c.startswith(prefix)]


def _values(t: pa.Table, name: str, dtype=np.float64) -> np.ndarray:
    """Column ``name`` as an array, nulls as NaN."""
    col = t.column(name)
    if col.null_count:
        return np.array([np.nan if v is None else v for v in col.to_pylist()], dtype=dtype)
    return col.to_numpy().astype(dtype)


def _group_mean(keys: np.ndarray, values: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    """Per distinct key: mean of values (NaN ignored) and count."""
    uniq = sorted(set(keys.tolist()), key=lambda k: (str(type(k)), k))
    means, counts = [], []
    for k in uniq:
        v = values[keys == k]
        v = v[~np.isnan(v)]
        means.append(v.mean() if len(v) else np.nan)
        counts.append(len(v))
    return uniq, np.array(means), np.array(counts)


def _labelled(tables: Tables) -> Tables:
    """The variants with at least one row whose label names one of the model's classes."""
    return {k: t for k, t in tables.items() if t.num_rows and t.column("correct").null_count < t.num_rows}


def accuracy_by(tables: Tables, families: dict[str, str] | None = None) -> list[GroupAccuracy]:
    """Each labelled variant's top-1 accuracy per true class, or per family when ``families`` maps class →
    family (the lab's; classes it does not name count as "(other)")."""
    from ..figures.dataset import GroupAccuracy

    out = []
    for key, t in _labelled(tables).items():
        names = np.array([n if n is not None else "(none)" for n in t.column("label_name").to_pylist()], dtype=object)
        if families is not None:
            names = np.array([families.get(n, "(other)") for n in names], dtype=object)
        groups, acc, counts = _group_mean(names, _values(t, "correct"))
        out.append(GroupAccuracy(key, groups, acc, counts))
    return out


def top_classes(tables: Tables, n: int = 20) -> list[ClassCounts]:
    """Each variant's ``n`` most predicted classes and how many images each got."""
    from ..figures.dataset import ClassCounts

    out = []
    for key, t in tables.items():
        if not t.num_rows:
            continue
        names, counts = np.unique(np.array(t.column("top1_name").to_pylist(), dtype=object), return_counts=True)
        order = np.argsort(-counts)[:n]
        out.append(ClassCounts(key, [str(names[o]) for o in order], counts[order]))
    return out


def stream_energy(tables: Tables) -> list[StreamEnergy]:
    """Each variant's mean energy of every stream at every module's output (its ``energy.*`` columns)."""
    from ..figures.dataset import StreamEnergy

    out = []
    for key, t in tables.items():
        cols = _columns(t, "energy.")
        if not t.num_rows or not cols:
            continue
        by_stream: dict[int, tuple[list, list]] = {}
        for c in cols:
            _, stage, module, stream = c.split(".")
            s = int(stream.removeprefix("stream"))
            by_stream.setdefault(s, ([], []))
            by_stream[s][0].append(f"{stage}.{module}")
            by_stream[s][1].append(float(np.nanmean(_values(t, c))))
        out += [StreamEnergy(key, s, x, y) for s, (x, y) in sorted(by_stream.items())]
    return out


def _last_stage4(columns: Sequence[str]) -> str | None:
    modules = sorted({c.split(".")[2] for c in columns if c.startswith("energy_share.stage4.")})
    return modules[-1] if modules else None


def edge_quartiles(tables: Tables, measure: str) -> list[EdgeQuartiles]:
    """Each variant's distribution of ``measure`` over all images per fuse edge of its last stage-4 module."""
    from ..figures.dataset import EdgeQuartiles

    out = []
    for key, t in tables.items():
        module = _last_stage4(t.column_names)
        if not t.num_rows or module is None:
            continue
        labels, stats = [], []
        for c in _columns(t, f"{measure}.stage4.{module}."):
            j, i = c.rsplit(".", 1)[1].removeprefix("edge").split("to")
            values = _values(t, c)
            values = values[~np.isnan(values)]
            if not len(values):
                continue
            labels.append(f"{j}→{i}")
            stats.append((*np.percentile(values, [25, 50, 75, 2.5, 97.5]), values.mean()))
        if labels:
            q1, med, q3, lo, hi, mean = (list(s) for s in zip(*stats, strict=True))
            out.append(EdgeQuartiles(key, module, labels, q1, med, q3, lo, hi, mean))
    return out


def _with_reliance(tables: Tables) -> Tables:
    return {k: t for k, t in tables.items() if t.num_rows and _columns(t, "reliance.")}


def class_reliance(tables: Tables, max_classes: int = 30) -> list[ClassReliance]:
    """Each variant's mean change of the top-1 probability per knockout (its ``reliance.*`` columns), per true
    class (per predicted class when no row is labelled), for its ``max_classes`` most frequent classes."""
    from ..figures.dataset import ClassReliance

    out = []
    for key, t in _with_reliance(tables).items():
        cols = _columns(t, "reliance.")
        labelled = t.column("label").null_count < t.num_rows
        keys = t.column("label_name" if labelled else "top1_name").to_pylist()
        keys = np.array(["(none)" if k is None else k for k in keys], dtype=object)
        names, counts = np.unique(keys, return_counts=True)
        names = names[np.argsort(-counts)][:max_classes]
        delta = np.array([[np.nanmean(_values(t, c)[keys == n]) for c in cols] for n in names])
        out.append(ClassReliance(key, [c.split(".", 1)[1] for c in cols], [str(n) for n in names], delta, labelled))
    return out


def _thumbnail_loader(manifest: dict) -> Callable[[str], str | None]:
    """image_id → a data: URI of a small JPEG, or None when the source cannot be opened here."""
    from ..sources import open_source

    src_info = manifest.get("source") or {}
    try:
        source = open_source(src_info["spec"], size=src_info.get("size"))
    except Exception:  # the data moved, or a package is missing: the tables go without pictures
        return lambda image_id: None

    def load(image_id: str) -> str | None:
        try:
            image, _ = source.load(source.index_of(image_id))
            image = image.convert("RGB")
            image.thumbnail((112, 112))
            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=80)
            return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
        except Exception:  # one unreadable image: its row goes without a picture
            return None

    return load


def _knockout_tables(tables: Tables, manifest: dict, per_stream: int = 8) -> str:
    """Per variant and knockout: the ``per_stream`` images whose top-1 probability it changes most."""
    thumb = _thumbnail_loader(manifest)
    parts = []
    for key, t in _with_reliance(tables).items():
        ids = t.column("image_id").to_pylist()
        labels = t.column("label_name").to_pylist()
        top1 = t.column("top1_name").to_pylist()
        prob = _values(t, "top1_prob")
        for c in _columns(t, "reliance."):
            delta = _values(t, c)
            rows = []
            for r in np.argsort(-np.abs(np.nan_to_num(delta)))[:per_stream]:
                uri = thumb(ids[r])
                pic = f'<img class="thumb" src="{uri}" alt="">' if uri else ""
                rows.append(
                    [pic, esc(ids[r]), esc(labels[r] or "—"), esc(top1[r]), f"{prob[r]:.1%}", f"{delta[r]:+.1%}"]
                )
            body = table(
                ["", "image", "label", "top-1", "top-1 p", "Δ top-1 p"], rows, [False, False, False, False, True, True]
            )
            parts.append(f"<div><h3>{esc(key)} · {esc(c.split('.', 1)[1])} knocked out</h3>{body}</div>")
    return '<div class="tables">' + "\n".join(parts) + "</div>"


def _accuracy_sections(tables: Tables, manifest: dict) -> list[tuple[str, str, str]]:
    from ..figures.dataset import accuracy_figure

    if not _labelled(tables):
        return [
            (
                "Accuracy",
                "No row has a label that names one of the model's classes (a flat folder, or classes that are not "
                "the model's), so there is no accuracy to show. The predicted classes are below.",
                "",
            )
        ]
    sections = [
        (
            "Accuracy per class",
            "Share of the images of each class whose top-1 prediction is that class (rows with a label the model "
            "knows).",
            figure_html(accuracy_figure(accuracy_by(tables)), "accuracy-per-class"),
        )
    ]
    families = (manifest.get("source") or {}).get("families") or {}
    if families:
        sections.append(
            (
                "Accuracy per family",
                "The lab's families: <i>fine</i> classes are told apart by detail only the high-resolution streams "
                "see; <i>coarse</i> classes by region shapes.",
                figure_html(accuracy_figure(accuracy_by(tables, families), by="family"), "accuracy-per-family"),
            )
        )
    return sections


def _weights_text(weights: dict, name: str) -> str:
    """The weights as a shared page shows them: a checkpoint by its model's name and content hash, never by its
    path on the machine that ran analyze (the run's manifest keeps that); a hub tag and random weights as they are."""
    kind, sha = weights.get("kind", "?"), weights.get("sha256")
    detail = public_detail(kind, weights.get("detail", "?"), name)
    if kind == "file" and sha:
        detail += f" (sha256 {sha[:12]})"
    return ("RANDOM · " if weights.get("random") else "") + f"{kind}: {detail}"


def _summary_table(tables: Tables, infos: dict, settings: dict) -> str:
    rows = []
    for v, t in tables.items():
        info = infos.get(v, {})
        correct = t.column("correct") if t.num_rows else None
        known = t.num_rows - correct.null_count if correct is not None else 0
        acc = f"{np.nansum(_values(t, 'correct')) / known:.1%}" if known else "—"
        weights = _weights_text(info.get("weights") or {}, info.get("name", v))
        speed = (info.get("this_run") or {}).get("images_per_s")
        rows.append(
            [
                esc(v),
                f"{t.num_rows:,}",
                f"{info.get('errors', 0):,}",
                acc,
                f"{np.nanmean(_values(t, 'top1_prob')):.1%}" if t.num_rows else "—",
                esc(weights),
                esc(info.get("precision", settings.get("precision"))),
                f"{speed:,.0f}" if speed else "—",
            ]
        )
    return table(
        ["variant", "rows", "errors", "top-1 accuracy", "mean top-1 p", "weights", "precision", "images/s (this run)"],
        rows,
        [False, True, True, True, True, False, False, True],
    )


def dataset_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """The HTML report of an ``analyze`` run in ``run_dir`` (default out: ``run_dir/report.html``)."""
    from ..analyze import read_errors, read_rows
    from ..figures.dataset import confidence_figure, energy_figure, reliance_figure, shares_figure, top_classes_figure

    run_dir = Path(run_dir)
    manifest_path = run_dir / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    elif (run_dir / "run.json").exists():
        manifest = {"settings": json.loads((run_dir / "run.json").read_text()), "variants": {}, "complete": False}
    else:
        raise MissingFileError(f"{run_dir} holds no analyze run (no manifest.json or run.json).")
    variants = list(manifest.get("variants") or manifest["settings"]["variants"])
    tables = {v: read_rows(run_dir, v) for v in variants}
    errors = read_errors(run_dir)
    settings = manifest["settings"]
    infos = manifest.get("variants") or {}

    sections = [("Summary", "", _summary_table(tables, infos, settings))]
    sections += _accuracy_sections(tables, manifest)
    top1 = {k: _values(t, "top1_prob") for k, t in tables.items() if t.num_rows}
    sections.append(
        (
            "Predictions",
            "",
            figure_html(confidence_figure(top1), "confidence")
            + figure_html(top_classes_figure(top_classes(tables)), "top-classes"),
        )
    )
    sections.append(
        (
            "Stream energy",
            "The mean square of each stream's fused output, module by module (stream 0 is the highest resolution).",
            figure_html(energy_figure(stream_energy(tables)), "energy"),
        )
    )
    for measure in ("energy_share", "agreement", "relu_share"):
        boxes = edge_quartiles(tables, measure)
        if boxes:
            fig = figure_html(shares_figure(boxes, measure), f"shares-{measure}")
            sections.append((f"Fusion: {measure.replace('_', ' ')}", SHARE_NOTES[measure], fig))
    reliance = class_reliance(tables)
    if reliance:
        sections.append(
            (
                "Stream reliance",
                "Each final stream k knocked out in every module (its fuse edges into the other streams zeroed): the "
                "change of the probability of the class the intact network chose. Negative: the class needs that "
                "stream.",
                figure_html(reliance_figure(reliance), "reliance-by-class"),
            )
        )
        sections.append(("The images each knockout changes most", "", _knockout_tables(tables, manifest)))
    else:
        sections.append(("Stream reliance", "Run <code>analyze --reliance</code> to knock out each stream.", ""))
    if errors.num_rows:
        err_rows = [[esc(r["image_id"]), esc(r["variant"]), esc(r["error"])] for r in errors.slice(0, 50).to_pylist()]
        more = f"<p class='note'>… and {errors.num_rows - 50:,} more.</p>" if errors.num_rows > 50 else ""
        sections.append(("Images that could not be read", "", table(["image", "variant", "error"], err_rows) + more))

    source = manifest.get("source") or {"spec": settings.get("source")}
    versions = manifest.get("versions") or {}
    run = manifest.get("run") or {}
    meta = (
        f"Source <b>{esc(source.get('spec'))}</b> · {settings.get('images', '?'):,} images · variants "
        f"{esc(', '.join(variants))} · {run.get('world_size', 1)} process(es) on {esc(run.get('device', '?'))} "
        f"({esc(run.get('device_name', ''))}) · written {esc(manifest.get('created', '?'))}<br>"
        + " · ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items())
    )
    warning = ""
    random_variants = [v for v, i in infos.items() if (i.get("weights") or {}).get("random")]
    if random_variants:
        warning = (
            f"<b>Random weights</b> for {esc(', '.join(random_variants))}: their predictions, shares and reliance "
            "show the machinery, not a trained network."
        )
    if not manifest.get("complete", False):
        warning += (" " if warning else "") + "<b>Incomplete run</b>: some shards are missing; rerun analyze to finish."
    page = render_page(f"HRNet Explorer · {source.get('spec')}", meta, sections, warning)
    return write(Path(out) if out else run_dir / "report.html", page)

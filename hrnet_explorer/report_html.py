"""Self-contained HTML reports: of a whole `analyze` run, or of one image.

    hrnet-explorer report DIR --out report.html                   # what `analyze` wrote into DIR
    hrnet-explorer report IMAGE --variant V --out report.html     # every figure of the app for one image

Each report is one HTML file with Plotly's JavaScript inline: it opens offline, from disk or from an
e-mail, with nothing fetched. The one-image report also writes the trace beside it: ``report.safetensors``
(the kept maps, float32, by trace name) and ``report.json`` (a manifest: model, weights, preprocessing, the
prediction, every module's fusion matrices, and the shape of every map).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError, MissingFileError

if TYPE_CHECKING:  # plotly is imported where a page is drawn: `analyze` and the CLI run without it
    import plotly.graph_objects as go

# The explorer's stream colours (figures.STREAM_COLORS), here without importing plotly.
STREAM_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")

__all__ = ["dataset_report", "image_report", "render_page"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 24px 48px; color: #1d1d1f; }
header { border-bottom: 1px solid #ddd; margin-bottom: 16px; }
h1 { font-size: 1.6em; margin: 24px 0 4px; } h2 { font-size: 1.25em; margin-top: 32px; }
.meta { color: #555; font-size: 0.92em; line-height: 1.5; }
.warning { background: #fff3cd; border: 1px solid #e0b000; padding: 10px 14px; border-radius: 6px; margin: 12px 0; }
.note { color: #555; font-size: 0.92em; max-width: 900px; }
table { border-collapse: collapse; font-size: 0.9em; margin: 8px 0 16px; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 4px 10px; text-align: left; vertical-align: middle; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.thumb { width: 56px; height: 56px; object-fit: cover; border-radius: 3px; }
.figure { margin: 8px 0 24px; }
.tables { display: flex; flex-wrap: wrap; gap: 8px 32px; } h3 { font-size: 1em; margin: 12px 0 4px; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_page(title: str, meta: str, sections: Sequence[tuple[str, str, str]], warning: str = "") -> str:
    """One HTML page: ``sections`` are (heading, note, body HTML); Plotly's JS is inlined once, in the head."""
    from plotly.offline import get_plotlyjs

    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{_CSS}</style>",
        f'<script type="text/javascript">{get_plotlyjs()}</script>',
        "</head><body>",
        f'<header><h1>{_esc(title)}</h1><p class="meta">{meta}</p></header>',
    ]
    if warning:
        parts.append(f'<div class="warning" role="alert">{warning}</div>')
    for k, (heading, note, body) in enumerate(sections):
        parts.append(f'<section id="section-{k}"><h2>{_esc(heading)}</h2>')
        if note:
            parts.append(f'<p class="note">{note}</p>')
        parts.append(body + "</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _figure_html(fig: go.Figure, div_id: str) -> str:
    import plotly.io as pio

    body = pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )
    return f'<div class="figure">{body}</div>'


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool] | None = None) -> str:
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if n else f"<td>{c}</td>" for c, n in zip(r, numeric, strict=False))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _write(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ============================================================================= the report of an analyze run


def _columns(table, prefix: str) -> list[str]:
    return [c for c in table.column_names if c.startswith(prefix)]


def _np(table, name: str, dtype=np.float64) -> np.ndarray:
    col = table.column(name)
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


def _accuracy_figures(tables: dict, manifest: dict) -> list[tuple[str, str, str]]:
    import plotly.graph_objects as go

    sections = []
    labelled = {k: t for k, t in tables.items() if t.num_rows and t.column("correct").null_count < t.num_rows}
    if not labelled:
        return [
            (
                "Accuracy",
                "No row has a label that names one of the model's classes (a flat folder, or classes that are not "
                "the model's), so there is no accuracy to show. The predicted classes are below.",
                "",
            )
        ]
    fig = go.Figure()
    fam_fig = go.Figure()
    families = (manifest.get("source") or {}).get("families") or {}
    for k, (key, t) in enumerate(labelled.items()):
        names = np.array([n if n is not None else "(none)" for n in t.column("label_name").to_pylist()], dtype=object)
        correct = _np(t, "correct")
        classes, acc, counts = _group_mean(names, correct)
        color = STREAM_COLORS[k % len(STREAM_COLORS)]
        fig.add_trace(
            go.Bar(
                name=key,
                x=classes,
                y=acc,
                marker_color=color,
                customdata=counts,
                hovertemplate=f"{key}<br>%{{x}}: %{{y:.1%}} of %{{customdata}} images<extra></extra>",
            )
        )
        if families:
            fams = np.array([families.get(n, "(other)") for n in names], dtype=object)
            groups, facc, fcounts = _group_mean(fams, correct)
            fam_fig.add_trace(
                go.Bar(
                    name=key,
                    x=groups,
                    y=facc,
                    marker_color=color,
                    customdata=fcounts,
                    hovertemplate=f"{key}<br>%{{x}}: %{{y:.1%}} of %{{customdata}} images<extra></extra>",
                )
            )
    fig.update_layout(
        title="Top-1 accuracy per class",
        barmode="group",
        yaxis=dict(title="top-1 accuracy", tickformat=".0%", range=[0, 1]),
        xaxis=dict(title="true class"),
        height=420,
    )
    sections.append(
        (
            "Accuracy per class",
            "Share of the images of each class whose top-1 prediction is that class (rows with a label the model "
            "knows).",
            _figure_html(fig, "accuracy-per-class"),
        )
    )
    if families:
        fam_fig.update_layout(
            title="Top-1 accuracy per family",
            barmode="group",
            yaxis=dict(title="top-1 accuracy", tickformat=".0%", range=[0, 1]),
            xaxis=dict(title="family"),
            height=360,
        )
        sections.append(
            (
                "Accuracy per family",
                "The lab's families: <i>fine</i> classes are told apart by detail only the high-resolution streams "
                "see; <i>coarse</i> classes by region shapes.",
                _figure_html(fam_fig, "accuracy-per-family"),
            )
        )
    return sections


def _predictions_figure(tables: dict) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    for k, (key, t) in enumerate(tables.items()):
        if not t.num_rows:
            continue
        fig.add_trace(
            go.Histogram(
                x=_np(t, "top1_prob"),
                name=key,
                xbins=dict(start=0, end=1, size=0.02),
                marker_color=STREAM_COLORS[k % len(STREAM_COLORS)],
                opacity=0.7,
            )
        )
    fig.update_layout(
        title="Confidence: the top-1 probability of every image",
        barmode="overlay",
        xaxis=dict(title="top-1 softmax probability", tickformat=".0%"),
        yaxis=dict(title="images"),
        height=360,
    )
    return _figure_html(fig, "confidence")


def _energy_figure(tables: dict) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    for v, (key, t) in enumerate(tables.items()):
        cols = _columns(t, "energy.")
        if not t.num_rows or not cols:
            continue
        by_stream: dict[int, tuple[list, list]] = {}
        for c in cols:
            _, stage, module, stream = c.split(".")
            s = int(stream.removeprefix("stream"))
            by_stream.setdefault(s, ([], []))
            by_stream[s][0].append(f"{stage}.{module}")
            by_stream[s][1].append(float(np.nanmean(_np(t, c))))
        dash = ("solid", "dash", "dot", "dashdot")[v % 4]
        for s, (x, y) in sorted(by_stream.items()):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines+markers",
                    name=f"{key} · stream {s}",
                    line=dict(color=STREAM_COLORS[s % 4], dash=dash),
                    hovertemplate=f"{key} stream {s}<br>%{{x}}: %{{y:.4g}}<extra></extra>",
                )
            )
    order = sorted({x for d in fig.data for x in d.x}, key=lambda m: tuple(int(p) for p in re.findall(r"\d+", m)))
    fig.update_layout(
        title="Mean energy of every stream at every module's output",
        xaxis=dict(title="module (forward order)", categoryorder="array", categoryarray=order),
        yaxis=dict(title="mean of fused² (log scale)", type="log"),
        height=420,
    )
    return _figure_html(fig, "energy")


def _last_stage4(columns: Sequence[str]) -> str | None:
    modules = sorted({c.split(".")[2] for c in columns if c.startswith("energy_share.stage4.")})
    return modules[-1] if modules else None


def _shares_figure(tables: dict, measure: str) -> str | None:
    """Box plots of one measure over all images, per edge of the last stage-4 module, per variant
    (quartiles computed here: the page carries five numbers per box, not every row)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for v, (key, t) in enumerate(tables.items()):
        module = _last_stage4(t.column_names)
        if not t.num_rows or module is None:
            continue
        cols = [c for c in t.column_names if c.startswith(f"{measure}.stage4.{module}.")]
        labels, stats = [], []
        for c in cols:
            edge = c.rsplit(".", 1)[1].removeprefix("edge")
            j, i = edge.split("to")
            values = _np(t, c)
            values = values[~np.isnan(values)]
            if not len(values):
                continue
            q1, med, q3 = np.percentile(values, [25, 50, 75])
            lo, hi = np.percentile(values, [2.5, 97.5])
            labels.append(f"{j}→{i}")
            stats.append((q1, med, q3, lo, hi, values.mean()))
        if not labels:
            continue
        q1, med, q3, lo, hi, mean = (list(s) for s in zip(*stats, strict=True))
        fig.add_trace(
            go.Box(
                name=f"{key} ({module})",
                x=labels,
                q1=q1,
                median=med,
                q3=q3,
                lowerfence=lo,
                upperfence=hi,
                mean=mean,
                marker_color=STREAM_COLORS[v % len(STREAM_COLORS)],
            )
        )
    if not fig.data:
        return None
    fig.update_layout(
        title=f"{measure.replace('_', ' ')} of each fuse edge (source→target) of the last stage-4 module, all images",
        boxmode="group",
        xaxis=dict(title="edge source→target"),
        yaxis=dict(title=f"{measure.replace('_', ' ')} (box: quartiles; whiskers: 2.5–97.5 %)"),
        height=440,
    )
    return _figure_html(fig, f"shares-{measure}")


def _reliance_figure(tables: dict) -> str | None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    with_reliance = {k: t for k, t in tables.items() if t.num_rows and _columns(t, "reliance.")}
    if not with_reliance:
        return None
    fig = make_subplots(rows=1, cols=len(with_reliance), subplot_titles=list(with_reliance), horizontal_spacing=0.12)
    for v, t in enumerate(with_reliance.values()):
        cols = _columns(t, "reliance.")
        labelled = t.column("label").null_count < t.num_rows
        keys = np.array(
            t.column("label_name" if labelled else "top1_name").to_pylist(),
            dtype=object,
        )
        keys = np.array(["(none)" if k is None else k for k in keys], dtype=object)
        names, counts = np.unique(keys, return_counts=True)
        names = names[np.argsort(-counts)][:30]
        z = np.array([[np.nanmean(_np(t, c)[keys == n]) for c in cols] for n in names])
        fig.add_trace(
            go.Heatmap(
                z=z,
                x=[c.split(".", 1)[1] for c in cols],
                y=[str(n) for n in names],
                coloraxis="coloraxis",
                hovertemplate="%{y} · %{x} knocked out<br>mean Δ top-1 probability %{z:+.4f}<extra></extra>",
            ),
            1,
            v + 1,
        )
        fig.update_yaxes(title_text="true class" if labelled else "predicted class", row=1, col=v + 1)
    zmax = float(np.nanmax(np.abs([d.z for d in fig.data]))) or 1.0
    fig.update_layout(
        title="Stream reliance by class: the mean change of the top-1 probability when a stream is knocked out",
        coloraxis=dict(colorscale="RdBu", cmin=-zmax, cmax=zmax, colorbar=dict(title="Δp")),
        height=max(360, 80 + 22 * max(len(d.y) for d in fig.data)),
    )
    return _figure_html(fig, "reliance-by-class")


def _thumbnail_loader(manifest: dict):
    """image_id → a data: URI of a small JPEG, or None when the source cannot be opened here."""
    from .sources import open_source

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
        except Exception:
            return None

    return load


def _knockout_tables(tables: dict, manifest: dict, per_stream: int = 8) -> str | None:
    with_reliance = {k: t for k, t in tables.items() if t.num_rows and _columns(t, "reliance.")}
    if not with_reliance:
        return None
    thumb = _thumbnail_loader(manifest)
    parts = []
    for key, t in with_reliance.items():
        ids = t.column("image_id").to_pylist()
        labels = t.column("label_name").to_pylist()
        top1 = t.column("top1_name").to_pylist()
        prob = _np(t, "top1_prob")
        for c in _columns(t, "reliance."):
            delta = _np(t, c)
            order = np.argsort(-np.abs(np.nan_to_num(delta)))[:per_stream]
            rows = []
            for r in order:
                uri = thumb(ids[r])
                pic = f'<img class="thumb" src="{uri}" alt="">' if uri else ""
                rows.append(
                    [pic, _esc(ids[r]), _esc(labels[r] or "—"), _esc(top1[r]), f"{prob[r]:.1%}", f"{delta[r]:+.1%}"]
                )
            table = _table(
                ["", "image", "label", "top-1", "top-1 p", "Δ top-1 p"], rows, [False, False, False, False, True, True]
            )
            parts.append(f"<div><h3>{_esc(key)} · {_esc(c.split('.', 1)[1])} knocked out</h3>{table}</div>")
    return '<div class="tables">' + "\n".join(parts) + "</div>"


def _top_classes_figure(tables: dict) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    for v, (key, t) in enumerate(tables.items()):
        if not t.num_rows:
            continue
        names, counts = np.unique(np.array(t.column("top1_name").to_pylist(), dtype=object), return_counts=True)
        order = np.argsort(-counts)[:20]
        fig.add_trace(
            go.Bar(
                name=key,
                x=[str(names[o]) for o in order],
                y=counts[order],
                marker_color=STREAM_COLORS[v % len(STREAM_COLORS)],
            )
        )
    fig.update_layout(
        title="The most predicted classes (top 20 per variant)",
        barmode="group",
        xaxis=dict(title="predicted class"),
        yaxis=dict(title="images"),
        height=420,
    )
    return _figure_html(fig, "top-classes")


def dataset_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """The HTML report of an ``analyze`` run in ``run_dir`` (default out: ``run_dir/report.html``)."""
    from .analyze import read_errors, read_rows

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

    rows = []
    for v, t in tables.items():
        info = infos.get(v, {})
        correct = t.column("correct") if t.num_rows else None
        known = t.num_rows - correct.null_count if correct is not None else 0
        acc = f"{np.nansum(_np(t, 'correct')) / known:.1%}" if known else "—"
        w = info.get("weights") or {}
        weights = ("RANDOM · " if w.get("random") else "") + f"{w.get('kind', '?')}: {w.get('detail', '?')}"
        speed = (info.get("this_run") or {}).get("images_per_s")
        rows.append(
            [
                _esc(v),
                f"{t.num_rows:,}",
                f"{info.get('errors', 0):,}",
                acc,
                f"{np.nanmean(_np(t, 'top1_prob')):.1%}" if t.num_rows else "—",
                _esc(weights),
                _esc(info.get("precision", settings.get("precision"))),
                f"{speed:,.0f}" if speed else "—",
            ]
        )
    summary = _table(
        ["variant", "rows", "errors", "top-1 accuracy", "mean top-1 p", "weights", "precision", "images/s (this run)"],
        rows,
        [False, True, True, True, True, False, False, True],
    )
    sections = [("Summary", "", summary)]
    sections += _accuracy_figures(tables, manifest)
    sections.append(("Predictions", "", _predictions_figure(tables) + _top_classes_figure(tables)))
    sections.append(
        (
            "Stream energy",
            "The mean square of each stream's fused output, module by module (stream 0 is the highest resolution).",
            _energy_figure(tables),
        )
    )
    for measure in ("energy_share", "agreement", "relu_share"):
        fig = _shares_figure(tables, measure)
        if fig:
            sections.append((f"Fusion: {measure.replace('_', ' ')}", _SHARE_NOTES[measure], fig))
    fig = _reliance_figure(tables)
    if fig:
        sections.append(
            (
                "Stream reliance",
                "Each final stream k knocked out in every module (its fuse edges into the other streams zeroed): the "
                "change of the probability of the class the intact network chose. Negative: the class needs that "
                "stream.",
                fig,
            )
        )
        sections.append(("The images each knockout changes most", "", _knockout_tables(tables, manifest)))
    else:
        sections.append(("Stream reliance", "Run <code>analyze --reliance</code> to knock out each stream.", ""))
    if errors.num_rows:
        err_rows = [
            [_esc(r["image_id"]), _esc(r["variant"]), _esc(r["error"])] for r in errors.slice(0, 50).to_pylist()
        ]
        more = f"<p class='note'>… and {errors.num_rows - 50:,} more.</p>" if errors.num_rows > 50 else ""
        sections.append(("Images that could not be read", "", _table(["image", "variant", "error"], err_rows) + more))

    source = manifest.get("source") or {"spec": settings.get("source")}
    versions = manifest.get("versions") or {}
    run = manifest.get("run") or {}
    meta = (
        f"Source <b>{_esc(source.get('spec'))}</b> · {settings.get('images', '?'):,} images · variants "
        f"{_esc(', '.join(variants))} · {run.get('world_size', 1)} process(es) on {_esc(run.get('device', '?'))} "
        f"({_esc(run.get('device_name', ''))}) · written {_esc(manifest.get('created', '?'))}<br>"
        + " · ".join(f"{_esc(k)} {_esc(v)}" for k, v in versions.items())
    )
    warning = ""
    random_variants = [v for v, i in infos.items() if (i.get("weights") or {}).get("random")]
    if random_variants:
        warning = (
            f"<b>Random weights</b> for {_esc(', '.join(random_variants))}: their predictions, shares and reliance "
            "show the machinery, not a trained network."
        )
    if not manifest.get("complete", False):
        warning += (" " if warning else "") + "<b>Incomplete run</b>: some shards are missing; rerun analyze to finish."
    page = render_page(f"HRNet Explorer · {source.get('spec')}", meta, sections, warning)
    return _write(Path(out) if out else run_dir / "report.html", page)


_SHARE_NOTES = {
    "energy_share": "‖e_ij‖² / Σ_k ‖e_ik‖²: how loud each source stream is in the sum that forms the target stream.",
    "agreement": "⟨e_ij, z_i⟩ / ‖z_i‖²: each source's part of the pre-activation sum; negative when it opposes it.",
    "relu_share": "⟨e_ij, ReLU(z_i)⟩ / ‖ReLU(z_i)‖²: each source's part of what survives the activation.",
}


# ============================================================================= the report of one image


def image_report(
    image,
    variant: str = "hrnet_w18_small",
    out: str | Path = "report.html",
    *,
    weights: str = "default",
    device: str | None = "auto",
    input_size: int | None = None,
    keep: str = "outputs",
    ig_steps: int = 32,
    loaded=None,
    progress=None,
) -> dict[str, Path]:
    """Every figure of the app for ``image``, in one HTML file; the trace beside it (safetensors + JSON).

    ``keep``: the maps saved — "outputs" (every stream's output and the head; default) or "all" (also every
    branch, fuse edge and pre-activation). ``loaded``: a :class:`~hrnet_explorer.zoo.LoadedModel` to use
    instead of loading ``variant``. ``progress(done, total)``, if given, is called as the work goes: one step
    per phase (trace, figures, writing), one per batch of each attribution; the total grows as each attribution
    starts and says how many batches it runs. Returns the paths written: html, safetensors, json.
    """
    from safetensors.torch import save_file

    from . import attribution as attr
    from . import figures as F
    from .costs import variant_costs
    from .analyses import decompose, fusion_flows
    from .fusion import MEASURES
    from .images import display_crop, preprocess, read_image
    from .predict import predict
    from .hooks import is_intermediate
    from .trace import trace
    from .zoo import RandomWeightsWarning, load_model

    if keep not in ("outputs", "all"):
        raise InputError(f"keep must be 'outputs' or 'all', not {keep!r}.")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out must end in .html; got {str(out)!r}.")
    if loaded is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            loaded = load_model(variant, weights, device)
    name = getattr(loaded, "name", loaded.variant.name)
    steps = _Phases(progress, 8)  # trace, figures, saliency, ig, Grad-CAM, stream shares, knockouts, writing
    picture = read_image(image)
    x = preprocess(picture, loaded.data_config, input_size)
    crop = display_crop(picture, loaded.data_config, input_size)
    prediction = predict(loaded, x)
    result = trace(loaded, x, keep="all", store="cpu")
    stage4 = [r for r in result.modules if r.stage == 4]
    last = stage4[-1]
    costs = variant_costs(loaded.variant.name)
    steps.next()

    figs: list[tuple[str, str, go.Figure]] = [
        ("Prediction", "", F.topk_figure(prediction)),
        ("The card beside the measurement", "", F.variants_figure([costs])),
    ]
    for measure in MEASURES:
        figs.append(
            (
                f"Fusion matrices: {measure.replace('_', ' ')}",
                _SHARE_NOTES[measure],
                F.fusion_matrices_figure(result, measure),
            )
        )
    figs.append(("Fusion flows", "", F.sankey_figure(fusion_flows(result, "energy_share"), "energy_share")))
    figs.append(("Streams as lanes", "", F.lanes_figure(result, "l2")))
    figs.append((f"{last.name}, stream by stream", "", F.module_maps_figure(result, 4, last.index, "l2")))
    figs += [
        (
            f"{last.name} → stream {target}, taken apart",
            "",
            F.decomposition_figure(decompose(result, 4, -1, target), "mean"),
        )
        for target in range(last.num_streams)
    ]
    steps.next()
    for method in ("saliency", "ig"):
        options = {"n_steps": ig_steps} if method == "ig" else {}
        pixels = attr.attribute_pixels(loaded, x, method, progress=steps.batches, **options)
        figs.append((f"Attribution: {method}", "", F.attribution_figure(crop, pixels, weights=loaded.weights)))
        steps.next()
    figs.append(
        (
            "Grad-CAM per stream",
            "",
            F.gradcam_figure(crop, attr.gradcam_streams(loaded, x, stage=4, module=-1), weights=loaded.weights),
        )
    )
    steps.next()
    shares = attr.stream_shares(loaded, x, n_steps=16, progress=steps.batches)
    figs.append(("Stream shares of the logit", "", F.stream_shares_figure(shares, weights=loaded.weights)))
    steps.next()
    figs.append(
        (
            "Knockouts: resolution reliance",
            "",
            F.knockout_figure(attr.resolution_reliance(loaded, x), weights=loaded.weights),
        )
    )
    steps.next()

    # The trace beside the page.
    kept = {
        n: t.detach().float().contiguous().clone()  # own memory: some maps share it (head.merge0 is head.incre0)
        for n, t in result.maps.items()
        if keep == "all" or n == "logits" or not is_intermediate(n)
    }
    tensors_path, json_path = out.with_suffix(".safetensors"), out.with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(kept, str(tensors_path), metadata={"format": "hrnet-explorer-trace/1", "model": name})
    if isinstance(image, (str, Path)):
        digest = hashlib.sha256(Path(image).read_bytes()).hexdigest()
        image_name = Path(image).name  # the name only: an upload's server path is nobody's business
    elif isinstance(image, (bytes, bytearray)):
        digest, image_name = hashlib.sha256(image).hexdigest(), "pasted image"
    else:
        digest, image_name = None, type(image).__name__
    fusion = {
        r.name: {m: result.fusion(r.stage, r.index).matrix(m, 0).tolist() for m in MEASURES} for r in result.modules
    }
    w = loaded.weights
    manifest = {
        "format": "hrnet-explorer-image-report/1",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "image": {"name": image_name, "sha256": digest},
        "model": {
            "name": name,
            "variant": loaded.variant.name,
            "architecture": loaded.architecture,
            "weights": {"kind": w.kind, "detail": w.detail, "tag": w.tag, "random": w.is_random},
            "preprocessing": {**loaded.data_config, "input_size": list(x.shape[1:])},
            "device": str(loaded.device),
        },
        "prediction": [vars(s) for s in prediction.top],
        "fusion": fusion,
        "maps": {n: list(result.shapes[n]) for n in result.shapes},
        "kept": {"file": tensors_path.name, "keep": keep, "dtype": "float32", "names": list(kept)},
        "figures": [title for title, _, _ in figs],
        "files": {"html": out.name, "safetensors": tensors_path.name, "json": json_path.name},
    }
    json_path.write_text(json.dumps(manifest, indent=2, default=str))

    sections = [(title, note, _figure_html(fig, f"figure-{k}")) for k, (title, note, fig) in enumerate(figs)]
    top = prediction.top[0]
    meta = (
        f"<b>{_esc(image_name)}</b> · model <b>{_esc(name)}</b> ({_esc(loaded.architecture)}) · weights "
        f"{_esc(w.describe())} · input {x.shape[-2]}×{x.shape[-1]} · top-1 <b>{_esc(top.label)}</b> "
        f"({top.probability:.1%}) · written {_esc(manifest['created'])}<br>The trace: "
        f"<code>{_esc(tensors_path.name)}</code> ({len(kept)} maps, keep={keep}) and "
        f"<code>{_esc(json_path.name)}</code>."
    )
    warning = (
        "<b>Random weights</b>: every prediction, map, share and attribution here shows the machinery, not a "
        "trained network."
        if w.is_random
        else ""
    )
    _write(out, render_page(f"HRNet Explorer · {image_name} · {name}", meta, sections, warning))
    steps.next()
    return {"html": out, "safetensors": tensors_path, "json": json_path}


class _Phases:
    """``progress(done, total)`` over the phases of a long job: a phase counts one step, or, when it runs an
    attribution with :meth:`batches` as its progress callback, that attribution's batches (the total grows
    when it starts and says how many). ``done`` only grows; the last call is ``(total, total)``."""

    def __init__(self, progress, phases: int):
        self.progress, self.sizes, self.phase, self.within = progress, [1] * phases, 0, 0
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(sum(self.sizes[: self.phase]) + self.within, sum(self.sizes))

    def next(self) -> None:
        """The current phase is done."""
        self.phase, self.within = self.phase + 1, 0
        self._report()

    @property
    def batches(self):
        """The progress callback for an attribution in the current phase (None without ``progress``)."""
        return self._batches if self.progress is not None else None

    def _batches(self, done: int, total: int) -> None:
        self.sizes[self.phase], self.within = total, done
        if done < total:
            self._report()  # its end is reported by next()

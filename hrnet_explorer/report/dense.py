"""The HTML report of one image by a dense model: the app's Pixels view in one page, and its numbers beside it.

    image_report("ring.png", "lab-seg", "ring.html")    # → ring.html, ring.json (a dense model's report)

The page shows the mask over the image, the classes' shares, the explained class's pixels split exactly by stream,
and each stream removed at the head. ``ring.json`` is a manifest of the same numbers (:class:`~hrnet_explorer.dense.
view.PixelsView`). Called through :func:`~hrnet_explorer.report.image_report`, which sends dense models here.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from ..dense.view import pixels_view
from ..progress import Phases, Progress
from ..zoo import LoadedModel
from .page import esc, figure_html, render_page, table, write

__all__ = ["dense_report"]


def dense_report(
    image,
    loaded: LoadedModel,
    out: Path,
    *,
    image_name: str,
    digest: str | None,
    cls: int | str | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """The Pixels view of ``image`` by the dense model ``loaded`` (explaining ``cls``, default the largest class
    other than the background) as the page ``out`` and its manifest beside it. Returns the paths: html, json."""
    from ..figures.dense import pixels_figures

    steps = Phases(progress, 3)  # the view, the figures, writing
    view = pixels_view(loaded, image, cls)
    steps.next()
    split, seg = view.split, view.segmentation
    mask, maps = pixels_figures(view, loaded.name)
    streams = len(split.parts) - 1
    split_rows = [
        [f"stream {k}", f"{float(split.parts[k]):.4g}", f"{float(split.fractions[k]):.1%}"] for k in range(streams)
    ]
    split_rows.append(["bias", f"{float(split.parts[-1]):.4g}", ""])
    class_rows = [[esc(n), f"{f:.1%}"] for n, f in seg.fractions().items()]
    knockout_rows = [
        [str(k), f"{ko.changed_fraction:.1%}", f"{ko.against_before.miou:.3f}", f"{ko.against_before.boundary_f:.3f}"]
        for k, ko in enumerate(view.knockouts)
    ]
    sections = [
        ("Every pixel's class", "", figure_html(mask, "figure-0")),
        (
            "The classes",
            "Shares of the image's pixels, at the image's own size.",
            table(["class", "share of the image"], class_rows, [False, True]),
        ),
        (
            f"{split.label}: its pixels split by stream",
            f"The summed score of the {int(view.labels.eq(split.target).sum())} pixels labelled {split.label!r} at the "
            f"model's input, {split.score:.4g}, is one part per stream plus a bias part, exactly (error "
            f"{split.error:.1e}): the head's first convolution and BatchNorm are one linear map of the streams.",
            figure_html(maps, "figure-1")
            + table(["", "part of the score", "share of the streams'"], split_rows, [False, True, True]),
        ),
        (
            "Each stream removed at the head",
            "The mask with one stream's input to the head set to zero, scored against the unchanged mask.",
            table(
                ["stream removed", "pixels changed", "mIoU against the unchanged mask", "boundary F"],
                knockout_rows,
                [False, True, True, True],
            ),
        ),
    ]
    steps.next()
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    w = loaded.weights
    h, wd = seg.input_size
    meta = (
        f"<b>{esc(image_name)}</b> · dense model <b>{esc(loaded.name)}</b> ({esc(loaded.architecture)}) · weights "
        f"{esc(w.shown(loaded.name))} · seen at {wd}×{h} · written {esc(created)}"
    )
    warning = (
        "<b>Random weights</b>: every mask and split here shows the machinery, not a trained network."
        if w.is_random
        else ""
    )
    write(out, render_page(f"HRNet Explorer · {image_name} · {loaded.name}", meta, sections, warning))
    manifest = {
        "format": "hrnet-explorer-dense-report/1",
        "created": created,
        "image": {"name": image_name, "sha256": digest},
        "model": loaded.name,
        "weights": w.to_public_dict(loaded.name),
        **seg.to_dict(),
        "split": split.to_dict(),
        "knockouts_at_head": [ko.to_dict() for ko in view.knockouts],
        "files": {"html": out.name},
    }
    manifest_path = write(out.with_suffix(".json"), json.dumps(manifest, indent=2) + "\n")
    steps.next()
    return {"html": out, "json": manifest_path}

"""The HTML report of one image: every figure of the app in one page, and the trace beside it
(:func:`~hrnet_explorer.export.save_trace`: ``report.safetensors``, the kept maps, and ``report.json``, a manifest
of model, weights, preprocessing, the prediction, every module's fusion matrices and the shape of every map).

    image_report("cat.jpg", "hrnet_w18", "cat.html")    # → cat.html, cat.safetensors, cat.json
"""

from __future__ import annotations

import hashlib
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..progress import Phases, Progress
from .dense import dense_report
from .page import SHARE_NOTES, esc, figure_html, render_page, write

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from ..predict import Prediction
    from ..trace import Trace
    from ..zoo import LoadedModel

__all__ = ["image_report"]


def _image_identity(image) -> tuple[str, str | None]:
    """(the name the report shows, the SHA-256 of the file's bytes or None)."""
    if isinstance(image, (str, Path)):
        # the name only: an upload's server path is nobody's business
        return Path(image).name, hashlib.sha256(Path(image).read_bytes()).hexdigest()
    if isinstance(image, (bytes, bytearray)):
        return "pasted image", hashlib.sha256(image).hexdigest()
    return type(image).__name__, None


def _trust_figures(loaded: LoadedModel, x, maps: dict, steps: Phases) -> list[tuple[str, str, go.Figure]]:
    """The Trust view's figures for the report's saliency and IG maps: their deletion and insertion curves beside
    a random map's (one phase each), and saliency's randomisation test (one phase)."""
    from .. import attribution as attr
    from .. import figures as F

    target = maps["saliency"].target
    curves = []
    for method, pixels in (*maps.items(), ("random", attr.random_map(tuple(x.shape[-2:])))):
        curves.append(attr.deletion_insertion(loaded, x, pixels, target, method=method, progress=steps.batches))
        steps.next()
    original = maps["saliency"].heatmap
    test = attr.randomisation_test(loaded, x, "saliency", target, original=original, progress=steps.batches)
    steps.next()
    return [
        (
            "Trust: deletion and insertion",
            "As the app's Trust view: a map that orders the pixels well loses the class fast when its most relevant "
            "pixels go, and gets it back fast when they return; a random map is the bar to beat.",
            F.faithfulness_figure(curves, weights=loaded.weights),
        ),
        (
            "Trust: the randomisation test of saliency",
            "The app's Trust view runs it for any method; here saliency's, the cheapest.",
            F.randomisation_figure([test], weights=loaded.weights),
        ),
    ]


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
    loaded: LoadedModel | None = None,
    progress: Progress | None = None,
    prediction: Prediction | None = None,
    traced: Trace | None = None,
    trust: bool = False,
) -> dict[str, Path]:
    """Every figure of the app for ``image``, in one HTML file; the trace beside it (safetensors + JSON). A dense model
    (a card with ``"task": "segmentation"``, e.g. ``lab-seg``) gets its Pixels view instead (:mod:`.dense`: the page
    and a JSON manifest).

    ``keep``: the maps saved — "outputs" (every stream's output and the head; default) or "all" (also every
    branch, fuse edge and pre-activation). ``loaded``: a :class:`~hrnet_explorer.zoo.LoadedModel` to use
    instead of loading ``variant``. ``prediction`` and ``traced`` (a keep="all" trace): what the caller computed
    already for this image, model and ``input_size`` (the app's Analysis), used instead of running them again and
    left as they were. ``trust``: also the Trust view's figures — the deletion and insertion curves of the
    saliency and IG maps beside a random map's, and the randomisation test of saliency (four more phases: three
    batched forwards of the curves' images, five more saliency maps). ``progress(done, total)``, if given, is
    called as the work goes: one step per phase (trace, figures, writing), one per batch of each attribution and
    of the curves; the total grows as each starts and says how many batches it runs. Returns the paths
    written: html, safetensors, json.
    """
    from .. import attribution as attr
    from .. import figures as F
    from ..analyses import decompose, fusion_flows, module_fusion
    from ..costs import loaded_costs
    from ..export import save_trace
    from ..fusion import MEASURES
    from ..images import display_crop, preprocess, read_image
    from ..predict import predict
    from ..trace import trace
    from ..zoo import RandomWeightsWarning, load_model

    if traced is not None and traced.keep != "all":
        raise InputError(f"image_report needs a keep='all' trace (its decompositions); got keep={traced.keep!r}.")
    if keep not in ("outputs", "all"):
        raise InputError(f"keep must be 'outputs' or 'all', not {keep!r}.")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--out must end in .html; got {str(out)!r}.")
    if loaded is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            loaded = load_model(variant, weights, device)
    if loaded.task == "segmentation":
        if trust or prediction is not None or traced is not None:
            raise InputError("A dense model's report is its Pixels view; trust, prediction, traced: a classifier's.")
        image_name, digest = _image_identity(image)
        return dense_report(image, loaded, out, image_name=image_name, digest=digest, progress=progress)
    loaded.check_classifier("The image report")
    name = getattr(loaded, "name", loaded.variant.name)
    # trace, figures, saliency, ig, Grad-CAM, stream shares, knockouts, [3 curves, randomisation,] writing
    steps = Phases(progress, 8 + 4 * bool(trust))
    picture = read_image(image)
    x = preprocess(picture, loaded.data_config, input_size)
    crop = display_crop(picture, loaded.data_config, input_size)
    prediction = predict(loaded, x) if prediction is None else prediction
    result = trace(loaded, x, keep="all", store="cpu") if traced is None else traced
    fusion = module_fusion(result)  # once, for the three measures' figures and the manifest
    last = [r for r in result.modules if r.stage == 4][-1]
    costs = loaded_costs(loaded)
    steps.next()

    figs: list[tuple[str, str, go.Figure]] = [
        ("Prediction", "", F.topk_figure(prediction)),
        ("The card beside the measurement", "", F.variants_figure([costs])),
    ]
    for measure in MEASURES:
        figs.append(
            (
                f"Fusion matrices: {measure.replace('_', ' ')}",
                SHARE_NOTES[measure],
                F.fusion_matrices_figure(fusion, measure, weights=result.weights),
            )
        )
    flows = fusion_flows(result, "energy_share")
    figs.append(("Fusion flows", "", F.sankey_figure(flows, "energy_share", weights=loaded.weights)))
    figs.append(("Streams as lanes", "", F.lanes_figure(result, "l2", name=name, weights=loaded.weights)))
    module_maps = F.module_maps_figure(result, 4, last.index, "l2", weights=loaded.weights)
    figs.append((f"{last.name}, stream by stream", "", module_maps))
    figs += [
        (
            f"{last.name} → stream {target}, taken apart",
            "",
            F.decomposition_figure(decompose(result, 4, -1, target), "mean", weights=loaded.weights),
        )
        for target in range(last.num_streams)
    ]
    steps.next()
    maps = {}
    for method in ("saliency", "ig"):
        options = {"n_steps": ig_steps} if method == "ig" else {}
        maps[method] = pixels = attr.attribute_pixels(loaded, x, method, progress=steps.batches, **options)
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
    if trust:
        figs += _trust_figures(loaded, x, maps, steps)

    image_name, digest = _image_identity(image)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    saved = save_trace(
        result,
        out,
        keep=keep,
        loaded=loaded,
        fusion=fusion,
        manifest={
            "format": "hrnet-explorer-image-report/1",
            "created": created,
            "image": {"name": image_name, "sha256": digest},
            "prediction": [vars(s) for s in prediction.top],
            "figures": [title for title, _, _ in figs],
            "files": {"html": out.name},
        },
    )
    sections = [(title, note, figure_html(fig, f"figure-{k}")) for k, (title, note, fig) in enumerate(figs)]
    top = prediction.top[0]
    w = loaded.weights
    meta = (
        f"<b>{esc(image_name)}</b> · model <b>{esc(name)}</b> ({esc(loaded.architecture)}) · weights "
        f"{esc(w.shown(name))} · input {x.shape[-2]}×{x.shape[-1]} · top-1 <b>{esc(top.label)}</b> "
        f"({top.probability:.1%}) · written {esc(created)}<br>The trace: "
        f"<code>{esc(saved.tensors.name)}</code> ({len(saved.names)} maps, keep={keep}) and "
        f"<code>{esc(saved.manifest.name)}</code>."
    )
    warning = (
        "<b>Random weights</b>: every prediction, map, share and attribution here shows the machinery, not a "
        "trained network."
        if w.is_random
        else ""
    )
    write(out, render_page(f"HRNet Explorer · {image_name} · {name}", meta, sections, warning))
    steps.next()
    return {"html": out, "safetensors": saved.tensors, "json": saved.manifest}

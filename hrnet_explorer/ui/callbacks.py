"""The app's endpoints: thin functions over the core API, one per event, on top of the analysis cache.

Every endpoint takes the image and the model choice (variant, weights, input size) first, so that each one can
be called on its own through the API, and reads the one cached :class:`~hrnet_explorer.ui.cache.Analysis` of
that image. Controls are parsed by :mod:`~hrnet_explorer.ui.choices`, words come from :mod:`~hrnet_explorer.ui.text`;
each endpoint is wrapped by :func:`~hrnet_explorer.ui.guard.user_errors` (a user's mistake is one line, a bug is
logged with its traceback).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
import threading
import zipfile
from typing import Any

import gradio as gr
import torch

from .. import attribution as attr
from ..analyses import decompose, fusion_flows
from ..attribution.trust import MODEL_FREE_MAPS, REFERENCE_MAPS, row_name
from ..costs import loaded_costs, variant_costs
from ..display import METHOD_SHORT_NAMES
from ..errors import InputError, UserError
from ..figures import (
    attribution_figure,
    compare_figure,
    decomposition_figure,
    faithfulness_figure,
    fusion_matrices_figure,
    gradcam_figure,
    knockout_figure,
    lanes_figure,
    module_maps_figure,
    randomisation_figure,
    sankey_figure,
    stream_shares_figure,
    topk_figure,
    variants_figure,
)
from ..fusion import MEASURES
from ..images import preprocess, read_image
from ..progress import fraction
from ..report import image_report
from .cache import Analysis, Workbench
from .choices import (
    DEFAULT_SIZE,
    EVERY_MODULE,
    TOP1,
    class_choices,
    compact,
    parse_count,
    parse_module,
    parse_stream,
    parse_target,
)
from .gpu import ZERO_GPU
from .guard import user_errors, without_paths
from .text import (
    attribution_text,
    banner_html,
    comparison_table,
    decomposition_table,
    knockout_table,
    random_note,
    summary,
    trust_table,
)

__all__ = ["Explorer", "batch_progress", "lab_evidence", "no_mask_reason", "share_progress"]

PROGRESS = gr.Progress()  # the default that tells Gradio to pass a progress tracker
IG_STEPS = 32  # Integrated Gradients' integration steps by default (as attribution.attribute_pixels)
REPORTS_KEPT = int(os.environ.get("HRNET_EXPLORER_REPORTS_KEPT", "4"))
LAB_EXAMPLE = re.compile(r"lab_(\d{1,6})_[\w-]+\.png$")


def batch_progress(progress, what: str):
    """An attribution's ``progress(done, total)`` (batches) shown on the app's progress bar: the real fraction,
    described as "IG: batch 3/8". None under ZeroGPU, where the attribution runs in a process of its own (and
    on a GPU, in a moment)."""
    return None if ZERO_GPU else fraction(progress, what)


def share_progress(progress, what: str, k: int, n: int, start: float = 0.15, span: float = 0.8):
    """Job ``k`` of ``n``'s ``progress(done, total)`` on the app's bar: the jobs share ``span`` of it from
    ``start`` on, each its ``1/n``, described as "Scoring IG (2/6): step 3/9" — a Trust row's steps (attribution
    batches, curve forwards, randomisation stages) within the row's share. None under ZeroGPU, as
    :func:`batch_progress`."""
    if ZERO_GPU:
        return None

    def report(done: int, total: int) -> None:
        progress(start + span * (k + done / max(total, 1)) / n, desc=f"{what}: step {done}/{total}")

    return report


def lab_evidence(image: Any, a: Analysis) -> torch.Tensor | None:
    """The evidence mask of a lab example image (``lab_NNNN_CLASS.png``, from ``assets/``) explained by a lab
    model: only when the image is exactly ``lab.sample(NNNN)`` at the model's input, at the sample's size (else
    None)."""
    from ..lab import CLASSES, sample

    match = LAB_EXAMPLE.search(os.path.basename(image)) if isinstance(image, str) else None
    if match is None or list(a.loaded.class_names) != CLASSES:
        return None
    truth = sample(int(match.group(1)), "test")
    x = preprocess(truth.image, a.loaded.data_config, a.input_size)
    if x.shape != a.inputs.shape or not torch.equal(x, a.inputs.to(x.device)):
        return None
    if tuple(truth.mask.shape[-2:]) != tuple(x.shape[-2:]):  # another input size: the mask's pixels are not these
        return None
    return torch.from_numpy(truth.mask)


def card_costs(loaded: Any):
    """Card vs measured for one model: a variant beside its ImageNet card, a carded checkpoint its own count
    (:func:`~hrnet_explorer.costs.loaded_costs`); the variants' through ``variant_costs``, read from its table."""
    return variant_costs(loaded.variant.name) if loaded.card is None else loaded_costs(loaded)


def no_mask_reason(image: Any, a: Analysis) -> str:
    """Why a lab example image explained by ``a``'s model has no evidence mask (:func:`lab_evidence` gave None):
    '' for an image that is not a lab example, where no mask is expected."""
    from ..lab import CLASSES

    if not (isinstance(image, str) and LAB_EXAMPLE.search(os.path.basename(image))):
        return ""
    if list(a.loaded.class_names) != CLASSES:
        return f"{a.loaded.name} is not a lab model (its classes are not the lab's)"
    return "the image is not the lab sample at this model's input (another input size, or an edited file)"


def module_streams(module: Any) -> list[str]:
    """The streams of a module for a picker: stage s has s of them ("0".."s-1"); every module (or a name that is not
    a module's, refused later by the endpoint): the four of stage 4."""
    try:
        n = 4 if not module or module == EVERY_MODULE else min(4, parse_module(module)[0])
    except InputError:
        n = 4
    return [str(k) for k in range(n)]


class Explorer(Workbench):
    """The state behind one app (a device, the models offered, the trace cache) and one method per endpoint."""

    def __init__(self, *args: Any, **kwargs: Any):
        """As :class:`~hrnet_explorer.ui.cache.Workbench`: ``Explorer(device, cache_size=, topk=, models=)``."""
        super().__init__(*args, **kwargs)
        self.reports: list[str] = []  # folders of the latest one-image reports, oldest first
        self._reports_lock = threading.Lock()

    def _target(self, a: Analysis, target: Any) -> int:
        """The class picker's value for ``a``'s model; the top-1 when it says so."""
        cls = parse_target(target, a.loaded.num_classes, a.loaded.class_names)
        return a.target if cls is None else cls

    @staticmethod
    def banner(a: Analysis):
        """A loud HTML banner while the weights are random; hidden otherwise."""
        text = banner_html(a)
        return gr.update(value=text, visible=bool(text))

    # ----- endpoints

    @user_errors
    def analyze(self, image, variant, weights, input_size, measure="energy_share", plot_width=0, progress=PROGRESS):
        """Predict tab + Fusion overview: banner, summary, top-k, card vs measured, fusion matrices, Sankey."""
        a, cached = self.analysis(image, variant, weights, input_size, progress)
        progress(0.7, desc="Counting parameters and MACs (once per variant)")
        costs = card_costs(a.loaded)
        progress(0.9, desc="Drawing")
        return (
            self.banner(a),
            summary(a, cached, self.device_text, self.latency_text(a)),
            topk_figure(a.prediction, compact=compact(plot_width)),
            variants_figure(
                [costs], {costs.variant: self.latency_ms(a)}, device=self.device_text, compact=compact(plot_width)
            ),
            *self._fusion_figures(a, measure, plot_width),
        )

    @staticmethod
    def _fusion_figures(a: Analysis, measure: str, plot_width: Any = 0):
        if measure not in MEASURES:
            raise InputError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
        small = compact(plot_width)
        return (
            fusion_matrices_figure(a.fusion, measure, compact=small, weights=a.loaded.weights),
            sankey_figure(fusion_flows(a.trace, measure), measure, compact=small, weights=a.loaded.weights),
        )

    @user_errors
    def fusion(self, image, variant, weights, input_size, measure="energy_share", plot_width=0, progress=PROGRESS):
        """Fusion tab: every module's share matrix and the Sankey of the whole network."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        return self._fusion_figures(a, measure, plot_width)

    @user_errors
    def streams(
        self,
        image,
        variant,
        weights,
        input_size,
        reduction="l2",
        module="stage4.module0",
        plot_width=0,
        progress=PROGRESS,
    ):
        """Streams tab: the network as lanes, and one module stream by stream."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        stage, index = parse_module(module)
        progress(0.8, desc="Reducing channels")
        small = compact(plot_width)
        return (
            lanes_figure(a.trace, reduction, compact=small, name=a.loaded.name, weights=a.loaded.weights),
            module_maps_figure(a.trace, stage, index, reduction, compact=small, weights=a.loaded.weights),
        )

    @user_errors
    def decompose(
        self, image, variant, weights, input_size, module="stage4.module0", target=0, plot_width=0, progress=PROGRESS
    ):
        """Fusion tab: the fused map of one target stream taken apart into its sources."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        stage, index = parse_module(module)
        dec = decompose(a.trace, stage, index, parse_stream(target))
        figure = decomposition_figure(dec, "mean", compact=compact(plot_width), weights=a.loaded.weights)
        return figure, decomposition_table(dec)

    @user_errors
    def attribute(
        self,
        image,
        variant,
        weights,
        input_size,
        method="saliency",
        target=TOP1,
        ig_steps=IG_STEPS,
        plot_width=0,
        progress=PROGRESS,
    ):
        """Attribution tab: one pixel method, overlaid on the image the network sees; ``ig_steps``: Integrated
        Gradients' integration steps (the other methods ignore it)."""
        if method not in attr.PIXEL_METHODS:
            raise InputError(f"Unknown attribution method {method!r}; choose one of {', '.join(attr.PIXEL_METHODS)}.")
        options = {"n_steps": parse_count(ig_steps, "IG steps", 2, 256)} if method == "ig" else {}
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        cls = self._target(a, target)
        steps = batch_progress(progress, f"{METHOD_SHORT_NAMES.get(method, method.title())}, class {cls}")
        if steps is None:
            progress(0.4, desc=f"{method}: attributing class {cls} to pixels")
        result = self.explain(a, "attribute_pixels", method=method, target=cls, progress=steps, **options)
        figure = attribution_figure(a.crop, result, weights=a.loaded.weights, compact=compact(plot_width))
        return figure, random_note(a) + attribution_text(result, method, cls)

    @user_errors
    def gradcam(
        self,
        image,
        variant,
        weights,
        input_size,
        module="stage4.module0",
        target=TOP1,
        shared_scale=False,
        plot_width=0,
        progress=PROGRESS,
    ):
        """Attribution tab: Grad-CAM of every stream of one module, each on its own colour scale or on one."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        stage, index = parse_module(module)
        cls = self._target(a, target)
        progress(0.4, desc="Grad-CAM per stream")
        cam = self.explain(a, "gradcam_streams", target=cls, stage=stage, module=index)
        return gradcam_figure(
            a.crop, cam, shared_scale=bool(shared_scale), weights=a.loaded.weights, compact=compact(plot_width)
        )

    @user_errors
    def trust(
        self,
        image,
        variant,
        weights,
        input_size,
        target=TOP1,
        methods=("saliency",),
        steps=20,
        baseline="blur",
        randomisation=True,
        plot_width=0,
        progress=PROGRESS,
    ):
        """Attribution tab, Trust view: score pixel methods (deletion/insertion, the randomisation test, and the
        evidence mask of a lab example image) beside a random map and two maps that never look at the model."""
        methods = list(dict.fromkeys(methods or []))
        if not methods:
            raise InputError("Pick at least one method to score.")
        unknown = [m for m in methods if m not in attr.PIXEL_METHODS]
        if unknown:
            raise InputError(
                f"Unknown method(s) {', '.join(map(str, unknown))}; choose from {', '.join(attr.PIXEL_METHODS)}."
            )
        steps = parse_count(steps, "Deletion/insertion steps", 2, 100)
        if baseline not in ("blur", "zeros", "mean"):
            raise InputError(f"Deleted pixels become 'blur', 'zeros' or 'mean', not {baseline!r}.")
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        cls = self._target(a, target)
        mask = lab_evidence(image, a)
        rows = []
        todo = [*methods, *REFERENCE_MAPS]  # the reference rows: a random map, then the model-free maps
        for k, method in enumerate(todo):
            scoring = f"Scoring {METHOD_SHORT_NAMES.get(method) or row_name(method)} ({k + 1}/{len(todo)})"
            progress(0.15 + 0.8 * k / len(todo), desc=scoring)
            rows.append(
                self.explain(
                    a,
                    "score_attribution",
                    method=method,
                    target=cls,
                    mask=mask,
                    steps=steps,
                    baseline=baseline,
                    randomisation=bool(randomisation) and method not in REFERENCE_MAPS,
                    progress=share_progress(progress, scoring, k, len(todo)),
                )
            )
        drawn = [r for r in rows if r.method not in MODEL_FREE_MAPS]  # the curves: the methods and the random map
        curves = faithfulness_figure(drawn, compact=compact(plot_width), weights=a.loaded.weights)
        tested = [r for r in rows if r.randomisation is not None]
        why = no_mask_reason(image, a) if mask is None else ""
        missing = f"\n\nNo evidence-mask columns: this is a lab example image, but {why}." if why else ""
        return (
            random_note(a) + trust_table(rows, mask is not None) + missing,
            curves,
            randomisation_figure(tested, compact=compact(plot_width), weights=a.loaded.weights) if tested else None,
        )

    @user_errors
    def stream_shares(
        self, image, variant, weights, input_size, target=TOP1, n_steps=16, plot_width=0, progress=PROGRESS
    ):
        """Attribution tab: each final stream's share of the target logit."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        cls = self._target(a, target)
        steps = parse_count(n_steps, "Integration steps", 2, 256)
        batches = batch_progress(progress, f"Stream shares, {steps} steps")
        if batches is None:
            progress(0.4, desc=f"Integrating over the streams ({steps} steps)")
        shares = self.explain(a, "stream_shares", target=cls, n_steps=steps, progress=batches)
        return stream_shares_figure(shares, weights=a.loaded.weights, compact=compact(plot_width))

    @user_errors
    def knockout(
        self,
        image,
        variant,
        weights,
        input_size,
        kind="stream",
        stream=0,
        source=0,
        target_stream=0,
        module=EVERY_MODULE,
        target=TOP1,
        plot_width=0,
        progress=PROGRESS,
    ):
        """Knockout tab: silence one stream or one fuse edge and see the target class change."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        cls = self._target(a, target)
        where: dict[str, Any] = {}
        if module and module != EVERY_MODULE:
            where["stage"], where["module"] = parse_module(module)
        if kind == "stream":
            where["stream"] = parse_stream(stream)
        elif kind == "edge":
            where["edge"] = (parse_stream(source, "source stream"), parse_stream(target_stream, "target stream"))
        else:
            raise InputError(f"Knock out a 'stream' or an 'edge', not {kind!r}.")
        progress(0.5, desc="Knocking out")
        result = self.explain(a, "knockout", target=cls, topk=self.topk, **where)
        figure = knockout_figure([result], weights=a.loaded.weights, compact=compact(plot_width))
        return figure, random_note(a) + knockout_table([result])

    @user_errors
    def reliance(self, image, variant, weights, input_size, target=TOP1, plot_width=0, progress=PROGRESS):
        """Knockout tab: knock out each stream in turn (how much the class relies on each resolution)."""
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        cls = self._target(a, target)
        # One knockout per stream (what resolution_reliance does), so that progress reports real steps.
        n = a.trace.modules[-1].num_streams
        results = []
        for k in range(n):
            progress((k + 1) / (n + 1), desc=f"Knocking out stream {k} everywhere ({k + 1}/{n})")
            results.append(self.explain(a, "knockout", target=cls, stream=k, topk=self.topk))
        figure = knockout_figure(results, weights=a.loaded.weights, compact=compact(plot_width))
        return figure, random_note(a) + knockout_table(results)

    @user_errors
    def report(self, image, variant, weights, input_size, progress=PROGRESS):
        """Predict tab: every figure for this image in one HTML file that opens offline, and its trace (a zip of
        the safetensors and the JSON manifest), for two download buttons shown at once. The last REPORTS_KEPT
        reports stay on disk; older ones are deleted."""
        page, bundle = self._report(image, variant, weights, input_size, progress)
        return gr.update(value=page, visible=True), gr.update(value=bundle, visible=True)

    @user_errors
    def report_files(self, image, variant, weights, input_size, progress=PROGRESS):
        """The ``/report`` endpoint: :meth:`report`'s two files as files (an API client downloads them), not as
        updates of the buttons; the page shows the buttons in an event of its own."""
        return self._report(image, variant, weights, input_size, progress)

    @staticmethod
    @user_errors
    def show_downloads():
        """After ``/report``: show the two download buttons."""
        return gr.update(visible=True), gr.update(visible=True)

    def _report(self, image, variant, weights, input_size, progress) -> tuple[str, str]:
        a, _ = self.analysis(image, variant, weights, input_size, progress)
        folder = tempfile.mkdtemp(prefix="hrnet-explorer-report-")
        with self._reports_lock:
            self.reports.append(folder)
            while len(self.reports) > REPORTS_KEPT:
                shutil.rmtree(self.reports.pop(0), ignore_errors=True)
        out = os.path.join(folder, f"hrnet-explorer-{a.loaded.name}.html")
        paths = image_report(
            image,
            out=out,
            loaded=a.loaded,
            input_size=a.input_size,
            progress=fraction(progress, "Report", "step"),
            prediction=a.prediction,  # the Analysis holds both: no second prediction, no second traced forward
            traced=a.trace,
            trust=True,  # every figure of the app: the Trust view's too (Compare's need several models)
        )
        bundle = os.path.join(folder, f"hrnet-explorer-{a.loaded.name}-trace.zip")
        with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as zf:  # float32 maps hardly compress
            for key in ("safetensors", "json"):
                zf.write(paths[key], paths[key].name)
        return str(paths["html"]), bundle

    @user_errors
    def compare(self, image, variants, weights="default", input_size=DEFAULT_SIZE, plot_width=0, progress=PROGRESS):
        """Compare tab: two or more models (variants, carded checkpoints) side by side on one image."""
        picked = [self.model_name(v) for v in (variants or [])]
        names = list(dict.fromkeys(picked))  # a variant picked twice is compared once
        if len(names) < 2:
            twice = f" ({names[0]} was picked {len(picked)} times)" if len(picked) > 1 else ""
            raise InputError(f"Pick at least two different variants to compare{twice}.")
        analyses = []
        for k, name in enumerate(names):
            progress(k / (len(names) + 1), desc=f"{name} ({k + 1}/{len(names)})")
            analyses.append(self.analysis(image, name, weights, input_size)[0])
        progress(len(names) / (len(names) + 1), desc="Counting parameters and MACs")
        latencies = {a.loaded.name: self.latency_ms(a) for a in analyses}
        # Card vs measured per model: a variant beside its ImageNet card, a carded checkpoint its own count.
        costs = [card_costs(a.loaded) for a in analyses]
        return (
            compare_figure([a.prediction for a in analyses], latencies, compact=compact(plot_width)),
            variants_figure(costs, latencies, device=self.device_text, compact=compact(plot_width)),
            comparison_table(analyses, self.latency_text),
        )

    @staticmethod
    @user_errors
    def check_upload(image):
        """On upload: a file that is not an image we can read is removed at once, with the reason in a toast,
        instead of sitting there as a broken thumbnail until Analyze."""
        if image is None or image == "":
            return gr.skip()
        try:
            read_image(image)
        except UserError as exc:
            gr.Warning(html.escape(without_paths(str(exc)), quote=False), title="Not an image")
            return None
        return gr.skip()

    @staticmethod
    @user_errors
    def target_streams(module="stage4.module0", target="0"):
        """Fusion tab: the decomposition's target-stream picker offers the chosen module's streams only."""
        streams = module_streams(module)
        return gr.update(choices=streams, value=str(target) if str(target) in streams else streams[0])

    @staticmethod
    @user_errors
    def knockout_controls(kind="stream", module=EVERY_MODULE, stream="0", source="1", target_stream="0"):
        """Knockout tab: offer only the streams the chosen module has (stage s has s streams; every module: the
        four of stage 4), and only the pickers of the chosen kind (stream, or edge source and target)."""
        streams = module_streams(module)
        n = len(streams)

        def picker(value, fallback, active):
            value = str(value) if str(value) in streams else fallback
            return gr.update(choices=streams, value=value, interactive=active)

        return (
            picker(stream, streams[0], kind == "stream"),
            picker(source, streams[min(1, n - 1)], kind == "edge"),
            picker(target_stream, streams[0], kind == "edge"),
        )

    @user_errors
    def model_changed(self, image, variant, weights, input_size):
        """When the model, its weights or the input size change: every result of the old model cleared, so that no
        tab shows one model beside another (Analyze's work re-runs after this when there is an image). Returns the
        banner, the summary, the report's two buttons, the Attribution and Knockout tabs' results, then the figures
        Analyze fills (top-k, card vs measured, fusion matrices, Sankey, lanes, one module, decomposition) and the
        decomposition's table."""
        name = self.model_name(variant)
        then = "it is being analyzed" if image not in (None, "") else "upload an image and press Analyze"
        note = f"_The model changed to **{name}** ({weights or 'default'} weights): {then}; results below are its._"
        again = f"_The model changed to **{name}**: run this again to see its results._"
        return (
            gr.update(value="", visible=False),
            note,
            gr.update(visible=False),
            gr.update(visible=False),
            *(None,) * 3,  # the attribution, Grad-CAM and stream-share figures
            again,  # under the attribution
            again,  # the trust table
            None,
            None,  # the trust curves and the randomisation figure
            None,
            again,  # the knockout figure and its table
            *(None,) * 7,
            "",
        )

    @user_errors
    def variant_options(self, variant):
        """When the model changes: its weights, its modules for the module pickers, its classes for the class
        picker."""
        mods = self.module_names(variant)
        last = mods[-1]
        return (
            gr.update(choices=self.weight_choices(variant), value="default"),
            gr.update(choices=mods, value=last),
            gr.update(choices=mods, value=last),
            gr.update(choices=mods, value=last),
            gr.update(choices=[EVERY_MODULE, *mods], value=EVERY_MODULE),
            gr.update(choices=class_choices(self.class_names(variant)), value=TOP1),
        )

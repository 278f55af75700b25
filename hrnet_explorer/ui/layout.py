"""The Gradio Blocks of the explorer: layout first, then event wiring (every event has an ``api_name``)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr
import timm
import torch

from .. import __version__
from ..attribution import PIXEL_METHODS
from ..display import COMPACT_WIDTH
from ..fusion import MEASURES
from ..zoo import ASSETS
from .callbacks import IG_STEPS, Explorer
from .choices import DEFAULT_SIZE, EVERY_MODULE, INPUT_SIZES, TOP1, class_choices
from .components import check_inputs, image_input, text_in_the_api
from .dense import LARGEST, DenseView
from .microscope import add_microscope_tab
from .text import INTRO, TRUST_HELP, measure_choices, method_choices

__all__ = [
    "build_demo",
    "example_images",
    "ASSETS",
    "launch_options",
    "QUEUE_MAX_SIZE",
    "CONCURRENCY_LIMIT",
    "MAX_FILE_SIZE",
    "DELETE_CACHE",
    "DEFAULT_VARIANT",
]

DEFAULT_VARIANT = os.environ.get("HRNET_EXPLORER_VARIANT", "hrnet_w18_small")
# One model job at a time: on CPU one forward already uses every core; on a GPU the trace dominates memory.
CONCURRENCY_LIMIT = int(os.environ.get("HRNET_EXPLORER_CONCURRENCY", "1"))
QUEUE_MAX_SIZE = int(os.environ.get("HRNET_EXPLORER_QUEUE", "16"))  # beyond it, new requests are refused
MAX_FILE_SIZE = os.environ.get("HRNET_EXPLORER_MAX_FILE_SIZE", "20mb")  # a 40-megapixel JPEG fits
DELETE_CACHE = (3600, 3600)  # every hour, delete uploads and outputs older than an hour
# Run in the browser before every event that draws figures: its last input, the hidden plot width, becomes the width
# of the figure column now, so that a narrow screen gets compact figures (stacked panels, colour bars below;
# hrnet_explorer.display.COMPACT_WIDTH). Plotly resizes a figure to its column, but cannot re-flow its subplots.
PLOT_WIDTH_JS = """(...args) => {
    const column = document.getElementById("figures") || document.body;
    args[args.length - 1] = Math.round(column.getBoundingClientRect().width);
    return args;
}"""


# The Markdown tables (Trust, Knockout, Compare, Decomposition) keep their words whole: on a phone a table wider
# than the screen scrolls sideways inside its box, where the browser would otherwise break "method" letter by letter.
TABLE_CSS = """
.prose table { display: block; max-width: 100%; overflow-x: auto; }
.prose th, .prose td { white-space: nowrap; word-break: normal; overflow-wrap: normal; }
"""


def example_images(folder: Path = ASSETS) -> list[str]:
    """The example images shipped in ``hrnet_explorer/assets/`` (sorted), as paths."""
    if not folder.is_dir():
        return []
    return [str(p) for p in sorted(folder.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")]


def launch_options() -> dict[str, object]:
    """What every launch of the app passes (``hrnet_explorer.app``, the tests' server): serve the example images
    only (not ``assets/`` as a folder, whose scripts and notes are no business of the web), and send the message of
    an error raised outside our callbacks (a refused server path, say) instead of ``"error": null``; and the page's
    CSS (Gradio takes it at launch)."""
    return dict(allowed_paths=example_images(), show_error=True, css=TABLE_CSS)


def _skip_without_image(fn: Callable, n_outputs: int) -> Callable:
    """For events fired by a control change: do nothing (no error pop-up) while there is no image yet."""

    @functools.wraps(fn)
    def wrapper(image, *args, **kwargs):
        if image is None or image == "":
            return gr.skip() if n_outputs == 1 else tuple(gr.skip() for _ in range(n_outputs))
        return fn(image, *args, **kwargs)

    return wrapper


def build_demo(
    explorer: Explorer | None = None,
    *,
    default_variant: str = DEFAULT_VARIANT,
    examples: Sequence[str | os.PathLike] | None = None,
) -> gr.Blocks:
    """The explorer's ``gr.Blocks``. ``explorer`` holds the device, the models offered beyond the nine
    variants and the trace cache (default: a new one on CUDA if available, else CPU); ``examples`` defaults
    to the images in ``assets/``."""
    ex = explorer or Explorer()
    examples = example_images() if examples is None else [str(p) for p in examples]
    modules = ex.module_names(default_variant)
    dense = DenseView(ex.device, ex.models)
    last = modules[-1]
    with gr.Blocks(title="HRNet Explorer", delete_cache=DELETE_CACHE, analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(
            f"Running on **{ex.device_text}** · hrnet-explorer {__version__} · torch {torch.__version__} · "
            f"timm {timm.__version__}",
            elem_id="device",
        )
        banner = gr.HTML(visible=False, elem_id="random-weights-banner", padding=False, label="Random-weights warning")
        plot_width = gr.Number(  # set by PLOT_WIDTH_JS; API callers may leave it at 0 (wide figures)
            0, visible=False, precision=0, label=f"Figure width in px (below {COMPACT_WIDTH}: compact figures; 0: wide)"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=300):
                image = image_input(
                    label="Image", sources=["upload", "webcam", "clipboard"], height=280, elem_id="image-input"
                )
                variant = gr.Dropdown(
                    ex.model_choices(),
                    value=ex.model_name(default_variant),
                    label="Variant",
                    elem_id="variant",
                    info="the nine ImageNet variants, then models with cards (by name)" if ex.models else None,
                )
                weights = gr.Dropdown(
                    ex.weight_choices(default_variant),
                    value="default",
                    label="Weights",
                    allow_custom_value=True,  # choices follow the variant; API callers may name any tag
                    info="'default' is timm's default tag; 'random' for the machinery only",
                )
                input_size = gr.Dropdown(
                    [("the weights' own (224)", DEFAULT_SIZE)] + [(f"{s} px", str(s)) for s in INPUT_SIZES],
                    value=DEFAULT_SIZE,
                    label="Input size",
                    allow_custom_value=True,  # API callers may send 224 as a number; parse_input_size checks it
                )
                target = text_in_the_api(
                    gr.Dropdown(
                        class_choices(ex.class_names(default_variant)),
                        value=TOP1,
                        label="Class to explain (Attribution, Knockout)",
                        filterable=True,
                        allow_custom_value=True,  # choices follow the model; API callers may name any model's class
                    ),
                    f"'{TOP1}', a class index of the model ('207'), 'index: name' ('207: golden retriever') "
                    "or a name ('goldfish')",
                )
                run = gr.Button("Analyze", variant="primary", elem_id="analyze")
                if examples:
                    gr.Examples([[p] for p in examples], inputs=[image], label="Example images")
            with gr.Column(scale=3, elem_id="figures"), gr.Tabs():
                with gr.Tab("Predict", id="predict"):
                    summary = gr.Markdown(elem_id="summary", label="Summary")
                    topk_plot = gr.Plot(label="Top-k classes", elem_id="topk-plot")
                    costs_plot = gr.Plot(label="Card vs measured", elem_id="costs-plot")
                    with gr.Row():
                        report_btn = gr.Button("Report of this image", scale=0, elem_id="report-button")
                        report_html = gr.DownloadButton(
                            "Download the report (HTML, opens offline)", visible=False, elem_id="report-download"
                        )
                        report_trace = gr.DownloadButton(
                            "Download its trace (safetensors + JSON)", visible=False, elem_id="trace-download"
                        )
                with gr.Tab("Streams", id="streams"):
                    with gr.Row():
                        reduction = gr.Radio(
                            [("channel L2 norm", "l2"), ("channel mean", "mean"), ("PCA → RGB", "pca")],
                            value="l2",
                            label="Channel reduction",
                        )
                        stream_module = gr.Dropdown(
                            modules, value=last, label="Module (detail)", allow_custom_value=True
                        )
                        streams_btn = gr.Button("Show streams", scale=0)
                    lanes_plot = gr.Plot(label="Streams × modules", elem_id="lanes-plot")
                    module_plot = gr.Plot(label="One module, stream by stream", elem_id="module-plot")
                with gr.Tab("Fusion", id="fusion"):
                    with gr.Row():
                        measure = gr.Radio(measure_choices(MEASURES), value="energy_share", label="Measure")
                        fusion_btn = gr.Button("Show fusion", scale=0)
                    matrices_plot = gr.Plot(label="Share matrices", elem_id="matrices-plot")
                    sankey_plot = gr.Plot(label="Stream → stream flows", elem_id="sankey-plot")
                    with gr.Row():
                        dec_module = gr.Dropdown(modules, value=last, label="Module", allow_custom_value=True)
                        dec_target = gr.Dropdown(["0", "1", "2", "3"], value="0", label="Target stream")
                        dec_btn = gr.Button("Decompose", scale=0)
                    dec_plot = gr.Plot(label="Decomposition of a fused map", elem_id="decomposition-plot")
                    dec_md = gr.Markdown(label="Decomposition table", elem_id="decomposition-table")
                with gr.Tab("Attribution", id="attribution"):
                    with gr.Row():
                        method = gr.Dropdown(
                            method_choices(PIXEL_METHODS),
                            value="saliency",
                            label="Pixel method",
                            info="IG, SmoothGrad, GradientSHAP and Occlusion take seconds on a CPU",
                        )
                        ig_steps = gr.Slider(
                            2, 256, value=IG_STEPS, step=1, label="IG steps", info="Integrated Gradients only"
                        )
                        attr_btn = gr.Button("Attribute", scale=0, variant="primary")
                    attr_plot = gr.Plot(label="Pixel attribution", elem_id="attribution-plot")
                    attr_md = gr.Markdown(label="Attribution details", elem_id="attribution-text")
                    with gr.Row():
                        cam_module = gr.Dropdown(
                            modules, value=last, label="Module for Grad-CAM", allow_custom_value=True
                        )
                        cam_shared = gr.Checkbox(
                            False,
                            label="One colour scale for all streams",
                            info="off: each stream on its own scale (the fine streams' maps are much smaller)",
                        )
                        cam_btn = gr.Button("Grad-CAM per stream", scale=0)
                    cam_plot = gr.Plot(label="Grad-CAM per stream", elem_id="gradcam-plot")
                    with gr.Row():
                        n_steps = gr.Slider(4, 64, value=16, step=4, label="Integration steps (stream shares)")
                        shares_btn = gr.Button("Stream shares", scale=0)
                    shares_plot = gr.Plot(label="Stream shares of the logit", elem_id="shares-plot")
                    with gr.Accordion("Trust: which map to believe?", open=True, elem_id="trust"):
                        gr.Markdown(TRUST_HELP)
                        with gr.Row():
                            trust_methods = gr.CheckboxGroup(
                                method_choices(PIXEL_METHODS),
                                value=["saliency", "ig"],
                                label="Methods to score",
                                info="on a CPU: seconds each, ×6 with the randomisation test",
                                elem_id="trust-methods",
                            )
                            trust_baseline = gr.Radio(
                                [("blurred", "blur"), ("dataset mean", "zeros"), ("image mean", "mean")],
                                value="blur",
                                label="Deleted pixels become",
                            )
                        with gr.Row():
                            trust_steps = gr.Slider(2, 50, value=20, step=1, label="Deletion/insertion steps")
                            trust_random = gr.Checkbox(
                                value=True, label="Randomisation test (5 more attributions per method)"
                            )
                            trust_btn = gr.Button("Score the methods", scale=0, elem_id="trust-button")
                        trust_md = gr.Markdown(elem_id="trust-table", label="Trust table")
                        trust_plot = gr.Plot(label="Deletion and insertion", elem_id="trust-curves")
                        rand_plot = gr.Plot(label="Randomisation test", elem_id="trust-randomisation")
                with gr.Tab("Knockout", id="knockout"):
                    with gr.Row():
                        ko_kind = gr.Radio(["stream", "edge"], value="stream", label="Knock out")
                        ko_stream = gr.Dropdown(["0", "1", "2", "3"], value="0", label="Stream")
                        ko_source = gr.Dropdown(["0", "1", "2", "3"], value="1", label="Edge source", interactive=False)
                        ko_target = gr.Dropdown(["0", "1", "2", "3"], value="0", label="Edge target", interactive=False)
                        ko_module = gr.Dropdown(
                            [EVERY_MODULE, *modules], value=EVERY_MODULE, label="Where", allow_custom_value=True
                        )
                    with gr.Row():
                        ko_btn = gr.Button("Knock out", variant="primary")
                        reliance_btn = gr.Button("Each stream in turn")
                    ko_plot = gr.Plot(label="Knockout", elem_id="knockout-plot")
                    ko_md = gr.Markdown(label="Knockout table", elem_id="knockout-table")
                with gr.Tab("Pixels", id="pixels"):  # dense models: hrnet_explorer.ui.dense
                    with gr.Row():
                        dense_model = gr.Dropdown(dense.choices(), value=dense.choices()[0], label="Dense model")
                        dense_target = gr.Dropdown(
                            [LARGEST, *dense.class_names()],
                            value=LARGEST,
                            label="Class to split by stream",
                            allow_custom_value=True,
                        )
                        dense_btn = gr.Button("Segment", variant="primary", scale=0, elem_id="segment-button")
                    dense_mask_plot = gr.Plot(label="Every pixel's class", elem_id="dense-mask-plot")
                    dense_split_plot = gr.Plot(label="A class's pixels, stream by stream", elem_id="dense-split-plot")
                    dense_md = gr.Markdown(label="Classes, split and knockouts", elem_id="dense-table")
                with gr.Tab("Compare", id="compare"):
                    with gr.Row():
                        cmp_variants = gr.CheckboxGroup(
                            ex.model_choices(), value=["hrnet_w18_small", "hrnet_w18_small_v2"], label="Variants"
                        )
                        cmp_weights = gr.Radio(["default", "random"], value="default", label="Weights")
                        cmp_btn = gr.Button("Compare", scale=0, variant="primary")
                    cmp_plot = gr.Plot(label="Top-k per variant", elem_id="compare-plot")
                    cmp_costs = gr.Plot(label="Card vs measured", elem_id="compare-costs-plot")
                    cmp_md = gr.Markdown(label="Comparison table", elem_id="compare-table")
                add_microscope_tab(ex, variant, weights, default_variant)

        # ---- events. Model work shares one concurrency group, so at most CONCURRENCY_LIMIT run at once.
        common = [image, variant, weights, input_size]
        model = dict(concurrency_id="model")
        hidden = dict(concurrency_id="model", api_visibility="private")
        drawn = dict(js=PLOT_WIDTH_JS)  # events whose last input is plot_width

        streams_io = dict(
            inputs=common + [reduction, stream_module, plot_width], outputs=[lanes_plot, module_plot], **drawn
        )
        fusion_io = dict(inputs=common + [measure, plot_width], outputs=[matrices_plot, sankey_plot], **drawn)
        # Progress shows on the figure only: an overlay on the text below it hid the previous result.
        dec_io = dict(
            inputs=common + [dec_module, dec_target, plot_width],
            outputs=[dec_plot, dec_md],
            show_progress_on=[dec_plot],
            **drawn,
        )

        # The named endpoints (buttons) are registered first, so they keep their api_name; the same work,
        # fired by control changes or after Analyze, runs as private events that skip while there is no image.
        analyzed = run.click(
            ex.analyze,
            inputs=common + [measure, plot_width],
            outputs=[banner, summary, topk_plot, costs_plot, matrices_plot, sankey_plot],
            api_name="analyze",
            **model,
            **drawn,
        )
        streams_btn.click(ex.streams, **streams_io, api_name="streams", **model)
        fusion_btn.click(ex.fusion, **fusion_io, api_name="fusion", **model)
        dec_btn.click(ex.decompose, **dec_io, api_name="decompose", **model)
        auto_streams, auto_fusion, auto_dec = (
            _skip_without_image(ex.streams, 2),
            _skip_without_image(ex.fusion, 2),
            _skip_without_image(ex.decompose, 2),
        )
        analyzed.success(auto_streams, **streams_io, api_name="streams_after_analyze", **hidden).success(
            auto_dec, **dec_io, api_name="decompose_after_analyze", **hidden
        )
        gr.on([reduction.input, stream_module.input], auto_streams, **streams_io, api_name="streams_on_input", **hidden)
        measure.input(auto_fusion, **fusion_io, api_name="fusion_on_input", **hidden)
        # A new module first narrows the target picker to its streams (stage 2 has two), then decomposes.
        dec_module.input(
            ex.target_streams,
            inputs=[dec_module, dec_target],
            outputs=dec_target,
            api_name="target_streams",
            api_visibility="private",
            queue=False,
        ).success(auto_dec, **dec_io, api_name="decompose_on_module", **hidden)
        dec_target.input(auto_dec, **dec_io, api_name="decompose_on_input", **hidden)

        attr_btn.click(
            ex.attribute,
            inputs=common + [method, target, ig_steps, plot_width],
            outputs=[attr_plot, attr_md],
            show_progress_on=[attr_plot],
            api_name="attribute",
            **model,
            **drawn,
        )
        trust_btn.click(
            ex.trust,
            inputs=common + [target, trust_methods, trust_steps, trust_baseline, trust_random, plot_width],
            outputs=[trust_md, trust_plot, rand_plot],
            show_progress_on=[trust_plot],
            api_name="trust",
            **model,
            **drawn,
        )
        cam_btn.click(
            ex.gradcam,
            inputs=common + [cam_module, target, cam_shared, plot_width],
            outputs=cam_plot,
            api_name="gradcam",
            **model,
            **drawn,
        )
        shares_btn.click(
            ex.stream_shares,
            inputs=common + [target, n_steps, plot_width],
            outputs=shares_plot,
            api_name="stream_shares",
            **model,
            **drawn,
        )
        image.upload(ex.check_upload, inputs=image, outputs=image, api_name="check_upload", api_visibility="private")
        gr.on(
            [ko_kind.change, ko_module.change],
            ex.knockout_controls,
            inputs=[ko_kind, ko_module, ko_stream, ko_source, ko_target],
            outputs=[ko_stream, ko_source, ko_target],
            api_name="knockout_controls",
            api_visibility="private",
            queue=False,
        )
        ko_btn.click(
            ex.knockout,
            inputs=common + [ko_kind, ko_stream, ko_source, ko_target, ko_module, target, plot_width],
            outputs=[ko_plot, ko_md],
            show_progress_on=[ko_plot],
            api_name="knockout",
            **model,
            **drawn,
        )
        reliance_btn.click(
            ex.reliance,
            inputs=common + [target, plot_width],
            outputs=[ko_plot, ko_md],
            show_progress_on=[ko_plot],
            api_name="reliance",
            **model,
            **drawn,
        )
        report_btn.click(
            ex.report_files, inputs=common, outputs=[report_html, report_trace], api_name="report", **model
        ).success(
            ex.show_downloads,
            outputs=[report_html, report_trace],
            api_name="report_shown",
            api_visibility="private",
            queue=False,
        )
        cmp_btn.click(
            ex.compare,
            inputs=[image, cmp_variants, cmp_weights, input_size, plot_width],
            outputs=[cmp_plot, cmp_costs, cmp_md],
            show_progress_on=[cmp_plot, cmp_costs],
            api_name="compare",
            **model,
            **drawn,
        )
        dense_btn.click(
            dense.segment,
            inputs=[image, dense_model, dense_target, plot_width],
            outputs=[dense_mask_plot, dense_split_plot, dense_md],
            api_name="segment",
            **model,
            **drawn,
        )
        # A new model (or weights, or input size) clears the old one's results and, with an image there, runs
        # Analyze's work again: no tab shows one model beside another (the random-weights banner follows).
        cleared = dict(
            inputs=common,
            outputs=[banner, summary, report_html, report_trace, attr_plot, cam_plot, shares_plot, attr_md, trust_md]
            + [trust_plot, rand_plot, ko_plot, ko_md, topk_plot, costs_plot, matrices_plot, sankey_plot, lanes_plot]
            + [module_plot, dec_plot, dec_md],
            api_visibility="private",
            queue=False,
        )
        analyze_io = dict(
            inputs=common + [measure, plot_width],
            outputs=[banner, summary, topk_plot, costs_plot, matrices_plot, sankey_plot],
            **drawn,
        )
        auto_analyze = _skip_without_image(ex.analyze, 6)
        changes = {
            "variant": variant.change(
                ex.variant_options,
                inputs=variant,
                outputs=[weights, stream_module, dec_module, cam_module, ko_module, target],
                api_name="variant_options",
            ).success(ex.model_changed, api_name="variant_clears", **cleared),
            "model": gr.on([weights.input, input_size.input], ex.model_changed, api_name="model_clears", **cleared),
        }
        for name, event in changes.items():
            event.success(auto_analyze, api_name=f"analyze_after_{name}", **analyze_io, **hidden).success(
                auto_streams, api_name=f"streams_after_{name}", **streams_io, **hidden
            ).success(auto_dec, api_name=f"decompose_after_{name}", **dec_io, **hidden)
    check_inputs(demo.blocks.values())  # a value of the wrong type gets one line, not Gradio's internals
    demo.explorer = ex  # for tests and benchmarks: the cache behind the app
    return demo

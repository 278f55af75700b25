"""The Gradio app, launched in-process and driven through gradio_client like any API user.

w18_small with the "default" weights: offline (conftest sets HF_HUB_OFFLINE=1) they fall back to random
weights, which the app must announce with its banner.
"""

from __future__ import annotations

import html
import importlib.util
import json
import logging
import os
import pickle
import re
import traceback
from pathlib import Path

import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from repo import ROOT
from servers import launched_demo

from hrnet_explorer.ui import (
    ASSETS,
    CONCURRENCY_LIMIT,
    QUEUE_MAX_SIZE,
    example_images,
)
from hrnet_explorer.ui.gpu import gpu
from hrnet_explorer.ui.guard import INTERNAL_ERROR

VARIANT = "hrnet_w18_small"
EXAMPLE = str(ASSETS / "grace_hopper.jpg")
MODEL = (VARIANT, "default", "default")  # variant, weights, input size
ENDPOINTS = {
    "/analyze",
    "/streams",
    "/fusion",
    "/decompose",
    "/attribute",
    "/gradcam",
    "/stream_shares",
    "/knockout",
    "/reliance",
    "/compare",
    "/trust",
    "/variant_options",
}


@pytest.fixture(scope="module")
def app():
    with launched_demo(max_file_size="2mb") as (demo, url):
        yield demo, Client(url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def client(app):
    return app[1]


@pytest.fixture(scope="module")
def explorer(app):
    return app[0].explorer


def plot(value) -> dict:
    """A gr.Plot output as the browser gets it: {"type": "plotly", "plot": "<figure JSON>"}."""
    assert value["type"] == "plotly"
    fig = json.loads(value["plot"])
    assert fig["layout"]["title"]["text"]
    return fig


def trace_types(fig: dict) -> list[str]:
    return [t["type"] for t in fig["data"]]


def test_examples_are_small_images():
    paths = example_images()
    assert len(paths) >= 3 and EXAMPLE in paths
    assert all(os.path.getsize(p) < 200_000 for p in paths)
    assert (ASSETS / "README.md").read_text().count("|") > 10  # sources and licences recorded


def test_every_endpoint_is_named(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert set(api) >= ENDPOINTS
    # every parameter and output has a name an API user can read (not "value_3")
    unnamed = [
        (name, p["label"])
        for name in ENDPOINTS
        for p in api[name]["parameters"] + api[name]["returns"]
        if not p["label"] or re.fullmatch(r"value_\d+", p["label"])
    ]
    assert not unnamed
    assert not any(n.endswith(("_1", "_2")) for n in api)  # no duplicate names


def test_analyze(client, explorer):
    banner, summary, topk, costs, matrices, sankey = client.predict(
        handle_file(EXAMPLE), *MODEL, "energy_share", api_name="/analyze"
    )
    assert banner["visible"] is True and "Random weights" in banner["value"]  # the weights fell back to random
    assert VARIANT in summary and "Top-1" in summary and "CPU" in summary
    assert trace_types(plot(topk)) == ["bar"] and len(plot(topk)["data"][0]["y"]) == 5
    names = [t["name"] for t in plot(costs)["data"]]
    assert "card" in names and "measured" in names and "measured latency" in names
    assert trace_types(plot(matrices)) == ["heatmap"] * 3  # w18_small: one module in each of stages 2, 3, 4
    assert trace_types(plot(sankey)) == ["sankey"]
    assert "traced forward" in summary and "reused from the cache" not in summary
    _, as_number, *_ = client.predict(
        handle_file(EXAMPLE), VARIANT, "default", 224, "energy_share", api_name="/analyze"
    )
    assert "Input 224×224 px" in as_number  # the API takes the input size as a number too
    misses = explorer.cache.misses
    _, again, *_ = client.predict(handle_file(EXAMPLE), *MODEL, "agreement", api_name="/analyze")
    assert explorer.cache.misses == misses  # the same picture again: traced once, reused
    # ...and the summary says the timing is the old one, and whether the fastest is a cold first run
    assert "reused from the cache (no new forward; tracing it took" in again and "traced forward" not in again
    assert "(cold: one run, warm-up included)" in again or "(warm: the fastest of" in again


def test_streams(client):
    lanes, module = client.predict(handle_file(EXAMPLE), *MODEL, "pca", "stage4.module0", api_name="/streams")
    assert trace_types(plot(lanes)) == ["image"] * 9  # 2 + 3 + 4 streams
    assert trace_types(plot(module)) == ["image"] * 12  # branch, presum, fused × 4 streams
    lanes, _ = client.predict(handle_file(EXAMPLE), *MODEL, "l2", "stage4.module0", api_name="/streams")
    assert trace_types(plot(lanes)) == ["heatmap"] * 9


def test_fusion_and_decompose(client, explorer):
    misses = explorer.cache.misses
    matrices, sankey = client.predict(handle_file(EXAMPLE), *MODEL, "relu_share", api_name="/fusion")
    assert "ReLU share" in plot(matrices)["layout"]["title"]["text"]
    assert trace_types(plot(sankey)) == ["sankey"]
    fig, text = client.predict(handle_file(EXAMPLE), *MODEL, "stage4.module0", "2", api_name="/decompose")
    assert trace_types(plot(fig)) == ["heatmap"] * 6  # four sources, Σ, ReLU
    assert "max |reconstruction error| = 0.00e+00" in text and len(re.findall(r"\n\| \d \|", text)) == 4
    assert explorer.cache.misses == misses  # every tab read the cached trace


def test_attribution_endpoints(client):
    fig, text = client.predict(
        handle_file(EXAMPLE), *MODEL, "saliency", "1: goldfish, Carassius auratus", api_name="/attribute"
    )
    assert trace_types(plot(fig)) == ["image", "image", "heatmap"] and "class 1" in text
    _, typed = client.predict(handle_file(EXAMPLE), *MODEL, "saliency", "Goldfish", api_name="/attribute")
    assert "class 1" in typed and "goldfish" in typed  # typed by name, as the CLI's --target takes it (issue 26)
    fig, _ = client.predict(handle_file(EXAMPLE), *MODEL, "ig", "top-1 prediction", api_name="/attribute")
    assert "convergence δ" in plot(fig)["layout"]["title"]["text"]
    cam = plot(client.predict(handle_file(EXAMPLE), *MODEL, "stage4.module0", "top-1 prediction", api_name="/gradcam"))
    assert (
        trace_types(cam).count("heatmap") == 4
        and "each stream on its own colour scale" in cam["layout"]["title"]["text"]
    )
    shared = plot(
        client.predict(handle_file(EXAMPLE), *MODEL, "stage4.module0", "top-1 prediction", True, api_name="/gradcam")
    )
    assert "one shared colour scale" in shared["layout"]["title"]["text"] and "coloraxis2" not in shared["layout"]
    shares = plot(client.predict(handle_file(EXAMPLE), *MODEL, "top-1 prediction", 4, api_name="/stream_shares"))
    assert len(shares["data"][0]["x"]) == 4 and "completeness" in shares["layout"]["title"]["text"]


def test_every_analysis_says_the_weights_are_random(client):
    """Offline, "default" falls back to random weights: reached without Analyze (a class typed, Knock out pressed),
    every attribution and knockout figure and text must still say so, not only the Predict tab's banner."""
    cls = "1: goldfish, Carassius auratus"
    fig, text = client.predict(handle_file(EXAMPLE), *MODEL, "stream", "3", "0", "0", "every module", cls,
                               api_name="/knockout")  # fmt: skip
    assert "RANDOM weights" in plot(fig)["layout"]["title"]["text"] and "RANDOM weights" in text
    fig, text = client.predict(handle_file(EXAMPLE), *MODEL, cls, api_name="/reliance")
    assert "RANDOM weights" in plot(fig)["layout"]["title"]["text"] and "RANDOM weights" in text
    fig, text = client.predict(handle_file(EXAMPLE), *MODEL, "saliency", cls, api_name="/attribute")
    assert "RANDOM weights" in plot(fig)["layout"]["title"]["text"] and "RANDOM weights" in text
    cam = client.predict(handle_file(EXAMPLE), *MODEL, "stage4.module0", cls, api_name="/gradcam")
    assert "RANDOM weights" in plot(cam)["layout"]["title"]["text"]
    shares = client.predict(handle_file(EXAMPLE), *MODEL, cls, 4, api_name="/stream_shares")
    assert "RANDOM weights" in plot(shares)["layout"]["title"]["text"]


def test_trust_view(client):
    """Attribution tab, Trust view: a method × score table and the deletion/insertion curves, beside a random map;
    on a lab example image with the lab model, the evidence mask is scored too."""
    lab_example = str(ASSETS / "lab_0008_ring.png")
    text, curves, randomised = client.predict(
        handle_file(lab_example), "lab", "default", "default", "top-1 prediction", ["saliency"], 5, "blur", True,
        api_name="/trust",
    )  # fmt: skip
    assert "**ring** (class 8)" in text and "mass in mask" in text and "evidence mask of this lab image" in text
    rows = [line for line in text.splitlines() if line.startswith("| Saliency |") or line.startswith("| random map")]
    assert len(rows) == 2 and all(line.count("|") == 9 for line in rows)  # method + 3 + 4 mask columns
    fig = plot(curves)
    assert trace_types(fig) == ["scatter"] * 4 and len(fig["data"][0]["x"]) == 6  # 2 methods × 2 curves, 5 steps
    assert [len(t["y"]) for t in plot(randomised)["data"]] == [6]  # the original and five layer groups
    text, curves, randomised = client.predict(
        handle_file(EXAMPLE), *MODEL, "top-1 prediction", ["saliency", "occlusion"], 4, "zeros", False,
        api_name="/trust",
    )  # fmt: skip
    assert "mass in mask" not in text and "| Occlusion |" in text and randomised is None
    assert len(plot(curves)["data"]) == 6
    with pytest.raises(Exception, match="Pick at least one method"):
        client.predict(handle_file(EXAMPLE), *MODEL, "top-1 prediction", [], 4, "zeros", False, api_name="/trust")


def test_knockout_endpoints(client):
    fig, text = client.predict(
        handle_file(EXAMPLE), *MODEL, "stream", "3", "0", "0", "every module", "top-1 prediction", api_name="/knockout"
    )
    assert trace_types(plot(fig)) == ["bar", "bar"] and "stream 3 removed everywhere" in text
    fig, text = client.predict(
        handle_file(EXAMPLE), *MODEL, "edge", "0", "3", "0", "stage4.module0", "top-1 prediction", api_name="/knockout"
    )
    assert "edge 3→0 removed in stage4.module0" in text
    fig, text = client.predict(handle_file(EXAMPLE), *MODEL, "top-1 prediction", api_name="/reliance")
    assert len(plot(fig)["data"][0]["y"]) == 4 and text.count("removed everywhere") == 4  # one row per stream


def test_compare(client):
    fig, costs, text = client.predict(
        handle_file(EXAMPLE), ["hrnet_w18_small", "hrnet_w18_small_v2"], "random", "default", api_name="/compare"
    )
    assert trace_types(plot(fig)) == ["bar", "bar"]
    assert plot(costs)["data"][0]["x"] == ["w18_small", "w18_small_v2"]
    assert "hrnet_w18_small_v2" in text and "random" in text
    assert re.search(r"\d+ ms \((cold: one run, warm-up included|warm: the fastest of \d+ runs)\)", text)
    # Module pickers accept any variant's modules through the API (w18_small_v2 has three in stage 3).
    fig, text = client.predict(
        handle_file(EXAMPLE), "hrnet_w18_small_v2", "random", "default", "stage3.module2", "1", api_name="/decompose"
    )
    assert "stage3.module2 → stream 1" in text and trace_types(plot(fig)) == ["heatmap"] * 5


def test_variant_options(client):
    weights, *modules = client.predict("hrnet_w18", api_name="/variant_options")
    assert [c[0] for c in weights["choices"]][:2] == ["default", "ms_aug_in1k"]
    assert modules[0]["value"] == "stage4.module2" and len(modules[0]["choices"]) == 8


def test_bad_inputs_are_clear_errors_and_the_app_keeps_serving(client, tmp_path):
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"this is not a picture")
    with pytest.raises(Exception, match="not an image we can read"):
        client.predict(handle_file(str(bad)), *MODEL, "energy_share", api_name="/analyze")
    with pytest.raises(Exception, match="Upload an image first"):
        client.predict(None, *MODEL, "energy_share", api_name="/analyze")
    with pytest.raises(Exception, match="Input size must be a multiple of 32 from 32 to 448 px"):
        client.predict(handle_file(EXAMPLE), VARIANT, "default", "100", "energy_share", api_name="/analyze")
    with pytest.raises(Exception, match="Input size must be a multiple of 32"):
        client.predict(handle_file(EXAMPLE), VARIANT, "default", 4096, "energy_share", api_name="/analyze")
    with pytest.raises(Exception, match="Unknown weights"):
        client.predict(handle_file(EXAMPLE), VARIANT, "imagenet22k", "default", "energy_share", api_name="/analyze")
    with pytest.raises(Exception, match="at least two"):
        client.predict(handle_file(EXAMPLE), ["hrnet_w18_small"], "random", "default", api_name="/compare")
    with pytest.raises(Exception, match="two different variants.*picked 2 times"):
        client.predict(handle_file(EXAMPLE), [VARIANT, VARIANT], "random", "default", api_name="/compare")
    with pytest.raises(Exception, match="No edge 3→0 in stage2"):
        client.predict(
            handle_file(EXAMPLE), *MODEL, "edge", "0", "3", "0", "stage2.module0", "top-1 prediction",
            api_name="/knockout",
        )  # fmt: skip
    huge = tmp_path / "huge.png"
    huge.write_bytes(os.urandom(3_000_000))  # over this server's 2 MB max_file_size
    with pytest.raises(Exception, match="maximum file size"):
        client.predict(handle_file(str(huge)), *MODEL, "energy_share", api_name="/analyze")
    # ...and the app still answers.
    _, summary, *_ = client.predict(handle_file(EXAMPLE), *MODEL, "energy_share", api_name="/analyze")
    assert VARIANT in summary


def test_server_settings(app):
    demo, _ = app
    assert demo._queue.max_size == QUEUE_MAX_SIZE
    assert demo._queue.default_concurrency_limit == CONCURRENCY_LIMIT == 1
    model_events = [fn for fn in demo.fns.values() if fn.concurrency_id == "model"]
    assert len(model_events) >= 10  # every model event shares one concurrency group
    assert demo.delete_cache is not None


def test_app_py_binds_locally_by_default(monkeypatch):
    import gradio as gr

    from hrnet_explorer import app as package_app

    spec = importlib.util.spec_from_file_location("app", ROOT / "app.py")
    app_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app_module)  # builds the demo; launches nothing
    # the repository's app.py is the thin entry point: a module-level demo for Spaces, the package's main
    assert isinstance(app_module.demo, gr.Blocks) and app_module.main is package_app.main

    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    args = package_app.parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    assert (package_app.parse_args([]).host, package_app.parse_args([]).port) == ("0.0.0.0", 7999)
    assert package_app.parse_args(["--host", "10.0.0.2", "--port", "8000"]).port == 8000


def test_zero_gpu_shim_is_a_no_op_without_spaces(explorer):
    def f():
        return 1

    assert gpu(f) is f
    # Under ZeroGPU, spaces.GPU pickles the GPU functions' arguments and results: plain CPU data only.
    x = torch.zeros(1, 3, 64, 64)
    result, ms = pickle.loads(pickle.dumps(explorer._traced_forward_impl(VARIANT, "random", x)))
    assert result.logits.device.type == "cpu" and ms > 0
    cam = pickle.loads(pickle.dumps(explorer._explain_impl("gradcam_streams", VARIANT, "random", x, {"target": 3})))
    assert len(cam.maps) == 4


def test_only_the_example_images_are_served_and_refusals_say_why(app):
    """allowed_paths lists the example images, not assets/ (its make_assets.py and README stay private); a server
    path sent as an input is refused with a message, not with "error": null."""
    import urllib.error
    import urllib.request

    url = app[1].src.rstrip("/") + "/"

    def status(path) -> int:
        try:
            return urllib.request.urlopen(f"{url}gradio_api/file={path}").status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert status(ASSETS / "grace_hopper.jpg") == 200
    assert status(ASSETS / "make_assets.py") == 403 and status(ASSETS / "README.md") == 403
    body = json.dumps(
        {"data": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, *MODEL, "energy_share"]}
    ).encode()
    request = urllib.request.Request(f"{url}gradio_api/call/analyze", body, {"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(request).read())["event_id"]
    stream = urllib.request.urlopen(f"{url}gradio_api/call/analyze/{event}").read().decode()
    assert "event: error" in stream and '"error": null' not in stream and "/etc/passwd" in stream


def test_knockout_pickers_follow_the_module_and_the_kind():
    from hrnet_explorer.ui import Explorer

    stream, source, target = Explorer.knockout_controls("stream", "stage2.module0", "3", "1", "0")
    assert stream["choices"] == ["0", "1"] and stream["value"] == "0" and stream["interactive"] is True
    assert source["interactive"] is False and target["interactive"] is False  # the edge pickers rest
    stream, source, target = Explorer.knockout_controls("edge", "stage3.module2", "0", "2", "1")
    assert source["choices"] == ["0", "1", "2"] and (source["value"], target["value"]) == ("2", "1")
    assert stream["interactive"] is False and source["interactive"] is True
    stream, *_ = Explorer.knockout_controls("stream", "every module", "3", "1", "0")
    assert stream["choices"] == ["0", "1", "2", "3"] and stream["value"] == "3"


def test_an_upload_that_is_not_an_image_is_removed_at_once(tmp_path):
    from hrnet_explorer.ui import Explorer

    bad = tmp_path / "photo.png"
    bad.write_bytes(b"this is not a picture")
    with pytest.warns(UserWarning, match="not an image we can read"):
        assert Explorer.check_upload(str(bad)) is None  # cleared: no broken thumbnail before Analyze
    assert not isinstance(Explorer.check_upload(EXAMPLE), (str, type(None)))  # a good image stays (skip)


def test_reliance_reports_one_progress_step_per_stream(explorer):
    from hrnet_explorer import attribution as attr

    steps = []
    fig, text = explorer.reliance(EXAMPLE, *MODEL, "top-1 prediction", progress=lambda f, desc="": steps.append(desc))
    assert [d for d in steps if "Knocking out stream" in d] == [
        f"Knocking out stream {k} everywhere ({k + 1}/4)" for k in range(4)
    ]
    a, _ = explorer.analysis(EXAMPLE, *MODEL)
    expected = attr.resolution_reliance(a.loaded, a.inputs, a.target)
    shown = [d.x for d in fig.data[:1]][0][::-1]  # bars are drawn bottom-up
    assert list(shown) == pytest.approx([r.logit_delta for r in expected], rel=1e-4, abs=1e-5)


def test_progress_shows_on_the_figure_not_on_the_text_below_it(app):
    demo = app[0]
    ids = {getattr(c, "elem_id", None): c._id for c in demo.blocks.values()}
    by_name = {d.get("api_name"): d for d in demo.config["dependencies"]}
    for name, plot_id in (("attribute", "attribution-plot"), ("knockout", "knockout-plot"),
                          ("reliance", "knockout-plot"), ("decompose", "decomposition-plot"),
                          ("trust", "trust-curves")):  # fmt: skip
        assert by_name[name]["show_progress_on"] == [ids[plot_id]], name


def test_long_attributions_report_real_progress(explorer):
    """Attribute and Stream shares show each batch on the progress bar: the real fraction, "IG: batch 3/8"."""

    def batches(run) -> list[tuple[float, str]]:
        seen = []
        run(lambda fraction, desc="": seen.append((fraction, desc)))
        return [(f, d) for f, d in seen if ": batch " in d]

    # 224 px on a CPU: occlusion's 49 windows 8 at a time after the unoccluded forward, 7 + 1 batches; stream
    # shares' 16 steps 8 at a time after the body's forward, 2 + 1
    occlusion = batches(lambda p: explorer.attribute(EXAMPLE, *MODEL, "occlusion", "top-1 prediction", progress=p))
    shares = batches(lambda p: explorer.stream_shares(EXAMPLE, *MODEL, "top-1 prediction", 16, progress=p))
    for seen, name, total in ((occlusion, "Occlusion", 8), (shares, "Stream shares", 3)):
        assert [f for f, _ in seen] == [k / total for k in range(total + 1)], seen
        assert [d.rsplit(" ", 1)[1] for _, d in seen] == [f"{k}/{total}" for k in range(total + 1)]
        assert all(d.startswith(name) for _, d in seen), seen


def test_an_internal_error_is_a_generic_message_and_a_logged_traceback(client, monkeypatch, caplog):
    """A bug (here a bare ValueError and a RuntimeError, neither a UserError) is not shown as the user's mistake:
    the browser gets a generic message with a reference, the server log the traceback under that reference."""
    from hrnet_explorer.ui import callbacks

    def bug(*args, **kwargs):
        raise ValueError("a bug in the costs, at /srv/secret/path.py")

    def other_bug(*args, **kwargs):
        raise RuntimeError("shape mismatch deep inside")

    monkeypatch.setattr(callbacks, "variant_costs", bug)
    monkeypatch.setattr(callbacks, "decompose", other_bug)
    caplog.set_level(logging.ERROR, logger="hrnet_explorer.ui")
    for call, secret in (
        (lambda: client.predict(handle_file(EXAMPLE), *MODEL, "energy_share", api_name="/analyze"), "/srv/secret"),
        (lambda: client.predict(handle_file(EXAMPLE), *MODEL, "stage4.module0", "0", api_name="/decompose"), "shape"),
    ):
        with pytest.raises(AppError) as info:
            call()
        message = str(info.value)
        assert INTERNAL_ERROR in message and secret not in message, message
        ref = re.search(r"\(ref ([0-9a-f]{8})\)", message).group(1)
        logged = [r for r in caplog.records if ref in r.getMessage()]
        assert len(logged) == 1 and logged[0].levelno == logging.ERROR and logged[0].exc_info is not None
        assert secret in "".join(traceback.format_exception(*logged[0].exc_info))
    monkeypatch.undo()
    _, summary, *_ = client.predict(handle_file(EXAMPLE), *MODEL, "energy_share", api_name="/analyze")
    assert VARIANT in summary  # ...and the app still answers


def test_every_event_of_ours_is_guarded(app):
    """Each event the app registers (not Gradio's own, like the examples' loader) runs inside ui.guard.user_errors,
    so no exception text of ours reaches a browser unfiltered (launch_options() has show_error=True)."""
    from hrnet_explorer.ui.guard import user_errors

    guard = user_errors(lambda: None).__code__  # every wrapper user_errors makes runs this code

    def guarded(fn) -> bool:
        while fn is not None:
            fn = getattr(fn, "__func__", fn)
            if fn.__code__ is guard:
                return True
            fn = getattr(fn, "__wrapped__", None)
        return False

    ours = {f.api_name: f.fn for f in app[0].fns.values() if f.fn.__module__.startswith("hrnet_explorer")}
    assert set(ours) >= {e.strip("/") for e in ENDPOINTS} | {"check_upload", "knockout_controls", "report"}
    assert [name for name, fn in ours.items() if not guarded(fn)] == []


USER_MISTAKES = [  # ours, then a few that Gradio refuses itself (a value outside a menu that takes none)
    ("/analyze", (VARIANT, "default", "512", "energy_share"), "Input size must be a multiple of 32"),
    ("/analyze", (VARIANT, "ms_aug_in1k", "default", "energy_share"), "Unknown weights 'ms_aug_in1k'"),
    ("/streams", (*MODEL, "l2", "stage4"), "Expected a module name like 'stage4.module0'"),
    ("/streams", (*MODEL, "l2", "stage9.module0"), "stage 9"),
    ("/decompose", (*MODEL, "stage4.module7", "0"), "module 7"),
    ("/attribute", (*MODEL, "saliency", "1000"), "this model's classes are 0..999, got 1000"),
    ("/attribute", (*MODEL, "saliency", "goldfishes"), "Class 'goldfishes' matches 0 classes"),  # a name: issue 26
    ("/gradcam", (*MODEL, "stage4.module0", "-3: nothing"), "this model's classes are 0..999, got -3"),
    ("/stream_shares", (*MODEL, "top-1 prediction", 1), "less than minimum value 4"),
    ("/knockout", (*MODEL, "stream", "0", "0", "0", "stage2.modulo", "top-1 prediction"), "Expected a module name"),
    ("/analyze", (VARIANT, "default", "default", "entropy"), "not in the list of choices"),
    ("/analyze", ("hrnet_w17", "default", "default", "energy_share"), "not in the list of choices"),
    ("/attribute", (*MODEL, "lime", "top-1 prediction"), "not in the list of choices"),
    ("/knockout", (*MODEL, "layer", "0", "0", "0", "every module", "top-1 prediction"), "not in the list of choices"),
]


@pytest.mark.parametrize(("api", "args", "expected"), USER_MISTAKES, ids=[f"{a}:{e[:24]}" for a, _, e in USER_MISTAKES])
def test_every_user_mistake_is_one_line(client, api, args, expected):
    with pytest.raises(AppError) as info:
        client.predict(handle_file(EXAMPLE), *args, api_name=api)
    message = str(info.value)
    assert html.unescape(expected) in html.unescape(message) and INTERNAL_ERROR not in message, message
    assert "\n" not in message.strip() and "Traceback" not in message


def test_the_report_reuses_the_analysis(explorer, monkeypatch):
    """The report endpoint draws from the cached Analysis, which holds the prediction and the full trace: neither
    a traced forward nor a prediction of the image runs again (counted wherever the package holds the functions)."""
    import sys

    from hrnet_explorer.predict import predict
    from hrnet_explorer.trace import trace

    calls: list[str] = []

    def counted(fn):
        def forward(*args, **kwargs):
            calls.append(fn.__name__)
            return fn(*args, **kwargs)

        return forward

    model = (VARIANT, "random", "64")
    replacements = {trace: counted(trace), predict: counted(predict)}
    for name, module in list(sys.modules.items()):
        if name.startswith("hrnet_explorer"):
            for attribute, value in list(vars(module).items()):
                if any(value is fn for fn in replacements):
                    monkeypatch.setattr(module, attribute, replacements[value])
    explorer.cache.clear()
    explorer.analysis(EXAMPLE, *model)
    assert calls == ["trace"]  # the counter counts: the analysis is one traced forward (on a CPU)
    misses = explorer.cache.misses
    page, bundle = explorer.report(EXAMPLE, *model, progress=lambda *args, **kwargs: None)
    assert calls == ["trace"] and explorer.cache.misses == misses  # the report ran neither again
    assert page["visible"] and Path(page["value"]).stat().st_size > 0 and Path(bundle["value"]).suffix == ".zip"


def test_a_model_choice_of_any_type_is_a_user_error(explorer):
    """API callers may send anything as the variant: a number or null is an unknown model, not a crash."""
    from hrnet_explorer.errors import InputError

    assert explorer.model_name("w18") == "hrnet_w18" and explorer.model_name("lab") == "lab"
    for value in (None, 5, ["hrnet_w18"], "hrnet_w17"):
        with pytest.raises(InputError, match=r"Unknown model .*Choose one of: hrnet_w18_small, "):
            explorer.model_name(value)

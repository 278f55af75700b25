"""`hrnet-explorer report`: the HTML of an analyze run and of one image, opened offline in a real browser
(Debian's Chromium through Playwright; every request that is not a file: URL is aborted and recorded)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from repo import ROOT
from safetensors.torch import load_file

from hrnet_explorer.cli import main
from hrnet_explorer.report import dataset_report, image_report
from hrnet_explorer.ui import ASSETS
from hrnet_explorer.zoo import RandomWeightsWarning

ARTIFACTS = ROOT / "artifacts"
SIZE = 64


def _run(*args: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return main(list(args))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A small analyze run with --reliance: two classes, 8 images each, one broken file."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for c in ("left", "right"):
        (root / c).mkdir()
        for i in range(8):
            Image.fromarray((rng.random((4, 4, 3)) * 255).astype(np.uint8)).resize((80, 72)).save(root / c / f"{i}.jpg")
    (root / "left" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path_factory.mktemp("run")
    assert (
        _run(
            "analyze",
            str(root),
            "--out",
            str(out),
            "-w",
            "random",
            "--device",
            "cpu",
            "--input-size",
            str(SIZE),
            "--workers",
            "0",
            "-b",
            "8",
            "-q",
            "--reliance",
        )
        == 0
    )
    return out


def _open_offline(browser, path: Path, screenshot: str) -> tuple[int, int]:
    """Open ``path`` with every non-file request aborted; → (figure divs, figures drawn as SVG)."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def route(r):
        if r.request.url.startswith("file:"):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    try:
        page.goto(path.resolve().as_uri(), wait_until="load", timeout=60_000)
        page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.figure .plotly-graph-div')]"
            ".every(d => d.querySelector('.main-svg'))",
            timeout=60_000,
        )
        divs = page.locator(".figure .plotly-graph-div").count()
        drawn = page.locator(".figure .plotly-graph-div .main-svg").count()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    finally:
        page.close()
    assert not errors, errors
    assert not outside, f"the report fetched {outside}"
    return divs, drawn


def test_dataset_report_opens_offline_with_every_figure(run_dir, browser, tmp_path):
    out = tmp_path / "report.html"
    assert _run("report", str(run_dir), "--out", str(out)) == 0
    text = out.read_text()
    assert "<script src=" not in text and "<link" not in text  # Plotly's JS is inline; nothing is fetched
    for heading in ("Summary", "Predictions", "Stream energy", "Fusion: energy share", "Stream reliance"):
        assert f">{heading}</h2>" in text, heading
    assert "The images each knockout changes most" in text and "data:image/jpeg;base64," in text
    assert "left/broken.jpg" in text  # the errors table
    divs, drawn = _open_offline(browser, out, "report_dataset.png")
    # confidence, top classes, energy, 3 share measures, reliance heatmap (no accuracy: not ImageNet labels)
    assert divs == 7 and drawn >= divs


def test_dataset_report_of_the_lab_shows_accuracy_per_family(browser, tmp_path):
    run = tmp_path / "lab"
    assert (
        _run(
            "analyze", "lab:20", "--out", str(run), "--device", "cpu", "--input-size", str(SIZE), "-q", "--workers", "0"
        )
        == 0
    )
    out = dataset_report(run)
    assert out == run / "report.html"
    text = out.read_text()
    assert ">Accuracy per class</h2>" in text and ">Accuracy per family</h2>" in text
    assert "lab.safetensors" not in text and "file: the checkpoint of lab (sha256 " in text  # a page to share
    divs, drawn = _open_offline(browser, out, "report_lab.png")
    assert divs == 8 and drawn >= divs  # per class, per family, confidence, top classes, energy, 3 × shares


def test_image_report_has_every_figure_and_the_trace_beside_it(browser, tmp_path):
    out = tmp_path / "one" / "grace.html"
    assert (
        _run(
            "report",
            str(ASSETS / "grace_hopper.jpg"),
            "-v",
            "w18_small",
            "-w",
            "random",
            "--device",
            "cpu",
            "--input-size",
            str(SIZE),
            "--out",
            str(out),
        )
        == 0
    )
    manifest = json.loads(out.with_suffix(".json").read_text())
    tensors = load_file(str(out.with_suffix(".safetensors")))
    assert set(tensors) == set(manifest["kept"]["names"]) and "logits" in tensors
    assert "stage4.module0.fused0" in tensors and "stage4.module0.edge1to0" not in tensors  # keep="outputs"
    assert list(tensors["stage4.module0.fused0"].shape) == manifest["maps"]["stage4.module0.fused0"]
    assert manifest["model"]["weights"]["random"] and len(manifest["image"]["sha256"]) == 64
    assert set(manifest["fusion"]) == {"stage2.module0", "stage3.module0", "stage4.module0"}
    assert manifest["prediction"][0]["index"] == int(tensors["logits"][0].argmax())
    divs, drawn = _open_offline(browser, out, "report_image.png")
    assert divs == len(manifest["figures"]) >= 16 and drawn >= divs
    assert "Random weights" in out.read_text()


def test_image_report_keep_all(tmp_path):
    paths = image_report(
        ASSETS / "grace_hopper.jpg",
        "hrnet_w18_small",
        tmp_path / "r.html",
        weights="random",
        device="cpu",
        input_size=SIZE,
        keep="all",
    )
    assert "stage4.module0.edge1to0" in load_file(str(paths["safetensors"]))


def test_image_report_with_the_trust_figures(w18_small, tmp_path):
    """Issue 26, item 14: the README promised every figure of the app in the report, and the Trust view's were not
    there. With trust=True (the app's Report button) they are: the curves of saliency, IG and a random map, and
    saliency's randomisation test, warned as random; the progress counts their steps too."""
    calls = []
    paths = image_report(
        Image.new("RGB", (64, 64), "white"),
        out=tmp_path / "t.html",
        loaded=w18_small,
        input_size=64,
        ig_steps=2,
        trust=True,
        progress=lambda done, total: calls.append((done, total)),
    )
    figures = json.loads(paths["json"].read_text())["figures"]
    assert figures[-2:] == ["Trust: deletion and insertion", "Trust: the randomisation test of saliency"]
    page = paths["html"].read_text()
    assert "Deletion and insertion for" in page and "Randomisation test for" in page
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[0] == (0, 12) and calls[-1][0] == calls[-1][1]
    out = tmp_path / "cli.html"  # the command line's --trust; without it no Trust figure (test_cli_progress: 8 phases)
    args = ["report", str(ASSETS / "grace_hopper.jpg"), "-v", "w18_small", "-w", "random", "--device", "cpu"]
    assert _run(*args, "--input-size", str(SIZE), "--trust", "--quiet", "--out", str(out)) == 0
    assert json.loads(out.with_suffix(".json").read_text())["figures"][-2:] == figures[-2:]


def test_reports_name_a_checkpoint_by_its_model_never_by_its_path(tmp_path):
    """Issue 26, items 7 and 14: the image report (its page and its manifest, both downloaded from the app) and the
    trace summary gave the weights file's path on the machine that wrote them; they name the model now."""
    from hrnet_explorer import load_model, trace
    from hrnet_explorer.images import preprocess
    from hrnet_explorer.report import trace_summary

    lab = load_model("lab", device="cpu")
    path = lab.weights.detail
    assert lab.weights.kind == "file" and path.endswith(".safetensors")
    paths = image_report(Image.new("RGB", (64, 64), "white"), out=tmp_path / "r.html", loaded=lab, ig_steps=2)
    page, manifest = paths["html"].read_text(), paths["json"].read_text()
    for text in (page, manifest):
        assert path not in text and "lab.safetensors" not in text
    assert "file: the checkpoint of lab" in page
    assert json.loads(manifest)["model"]["weights"] == {
        "kind": "file",
        "detail": "the checkpoint of lab",
        "tag": None,
        "random": False,
    }
    summary = trace_summary(trace(lab, preprocess(Image.new("RGB", (64, 64)), lab.data_config)), model=lab)
    assert summary["weights"]["detail"] == "the checkpoint of lab" and path not in json.dumps(summary)


def test_dataset_summaries_and_their_figures():
    """The rows of a run reduced to what the page draws (NaN and null rows ignored), and the figures drawing exactly
    those numbers."""
    import pyarrow as pa

    from hrnet_explorer import figures as F
    from hrnet_explorer.report.dataset import accuracy_by, class_reliance, edge_quartiles, stream_energy, top_classes

    rows = pa.table(
        {
            "label": [0, 0, 1, None],
            "label_name": ["cat", "cat", "dog", None],
            "correct": [1.0, 0.0, 1.0, None],
            "top1_name": ["cat", "dog", "dog", "dog"],
            "top1_prob": [0.9, 0.6, 0.8, 0.5],
            "energy.stage2.module0.stream0": [1.0, 3.0, np.nan, 2.0],
            "energy.stage3.module0.stream0": [4.0, 4.0, 4.0, 4.0],
            "energy_share.stage4.module0.edge1to0": [0.1, 0.2, 0.3, 0.4],
            "reliance.stage4.stream0": [-0.5, -0.1, 0.2, 0.0],
        }
    )
    tables = {"w18": rows, "empty": rows.slice(0, 0)}
    (acc,) = accuracy_by(tables)
    assert acc.groups == ["(none)", "cat", "dog"] and acc.counts.tolist() == [0, 2, 1]  # the unlabelled row: no mean
    np.testing.assert_array_equal(acc.accuracy, [np.nan, 0.5, 1.0])
    (family,) = accuracy_by(tables, {"cat": "pets"})
    assert family.groups == ["(other)", "pets"] and family.accuracy.tolist() == [1.0, 0.5]
    (top,) = top_classes(tables)
    assert top.classes == ["dog", "cat"] and top.counts.tolist() == [3, 1]
    (energy,) = stream_energy(tables)
    assert energy.modules == ["stage2.module0", "stage3.module0"] and energy.energy == [2.0, 4.0]
    (box,) = edge_quartiles(tables, "energy_share")
    assert box.edges == ["1→0"] and box.median == pytest.approx([0.25]) and box.mean == pytest.approx([0.25])
    (reliance,) = class_reliance(tables)
    assert reliance.labelled and reliance.knockouts == ["stage4.stream0"]
    assert dict(zip(reliance.classes, reliance.delta[:, 0].tolist(), strict=True)) == pytest.approx(
        {"cat": -0.3, "dog": 0.2, "(none)": 0.0}
    )

    bars = F.accuracy_figure([acc]).data[0]
    assert list(bars.x) == acc.groups and list(bars.customdata) == [0, 2, 1]
    assert F.accuracy_figure([family], by="family").layout.xaxis.title.text == "family"
    line = F.energy_figure([energy]).data[0]
    assert list(line.y) == [2.0, 4.0] and line.line.color == F.STREAM_COLORS[0]
    assert list(F.shares_figure([box], "energy_share").data[0].median) == box.median
    heat = F.reliance_figure([reliance])
    assert heat.layout.coloraxis.cmax == pytest.approx(0.3) and heat.layout.coloraxis.cmin == pytest.approx(-0.3)
    assert list(F.confidence_figure({"w18": np.array([0.9, 0.6])}).data[0].x) == [0.9, 0.6]
    assert list(F.top_classes_figure([top]).data[0].y) == [3, 1]
    with pytest.raises(ValueError, match="'class' or 'family'"):
        F.accuracy_figure([acc], by="variant")
    with pytest.raises(ValueError, match="at least one"):
        F.reliance_figure([])


def test_image_report_reuses_a_given_trace_and_prediction(w18_small, tmp_path, monkeypatch):
    """The app's Analysis holds the prediction and a keep="all" trace of its image: the report draws from them
    (neither the trace nor the prediction runs again) and leaves the shared trace as it was."""
    import importlib

    import torch

    from hrnet_explorer.images import preprocess, read_image

    # the modules (the package's own names `trace` and `predict` are the functions)
    trace_module = importlib.import_module("hrnet_explorer.trace")
    predict_module = importlib.import_module("hrnet_explorer.predict")

    image = ASSETS / "grace_hopper.jpg"
    x = preprocess(read_image(image), w18_small.data_config, SIZE)
    traced = trace_module.trace(w18_small, x, keep="all", store="cpu")
    prediction = predict_module.predict(w18_small, x)

    def refuse(*args, **kwargs):
        raise AssertionError("ran again")

    monkeypatch.setattr(trace_module, "trace", refuse)
    monkeypatch.setattr(predict_module, "predict", refuse)
    paths = image_report(
        image,
        out=tmp_path / "r.html",
        loaded=w18_small,
        input_size=SIZE,
        ig_steps=4,
        prediction=prediction,
        traced=traced,
    )
    manifest = json.loads(paths["json"].read_text())
    assert manifest["prediction"][0]["index"] == prediction.top[0].index
    assert torch.equal(load_file(str(paths["safetensors"]))["logits"], traced.logits.float())
    outputs = trace_module.Trace(**{**vars(traced), "keep": "outputs"})
    with pytest.raises(ValueError, match="keep='all' trace"):
        image_report(image, out=tmp_path / "s.html", loaded=w18_small, input_size=SIZE, traced=outputs)


def test_save_trace_writes_the_kept_maps_and_a_manifest(w18_small, tmp_path):
    """The core export under the image report: float32 maps by trace name, the manifest beside them, the caller's
    entries in it."""
    import torch

    from hrnet_explorer import save_trace, trace
    from hrnet_explorer.analyses import module_fusion

    torch.manual_seed(0)
    result = trace(w18_small, torch.randn(1, 3, SIZE, SIZE), keep="all")
    saved = save_trace(result, tmp_path / "t.html", loaded=w18_small, manifest={"image": {"name": "noise"}})
    assert saved.tensors == tmp_path / "t.safetensors" and saved.manifest == tmp_path / "t.json"
    tensors = load_file(str(saved.tensors))
    assert set(tensors) == set(saved.names) and "stage4.module0.edge1to0" not in tensors
    assert set(tensors) == {n for n in result.maps if not any(k in n for k in (".branch", ".edge", ".presum"))}
    assert torch.equal(tensors["logits"], result.logits.float())
    manifest = json.loads(saved.manifest.read_text())
    assert manifest["format"] == "hrnet-explorer-trace/1" and manifest["image"] == {"name": "noise"}
    assert manifest["model"]["weights"]["random"] and manifest["model"]["preprocessing"]["input_size"] == [
        3,
        SIZE,
        SIZE,
    ]
    matrix = module_fusion(result)["stage3.module0"].matrix("agreement", 0)
    assert manifest["fusion"]["stage3.module0"]["agreement"] == matrix.tolist()
    assert manifest["files"] == {"safetensors": "t.safetensors", "json": "t.json"}
    every = save_trace(result, tmp_path / "all", keep="all")
    assert (
        set(every.names) == set(result.maps)
        and json.loads(every.manifest.read_text())["model"]["name"] == "hrnet_w18_small"
    )
    with pytest.raises(ValueError, match="keep must be"):
        save_trace(result, tmp_path / "x", keep="summaries")


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "/no/such/thing.jpg"], "No such image file"),
        (["report", "{assets}/grace_hopper.jpg", "--out", "x.png"], "must end in .html"),
    ],
)
def test_report_mistakes_are_one_line_errors(args, message, capsys, tmp_path):
    args = [a.format(assets=ASSETS) for a in args]
    assert _run(*args, "-w", "random", "--device", "cpu") == 2
    err = capsys.readouterr().err
    assert err.startswith("hrnet-explorer: error:") and message in err


def test_report_of_a_folder_without_a_run(tmp_path, capsys):
    assert _run("report", str(tmp_path)) == 2
    assert "holds no analyze run" in capsys.readouterr().err


def test_the_app_builds_the_report_of_its_image(browser, monkeypatch):
    """The app's "Report of this image" button (/report): two download buttons, the HTML (which opens offline)
    and a zip of the trace (safetensors + JSON)."""
    import zipfile

    from hrnet_explorer.ui import Explorer, build_demo, callbacks

    monkeypatch.setattr(callbacks, "REPORTS_KEPT", 1)
    ex = Explorer(device="cpu")
    image = str(ASSETS / "grace_hopper.jpg")
    html_button, trace_button = ex.report(image, "hrnet_w18_small", "random", str(SIZE), progress=lambda *a, **k: None)
    page, bundle = Path(html_button["value"]), Path(trace_button["value"])
    assert html_button["visible"] and trace_button["visible"] and page.suffix == ".html"
    with zipfile.ZipFile(bundle) as zf:
        names = sorted(zf.namelist())
        manifest = json.loads(zf.read(names[0]))
    assert [Path(n).suffix for n in names] == [".json", ".safetensors"]
    assert manifest["image"]["name"] == "grace_hopper.jpg"  # not the server's path
    divs, drawn = _open_offline(browser, page, "report_app.png")
    assert divs >= 16 and drawn >= divs
    second, _ = ex.report(image, "hrnet_w18_small", "random", str(SIZE), progress=lambda *a, **k: None)
    assert Path(second["value"]).exists() and not page.exists()  # only the latest REPORTS_KEPT stay
    demo = build_demo(ex)
    assert "report" in {getattr(fn, "api_name", None) for fn in demo.fns.values()}

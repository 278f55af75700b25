"""Bring your own HRNet: a 7-class checkpoint with a model card (made here, seeded random weights) through
loading, predict, trace, attribution, knockouts, figures, the CLI and the app; every bad card; the lab model by
name; deterministic random weights. hrnet_w18_small at 64 px throughout (the card's input size)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import timm
import torch
from gradio_client import Client, handle_file
from PIL import Image
from repo import ROOT
from safetensors.torch import save_file
from servers import launched_demo

from hrnet_explorer import attribution as A
from hrnet_explorer import figures as F
from hrnet_explorer import predict, trace, zoo
from hrnet_explorer.cli import main
from hrnet_explorer.predict import topk_from_logits
from hrnet_explorer.report import trace_summary
from hrnet_explorer.ui import Explorer
from hrnet_explorer.zoo import CardError, RandomWeightsWarning, WeightsError, load_model

NAMES = ["stripes", "spots", "checker", "disk", "ring, circle", "cross", "square"]
CARD = {
    "format": "hrnet-explorer-card/1",
    "name": "my_lab",
    "architecture": "hrnet_w18_small",
    "num_classes": 7,
    "class_names": NAMES,
    "preprocessing": {
        "input_size": [3, 64, 64],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "interpolation": "bicubic",
        "crop_pct": 1.0,
    },
    "description": "seeded random weights, for tests",
    "training": {"epochs": 0, "seed": 3},
    "notes": "an unknown key, kept",
}


def write_checkpoint(path: Path, architecture: str = "hrnet_w18_small", num_classes: int = 7) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(3)
        model = timm.create_model(architecture, num_classes=num_classes)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def with_card(folder: Path, checkpoint: Path, card: dict | str, stem: str = "model") -> Path:
    """``folder/stem.safetensors`` (a link to ``checkpoint``) with ``card`` beside it as ``stem.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.safetensors"
    path.symlink_to(checkpoint)
    (folder / f"{stem}.json").write_text(card if isinstance(card, str) else json.dumps(card))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "seven.safetensors")


@pytest.fixture(scope="module")
def carded(checkpoint, tmp_path_factory) -> Path:
    return with_card(tmp_path_factory.mktemp("models"), checkpoint, CARD, stem="birds")


@pytest.fixture(scope="module")
def loaded(carded) -> zoo.LoadedModel:
    return load_model("hrnet_w18_small", carded, device="cpu", cache=False)


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "picture.png"
    Image.effect_mandelbrot((80, 64), (-2, -1.2, 1, 1.2), 64).convert("RGB").save(path)
    return path


# ------------------------------------------------------------------------------------------- loading


def test_the_card_gives_names_preprocessing_and_display_name(loaded, checkpoint):
    assert loaded.name == "my_lab" and loaded.num_classes == 7 and loaded.class_names == tuple(NAMES)
    assert loaded.weights.kind == "file" and not loaded.weights.is_random
    assert loaded.card["training"] == {"epochs": 0, "seed": 3} and loaded.card["notes"] == "an unknown key, kept"
    cfg = loaded.data_config
    assert cfg["input_size"] == (3, 64, 64) and cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 1.0
    assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["std"] == (0.25, 0.25, 0.25) and cfg["crop_mode"] == "center"
    assert loaded.model.classifier.out_features == 7 and loaded.architecture == "hrnet_w18_small"
    with torch.random.fork_rng():
        torch.manual_seed(3)
        written = timm.create_model("hrnet_w18_small", num_classes=7).state_dict()
    assert all(torch.equal(written[k], v) for k, v in loaded.model.state_dict().items())
    assert loaded.class_name(4) == "ring, circle"
    for bad in (7, -1):
        with pytest.raises(ValueError, match=r"my_lab has classes 0\.\.6"):
            loaded.class_name(bad)


def test_pth_checkpoint_with_card(checkpoint, tmp_path):
    from safetensors.torch import load_file

    torch.save({"state_dict": load_file(str(checkpoint))}, tmp_path / "birds.pth")
    (tmp_path / "birds.json").write_text(json.dumps({k: v for k, v in CARD.items() if k != "name"}))
    model = load_model("w18_small", tmp_path / "birds.pth", device="cpu", cache=False)
    assert model.name == "birds" and model.class_names == tuple(NAMES)  # no "name": the file stem


def test_without_card_labels_or_numbered_names(checkpoint, tmp_path):
    plain = load_model("hrnet_w18_small", checkpoint, device="cpu", cache=False)
    assert plain.name == "seven" and plain.class_names == tuple(f"class {i}" for i in range(7))
    assert plain.card is None and plain.data_config["input_size"] == (3, 224, 224)  # timm's config
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(NAMES) + "\n\n")
    named = load_model("hrnet_w18_small", checkpoint, device="cpu", labels=labels, cache=False)
    assert named.class_names == tuple(NAMES)
    assert load_model("hrnet_w18_small", checkpoint, device="cpu", labels=NAMES).class_name(6) == "square"
    with pytest.warns(RandomWeightsWarning):
        imagenet = load_model("hrnet_w18_small", "random", device="cpu", seed=1)
    assert imagenet.num_classes == 1000 and imagenet.class_name(1).startswith("goldfish")
    assert imagenet.name == "hrnet_w18_small"


def test_topk_ranks_by_logit_even_when_probabilities_underflow():
    logits = torch.tensor([1000.0, 1001.0, 3000.0, 999.0, -5.0])  # all but one probability underflow to 0
    top = topk_from_logits(logits, 4, ["a", "b", "c", "d", "e"])
    assert [s.index for s in top] == [2, 1, 0, 3] and [s.label for s in top] == ["c", "b", "a", "d"]
    assert top[0].probability == 1.0 and top[1].probability == 0.0
    assert len(topk_from_logits(logits, 50)) == 5  # bounded by the number of classes
    with pytest.raises(ValueError, match="topk"):
        topk_from_logits(logits, 0)


# ----------------------------------------------------------------------------------------- bad cards


def _edit(change) -> dict:
    card = copy.deepcopy(CARD)
    change(card)
    return card


BAD_CARDS = {
    "not json": ("{'format': ", r"is not valid JSON"),
    "not an object": ("[1, 2]", r"must hold a JSON object"),
    "format": (_edit(lambda c: c.update(format="card/2")), r"field 'format' must be 'hrnet-explorer-card/1'"),
    "missing architecture": (_edit(lambda c: c.pop("architecture")), r"field 'architecture' is missing"),
    "unknown architecture": (_edit(lambda c: c.update(architecture="hrnet_w99")), r"'architecture' must be one of"),
    "num_classes type": (_edit(lambda c: c.update(num_classes="7")), r"'num_classes' must be a positive integer"),
    "names length": (_edit(lambda c: c.update(class_names=NAMES[:6])), r"'class_names' has 6 names, but num_"),
    "names repeated": (_edit(lambda c: c.update(class_names=[*NAMES[:6], "spots"])), r"names 'spots' twice"),
    "name empty": (_edit(lambda c: c["class_names"].__setitem__(2, " ")), r"'class_names' class 2 has no name"),
    "names type": (_edit(lambda c: c.update(class_names="stripes")), r"'class_names' must be a list of strings"),
    "no preprocessing": (_edit(lambda c: c.pop("preprocessing")), r"field 'preprocessing' is missing"),
    "no crop_pct": (_edit(lambda c: c["preprocessing"].pop("crop_pct")), r"'preprocessing.crop_pct' is missing"),
    "interpolation": (
        _edit(lambda c: c["preprocessing"].update(interpolation="cubic")),
        r"'preprocessing.interpolation' must be one of nearest, bilinear, bicubic",
    ),
    "std": (_edit(lambda c: c["preprocessing"].update(std=[0.2, 0, 0.2])), r"'preprocessing.std' must be positive"),
    "mean": (_edit(lambda c: c["preprocessing"].update(mean=[0.5, 0.5])), r"'preprocessing.mean' must be three"),
    "input size": (
        _edit(lambda c: c["preprocessing"].update(input_size=[3, 60, 60])),
        r"'preprocessing.input_size' must be \[3, H, W\] with H and W multiples of 32",
    ),
    "crop_mode": (_edit(lambda c: c["preprocessing"].update(crop_mode="zoom")), r"'preprocessing.crop_mode'"),
    "name": (_edit(lambda c: c.update(name="")), r"field 'name' must be a non-empty string"),
    "training": (_edit(lambda c: c.update(training="long")), r"field 'training' must be an object"),
    "head size": (
        _edit(lambda c: c.update(num_classes=8, class_names=[*NAMES, "owl"])),
        r"says num_classes 8, but checkpoint .*model\.safetensors has a 7-class head",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CARDS))
def test_bad_card_is_one_clear_error_naming_the_file(case, checkpoint, tmp_path):
    card, message = BAD_CARDS[case]
    path = with_card(tmp_path, checkpoint, card)
    with pytest.raises(CardError, match=message) as info:
        load_model("hrnet_w18_small", path, device="cpu", cache=False)
    assert str(tmp_path / "model.json") in str(info.value)
    assert isinstance(info.value, WeightsError)  # the CLI and the app report it as a user error


def test_card_contradicting_checkpoint_or_variant(checkpoint, carded, tmp_path):
    wrong_arch = with_card(tmp_path / "arch", checkpoint, {**CARD, "architecture": "hrnet_w18"})
    with pytest.raises(CardError, match=r"does not fit hrnet_w18, the architecture its card .*model\.json names"):
        load_model("hrnet_w18", wrong_arch, device="cpu", cache=False)
    with pytest.raises(
        CardError, match=r"card .*birds\.json is for hrnet_w18_small, but variant hrnet_w18 was asked for"
    ):
        load_model("hrnet_w18", carded, device="cpu", cache=False)


def test_bad_labels(checkpoint, carded, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("stripes\nspots\n")
    with pytest.raises(WeightsError, match=r"Labels file .*short\.txt has 2 names, but seven has 7 classes"):
        load_model("hrnet_w18_small", checkpoint, device="cpu", labels=short, cache=False)
    with pytest.raises(WeightsError, match=r"my_lab has a model card that names its classes"):
        load_model("hrnet_w18_small", carded, device="cpu", labels=NAMES, cache=False)
    with pytest.raises(WeightsError, match=r"names 'a' twice"):
        load_model("hrnet_w18_small", checkpoint, device="cpu", labels=["a", "a", "b", "c", "d", "e", "f"])
    with pytest.raises(WeightsError, match="Could not read labels file"):
        load_model("hrnet_w18_small", checkpoint, device="cpu", labels=tmp_path / "none.txt")


# ------------------------------------------------------------------------------ every analysis, named


def test_predict_and_trace_show_the_models_names(loaded, image):
    pred = predict(loaded, image, topk=10)
    assert len(pred.top) == 7 and {s.label for s in pred.top} == set(NAMES)  # topk bounded by the classes
    assert [s.index for s in pred.top] == pred.logits.argsort(descending=True).tolist()
    data = pred.to_dict()
    assert data["model"] == "my_lab" and data["num_classes"] == 7 and data["input_size"] == [64, 64]
    assert "my_lab" in F.topk_figure(pred).layout.title.text
    summary = trace_summary(trace(loaded, image), model=loaded)
    assert summary["model"] == "my_lab" and summary["num_classes"] == 7
    assert [s["label"] for s in summary["top"]] == [s.label for s in pred.top[:5]]


def test_attribution_results_carry_the_names(loaded, image):
    pixels = A.attribute_pixels(loaded, image, "saliency", target=4)
    assert pixels.label == "ring, circle" and pixels.to_dict()["label"] == "ring, circle"
    assert "class 4 (ring, circle)" in F.attribution_figure(Image.new("RGB", (64, 64)), pixels).layout.title.text
    top1 = A.attribute_pixels(loaded, image, "saliency")
    assert top1.label == predict(loaded, image).top[0].label
    cam = A.gradcam_streams(loaded, image, target=2)
    assert cam.to_dict()["label"] == "checker" and len(cam.maps) == 4
    assert "class 2 (checker)" in F.gradcam_figure(Image.new("RGB", (64, 64)), cam).layout.title.text
    shares = A.stream_shares(loaded, image, target=6, n_steps=4)
    assert shares.to_dict()["label"] == "square"
    assert "class 6 (square)" in F.stream_shares_figure(shares).layout.title.text
    with pytest.raises(ValueError, match=r"0\.\.6"):
        A.attribute_pixels(loaded, image, "saliency", target=7)


def test_knockout_and_compare_show_the_names(loaded, image, w18_small):
    result = A.knockout(loaded, image, stream=1, target=5, topk=10)
    assert result.label == "cross" and result.to_dict()["label"] == "cross"
    assert len(result.top_after) == 7 and {s.label for s in result.top_after} == set(NAMES)
    assert "class 5 (cross)" in F.knockout_figure([result]).layout.title.text
    reliance = A.resolution_reliance(loaded, image, target=0)
    assert [r.label for r in reliance] == ["stripes"] * 4
    fig = F.compare_figure([predict(loaded, image), predict(w18_small, image)], {"my_lab": 12.0})
    assert [a.text for a in fig.layout.annotations] == ["my_lab · 12 ms", "w18_small · RANDOM"]
    assert set(fig.data[0].y) <= {f"{n} ({i})" for i, n in enumerate(NAMES)}


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_with_the_card(carded, image, capsys):
    assert main(["predict", str(image), "-w", str(carded), "--topk", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "my_lab" and len(data["top"]) == 3 and {s["label"] for s in data["top"]} <= set(NAMES)
    assert main(["explain", str(image), "-w", str(carded), "-m", "saliency", "--target", "ring", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["result"]
    assert (result["target"], result["label"]) == (4, "ring, circle")
    assert main(["trace", str(image), "-w", str(carded)]) == 0
    assert "my_lab (hrnet_w18_small, 7 classes)" in capsys.readouterr().out
    assert main(["explain", str(image), "-w", str(carded), "-m", "saliency", "--target", "owl"]) == 2
    assert "matches 0 classes" in capsys.readouterr().err


def test_cli_with_labels(checkpoint, image, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(NAMES))
    args = ["-w", str(checkpoint), "--labels", str(labels), "--input-size", "64", "--json"]
    assert main(["predict", str(image), *args, "--topk", "7"]) == 0
    assert {s["label"] for s in json.loads(capsys.readouterr().out)["top"]} == set(NAMES)
    assert main(["trace", str(image), *args]) == 0
    assert json.loads(capsys.readouterr().out)["top"][0]["label"] in NAMES
    assert main(["explain", str(image), *args, "-m", "knockout", "--stream", "0", "--target", "cross"]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["results"][0]["label"] == "cross"
    (tmp_path / "short.txt").write_text("a\nb\n")
    assert main(["predict", str(image), "-w", str(checkpoint), "--labels", str(tmp_path / "short.txt")]) == 2
    assert "has 2 names, but seven has 7 classes" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- the lab by name


@pytest.fixture
def lab_dir(checkpoint, tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "lab"
    with_card(folder, checkpoint, {**CARD, "name": "lab"}, stem="lab")
    monkeypatch.setattr(zoo.variants, "LAB_DIR", folder)
    return folder


def test_lab_by_name(lab_dir, image, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RandomWeightsWarning)  # real weights: no warning
        lab = load_model("lab", device="cpu")
    assert lab.name == "lab" and lab.weights.kind == "file" and not lab.weights.is_random
    assert lab.weights.detail == str((lab_dir / "lab.safetensors").resolve())
    assert lab.class_names == tuple(NAMES) and lab.variant.name == "hrnet_w18_small"
    assert "lab" not in zoo.VARIANTS and len(zoo.VARIANTS) == 9
    with pytest.raises(ValueError, match="Unknown variant 'lab'"):
        zoo.get_variant("lab")
    with pytest.raises(WeightsError, match="one set of weights, 'default'"):
        load_model("lab", "random", device="cpu")
    assert main(["predict", str(image), "--variant", "lab", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "lab"


def test_lab_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo.variants, "LAB_DIR", tmp_path)
    with pytest.raises(WeightsError, match=r"The lab model is missing: no .*lab\.safetensors"):
        load_model("lab", device="cpu")
    assert "lab" not in zoo.model_files()


def test_model_files_lists_carded_checkpoints_and_refuses_clashes(checkpoint, lab_dir, tmp_path):
    folder = tmp_path / "mine"
    with_card(folder, checkpoint, CARD, stem="a")
    with_card(folder, checkpoint, {**CARD, "name": "second"}, stem="b")
    (folder / "no_card.safetensors").symlink_to(checkpoint)  # no card: not listed
    found = zoo.model_files(folder)
    assert list(found) == ["lab", "my_lab", "second"] and found["second"].class_names == tuple(NAMES)
    with_card(folder, checkpoint, CARD, stem="c")
    with pytest.raises(WeightsError, match=r"Two models are named 'my_lab': .*a\.safetensors and .*c\.safetensors"):
        zoo.model_files(folder)
    clash = tmp_path / "clash"
    with_card(clash, checkpoint, {**CARD, "name": "hrnet_w18"})
    with pytest.raises(WeightsError, match="is a variant's"):
        zoo.model_files(clash)
    assert list(zoo.model_files(lab_dir)) == ["lab"]  # the lab's own folder: the same card, one model
    with pytest.raises(WeightsError, match="Models folder not found"):
        zoo.model_files(tmp_path / "nowhere")


# ------------------------------------------------------------------------------ deterministic random


def test_random_weights_are_a_function_of_architecture_and_seed():
    before = torch.random.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        a = load_model("hrnet_w18_small", "random", device="cpu", cache=False).model.state_dict()
        b = load_model("hrnet_w18_small", "random", device="cpu", cache=False).model.state_dict()
        fallback = load_model("hrnet_w18_small", "default", device="cpu", cache=False)  # offline: random
        other = load_model("hrnet_w18_small", "random", device="cpu", seed=1, cache=False).model.state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's random stream is untouched
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert fallback.weights.is_random and fallback.weights.seed == 0
    assert all(torch.equal(a[k], v) for k, v in fallback.model.state_dict().items())
    assert not torch.equal(a["conv1.weight"], other["conv1.weight"])


# ---------------------------------------------------------------------------------------------- app


@pytest.fixture(scope="module")
def own_app(carded, checkpoint, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        lab = tmp_path_factory.mktemp("app-lab")
        with_card(lab, checkpoint, {**CARD, "name": "lab"}, stem="lab")
        mp.setattr(zoo.variants, "LAB_DIR", lab)
        explorer = Explorer("cpu", models=carded.parent)
        with launched_demo(explorer) as (demo, url):
            yield demo, Client(url, verbose=False, download_files=False)


def test_app_lists_own_models_and_names_their_classes(own_app, image):
    demo, client = own_app
    assert demo.explorer.model_choices()[9:] == ["lab", "my_lab"]
    weights, *modules, classes = client.predict("my_lab", api_name="/variant_options")
    assert [c[0] for c in weights["choices"]] == ["default"] and modules[0]["value"] == "stage4.module0"
    assert [c[0] for c in classes["choices"]][1:] == [f"{i}: {n}" for i, n in enumerate(NAMES)]
    banner, summary, topk, *_ = client.predict(
        handle_file(str(image)), "my_lab", "default", "default", "energy_share", api_name="/analyze"
    )
    assert banner["visible"] is False and "my_lab" in summary and "7 classes" in summary
    bars = json.loads(topk["plot"])["data"][0]["y"]
    assert len(bars) == 5 and all(y.rsplit(" (", 1)[0] in NAMES for y in bars)
    _, text = client.predict(
        handle_file(str(image)), "my_lab", "default", "default", "saliency", "4: ring, circle", api_name="/attribute"
    )
    assert "class 4 (ring, circle)" in text
    with pytest.raises(Exception, match=r"classes are 0\.\.6"):
        client.predict(handle_file(str(image)), "my_lab", "default", "default", "saliency", "9", api_name="/attribute")
    with pytest.raises(Exception, match="one set of weights"):
        client.predict(handle_file(str(image)), "lab", "random", "default", "energy_share", api_name="/analyze")
    _, _, text = client.predict(handle_file(str(image)), ["lab", "my_lab"], "default", "default", api_name="/compare")
    assert "| lab |" in text and "| my_lab |" in text


def test_app_refuses_two_models_of_one_name(checkpoint, tmp_path):
    with_card(tmp_path, checkpoint, CARD, stem="a")
    with_card(tmp_path, checkpoint, CARD, stem="b")
    with pytest.raises(WeightsError, match="Two models are named 'my_lab'"):
        Explorer("cpu", models=tmp_path)
    app_py = ROOT / "app.py"
    proc = subprocess.run([sys.executable, str(app_py), "--models", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 1 and "app.py: error: Two models are named 'my_lab'" in proc.stderr
    command = [sys.executable, "-m", "hrnet_explorer", "app", "--models", str(tmp_path)]  # hrnet-explorer app
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("hrnet-explorer: error: Two models are named 'my_lab'")


def test_a_cards_task_is_built_by_its_registered_builder(tmp_path, monkeypatch):
    """A card that names a task is built by that task's builder (the dense models plug theirs in); a task nobody
    built is one CardError naming the tasks that are."""
    from hrnet_explorer.zoo import loading

    path = tmp_path / "depth.safetensors"
    path.write_bytes(b"read by the task's builder only")
    (tmp_path / "depth.json").write_text(json.dumps({**CARD, "name": "depth", "task": "depth"}))
    with pytest.raises(CardError, match=r"field 'task' is 'depth'; the tasks built here: segmentation"):
        load_model("hrnet_w18_small", path, device="cpu", cache=False)
    seen = []

    def build(checkpoint, card, card_path, seed):
        seen.append((checkpoint, card["task"], card_path, seed))
        net = timm.create_model("hrnet_w18_small", pretrained=False, num_classes=card["num_classes"])
        return net, zoo.WeightsSource("file", str(checkpoint))

    monkeypatch.setitem(loading.TASK_BUILDERS, "depth", build)
    loaded = load_model("hrnet_w18_small", path, device="cpu", seed=5, cache=False)
    assert seen == [(path, "depth", tmp_path / "depth.json", 5)]
    assert loaded.name == "depth" and loaded.class_names == tuple(NAMES) and loaded.card["task"] == "depth"
    assert loaded.data_config["input_size"] == (3, 64, 64) and not loaded.model.training

"""Test setup: no network, an empty private Hugging Face cache, small CPU threads.

HF_HUB_OFFLINE must be set before huggingface_hub is imported (it reads it once, at import).
"""

from __future__ import annotations

import os
import tempfile

_HUB = tempfile.mkdtemp(prefix="hrnet-explorer-hub-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = _HUB
os.environ["HF_HOME"] = _HUB
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# One OpenMP thread per process: the suite runs app servers, a browser and the tests side by side on
# small machines, where two spinning OpenMP threads per process slow a forward pass by up to 100×.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import importlib  # noqa: E402
import json  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from hrnet_explorer import zoo  # noqa: E402

torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    zoo.clear_model_cache()
    yield
    zoo.clear_model_cache()


def fill_hub_cache(full_tag: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Write a hub-layout cache entry for ``timm/<full_tag>`` holding random weights; return them.

    Layout read by hf_hub_download offline: models--timm--<tag>/refs/main (a commit hash) and
    models--timm--<tag>/snapshots/<hash>/model.safetensors (+ config.json).
    """
    torch.manual_seed(seed)
    model = timm.create_model(full_tag, pretrained=False)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    repo = Path(os.environ["HF_HUB_CACHE"]) / f"models--timm--{full_tag}"
    commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    save_file(state, str(snapshot / "model.safetensors"))
    arch, tag = full_tag.split(".", 1)
    (snapshot / "config.json").write_text(json.dumps({"architecture": arch, "num_classes": 1000, "tag": tag}))
    return state


@pytest.fixture
def hub_cache():
    """Call with a full timm tag (e.g. "hrnet_w18_small.ms_in1k") to cache random weights for it."""
    made: list[Path] = []

    def fill(full_tag: str, seed: int = 0) -> dict[str, torch.Tensor]:
        made.append(Path(os.environ["HF_HUB_CACHE"]) / f"models--timm--{full_tag}")
        return fill_hub_cache(full_tag, seed)

    yield fill
    import shutil

    for path in made:
        shutil.rmtree(path, ignore_errors=True)


CHROMIUM = Path("/usr/bin/chromium")  # Debian's: Playwright must never download a browser here
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def eager_compile(monkeypatch):
    """The microscope's compiled=True through dynamo's eager backend: the same whole-graph capture with autograd
    (fullgraph=True), without Inductor's code generation, which takes minutes on two cores (the GPU benchmark runs
    Inductor)."""
    fv = importlib.import_module("hrnet_explorer.microscope.visualise")  # the module: the package exports its function
    monkeypatch.setattr(fv, "COMPILE_BACKEND", "eager")
    monkeypatch.setattr(fv, "COMPILE_MODE", None)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (the browser tests and the offline HTML reports)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test needs Debian's Chromium. `.ci/run` installs it "
            "(apt-get install -y chromium); Playwright must not download one."
        )
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def w18_small():
    """hrnet_w18_small with random weights on CPU (shared: tests must not modify it)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", zoo.RandomWeightsWarning)
        torch.manual_seed(0)
        return zoo.load_model("hrnet_w18_small", "random", device="cpu", cache=False)


TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    """Mark each test by its folder: ``-m unit`` runs tests/unit/, ``-m system`` tests/system/."""
    for item in items:
        kind = item.path.resolve().relative_to(TESTS).parts[0]
        if kind in ("unit", "system"):
            item.add_marker(kind)


def pytest_terminal_summary(terminalreporter):
    """Print the counts the robustness, load and soak tests collected (tests/corpus.py's SUMMARY)."""
    import sys

    lines = getattr(sys.modules.get("corpus"), "SUMMARY", {})
    if lines:
        terminalreporter.section("robustness")
        for line in lines.values():
            terminalreporter.write_line(line)

"""Packaging: the Space's requirements.txt installs what the package declares, the licence ships, and the wheel
runs the app (its example images and the lab model are package data)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from repo import ROOT

from hrnet_explorer.ui import example_images


def _requirements(lines: list[str]) -> dict[str, str]:
    parsed = [Requirement(line) for line in lines]
    return {r.name.lower().replace("_", "-"): str(r.specifier) for r in parsed}


def test_space_requirements_match_the_package_dependencies():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert _requirements([line for line in lines if line]) == _requirements(declared)


def test_licence_is_mit_as_declared():
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


# ------------------------------------------------------------------------------ the wheel runs the app

WHEEL_SCRIPT = r"""
import json, sys
from pathlib import Path

import hrnet_explorer
from hrnet_explorer import load_model, predict
from hrnet_explorer.app import build, parse_args
from hrnet_explorer.ui import example_images, launch_options

demo = build()  # the app's Blocks, as `hrnet-explorer app` builds them (launches nothing)
lab = load_model("lab", device="cpu", cache=False)
ring = next(p for p in example_images() if p.endswith("lab_0008_ring.png"))
print(json.dumps({
    "package": hrnet_explorer.__file__,
    "examples": example_images(),
    "allowed_paths": launch_options()["allowed_paths"],
    "lab_weights": lab.weights.detail,
    "lab_random": lab.weights.is_random,
    "ring": predict(lab, ring).top[0].label,
    "demo": type(demo).__name__,
    "host": parse_args([]).host,
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built offline from a copy of the sources (no build/ left in the checkout)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "hrnet_explorer", src / "hrnet_explorer", ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    (built,) = out.glob("hrnet_explorer-*.whl")
    return built


def test_wheel_holds_the_app_the_examples_and_the_lab_model(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"hrnet_explorer/app.py", "hrnet_explorer/cli/__init__.py", "hrnet_explorer/ui/layout.py"} <= names
    examples = {f"hrnet_explorer/assets/{Path(p).name}" for p in example_images()}
    assert len(examples) >= 8 and examples <= names  # every example image the checkout's app offers
    lab = {f"hrnet_explorer/assets/lab/{n}" for n in ("lab.safetensors", "lab.json", "eval.json", "README.md")}
    assert lab <= names and "hrnet_explorer/assets/README.md" in names  # model, card, sources and licences
    assert not any(n.endswith("make_assets.py") for n in names)  # the generator stays in the repository
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "hrnet-explorer = hrnet_explorer.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_app_and_lab_model_run_from_the_unpacked_wheel(wheel, tmp_path):
    """Outside the checkout (another cwd, the package from the wheel only): the example list, the lab model and
    the app's Blocks all resolve inside the installed package."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", WHEEL_SCRIPT], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    package = site / "hrnet_explorer"
    assert Path(got["package"]).parent == package  # not the checkout's package
    assert [Path(p).name for p in got["examples"]] == [Path(p).name for p in example_images()]
    assert all(Path(p).parent == package / "assets" for p in got["examples"])
    assert got["allowed_paths"] == got["examples"]  # the app serves the example images only
    assert Path(got["lab_weights"]) == package / "assets" / "lab" / "lab.safetensors" and not got["lab_random"]
    assert got["ring"] == "ring" and got["demo"] == "Blocks" and got["host"] == "127.0.0.1"
    # the command and the module start the same app (their --help, without serving)
    for cmd in (["-m", "hrnet_explorer", "app", "--help"], ["-m", "hrnet_explorer.app", "--help"]):
        helped = subprocess.run([sys.executable, *cmd], cwd=elsewhere, env=env, capture_output=True, text=True)
        assert helped.returncode == 0 and "--models DIR" in helped.stdout, helped.stderr


# ------------------------------------------------------------------------------ the declared minimums are tested


def test_every_declared_minimum_is_pinned_exactly_by_the_ci_step():
    """.ci/minimums.sh installs .ci/minimums.py's pins and smoke-tests them; the pins are pyproject's minimums,
    every dependency (core and app) has one, and CI runs the step."""
    spec = importlib.util.spec_from_file_location("minimums", ROOT / ".ci" / "minimums.py")
    minimums = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(minimums)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(line) for line in project["dependencies"] + project["optional-dependencies"]["app"]]
    pinned = {r.name: str(r.specifier) for r in map(Requirement, minimums.pins(["app"]))}
    lowest = {r.name: next(f"=={s.version}" for s in r.specifier if s.operator == ">=") for r in declared}
    assert pinned == lowest and {"torch", "torchvision", "gradio"} <= set(pinned)
    kept = {r.name: str(r.specifier) for r in map(Requirement, minimums.pins(["app"], keep=["huggingface_hub"]))}
    hub = next(r for r in declared if r.name == "huggingface_hub")
    assert kept["huggingface_hub"] == str(hub.specifier) and kept["torch"] == pinned["torch"]  # its declared range
    assert ".ci/minimums.sh" in (ROOT / ".ci" / "run").read_text()
    script = (ROOT / ".ci" / "minimums.sh").read_text()
    assert ".ci/smoke.py" in script and ".ci/smoke.py --app" in script

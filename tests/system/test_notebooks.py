"""The JupyterLab tutorials: committed without outputs, and each one runs top to bottom.

Every notebook is executed with nbclient in a fresh kernel of this interpreter, with small settings
(``HRNET_EXPLORER_*`` variables: 96 px, fewer steps and variants; 05 once more at its defaults, for one
variant) and offline (``HF_HUB_OFFLINE=1`` and
conftest's empty Hugging Face cache: ``weights="default"`` falls back to random weights, which every
notebook must say). A failing cell fails the test; every notebook must end with a Plotly figure.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from repo import ROOT

NOTEBOOKS_DIR = ROOT / "notebooks"
TUTORIALS = (
    "01_quickstart",
    "02_streams",
    "03_fusion",
    "04_attribution",
    "05_variants",
    "06_lab_truth",
    "07_pixels",
    "08_microscope",
)
LAB_NOTEBOOKS = ("06_lab_truth", "07_pixels", "08_microscope")  # the shipped lab models: real weights, offline
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))

PLOTLY_MIME = "application/vnd.plotly.v1+json"
CELL_TIMEOUT_S = 300  # one cell; the longest take seconds here, so a run this long means a stalled cell
SMALL_SETTINGS = {
    "HRNET_EXPLORER_VARIANT": "hrnet_w18_small",
    "HRNET_EXPLORER_WEIGHTS": "default",  # offline and nothing cached: the random-weights fallback
    "HRNET_EXPLORER_DEVICE": "auto",
    "HRNET_EXPLORER_INPUT_SIZE": "96",
    "HRNET_EXPLORER_FAST": "1",
    "HF_HUB_OFFLINE": "1",
    # One intra-op thread: on a busy 2-core machine, torch's 2 OpenMP threads wait for each other and a
    # forward pass can take 50x longer; one thread costs at most 2x when the machine is idle.
    "OMP_NUM_THREADS": "1",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # ipykernel's debugger warns about frozen modules otherwise
}


def code_cells(nb) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_the_eight_tutorials_are_there():
    assert [p.stem for p in NOTEBOOKS] == list(TUTORIALS)
    listed = (NOTEBOOKS_DIR / "README.md").read_text()
    assert [p.name for p in NOTEBOOKS if f"| `{p.name}` |" not in listed] == []  # each has its row in the table
    count = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"][
        len(NOTEBOOKS)
    ]
    for readme in (listed, (ROOT / "README.md").read_text()):  # both say how many there are
        assert f"{count} jupyterlab notebooks" in readme.lower()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in code_cells(nb):
        assert cell.outputs == [], f"{path.name}: a code cell was committed with outputs:\n{cell.source[:200]}"
        assert cell.execution_count is None, f"{path.name}: a code cell has an execution count"
        assert cell.source.strip(), f"{path.name}: an empty code cell"
    assert all(cell.source.strip() for cell in nb.cells), f"{path.name}: an empty cell"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state (an output) was committed"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# "), "a notebook opens with a title"


@pytest.fixture
def kernel_env(tmp_path, monkeypatch) -> dict[str, str]:
    """A "python3" kernelspec for *this* interpreter, found first (JUPYTER_PATH), and the small settings.

    jupyter_client searches JUPYTER_PATH before the user's and the environment's kernelspecs, so a
    user-level "python3" pointing at another Python cannot be picked by mistake.
    """
    spec = tmp_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    for key, value in SMALL_SETTINGS.items():
        monkeypatch.setenv(key, value)
    for key in ("HRNET_EXPLORER_IMAGE", "HRNET_EXPLORER_VARIANTS"):  # the notebooks' defaults, not the caller's
        monkeypatch.delenv(key, raising=False)
    return dict(os.environ)


def outputs_of(cell) -> list[str]:
    return [o.output_type for o in cell.outputs]


def execute(path: Path, env: dict[str, str]):
    """Run the notebook as ``jupyter nbconvert --execute`` does: plain nbclient, no workaround.

    A cell whose reply nbclient misses (jupyter/nbclient#312: ipywidgets' ``interact`` draws into an
    Output widget, which nbclient mirrors by writing to the shell channel it is waiting on) does not
    fail: it passes after CELL_TIMEOUT_S. So the whole run must take less than that.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},  # the kernel runs in notebooks/, as in JupyterLab
    )
    start = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError (with the cell and traceback) on any error
    seconds = time.perf_counter() - start
    assert seconds < CELL_TIMEOUT_S, f"{path.name} took {seconds:.0f} s: a cell waited for its whole timeout?"
    return nb, seconds


def check_outputs(path: Path, nb) -> str:
    """No errors, the weights' origin printed, a Plotly figure last; returns the printed text."""
    cells = code_cells(nb)
    errors = [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for cell in cells for o in cell.outputs if o.output_type == "stream")
    if path.stem in LAB_NOTEBOOKS:
        message = f"{path.name} must load the shipped lab model, not random weights"
        assert "RANDOM" not in text and "file:" in text, message
    else:
        assert "RANDOM weights" in text, f"{path.name} must print loaded.weights.describe() (random weights offline)"
    last = cells[-1]
    mimes = [m for o in last.outputs for m in o.get("data", {})]
    assert PLOTLY_MIME in mimes, f"{path.name}: the last code cell shows no Plotly figure ({outputs_of(last)})"
    figure = next(o.data[PLOTLY_MIME] for o in last.outputs if PLOTLY_MIME in o.get("data", {}))
    assert figure["data"], f"{path.name}: the final figure is empty"
    return text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_output_widgets(path):
    """ipywidgets' interact/interactive/Output stall headless runs (see ``execute``): the tutorials use
    ``hrnet_explorer.notebook.explore`` (dropdowns and a display update) instead."""
    source = "\n".join(cell.source for cell in code_cells(nbformat.read(path, as_version=4)))
    assert not re.search(r"\b(interact|interactive|interactive_output|Output)\b", source), path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, kernel_env):
    nb, seconds = execute(path, kernel_env)
    check_outputs(path, nb)
    print(f"{path.name}: {seconds:.1f} s")


@pytest.mark.slow
def test_variants_notebook_default_path(kernel_env):
    """05 at its defaults (224 px, not FAST), for one variant: the path a reader runs, kept short."""
    env = {k: v for k, v in kernel_env.items() if k not in ("HRNET_EXPLORER_INPUT_SIZE", "HRNET_EXPLORER_FAST")}
    env["HRNET_EXPLORER_VARIANTS"] = "w18_small"
    path = NOTEBOOKS_DIR / "05_variants.ipynb"
    nb, seconds = execute(path, env)
    text = check_outputs(path, nb)
    assert re.search(r"^input_size\s+224\s+\(default\)$", text, re.M), text[:500]
    assert re.search(r"^fast\s+False\s+\(default\)$", text, re.M), text[:500]
    assert "compared: hrnet_w18_small\n" in text
    print(f"{path.name} at its defaults, one variant: {seconds:.1f} s")

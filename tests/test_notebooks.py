"""The JupyterLab tutorials: committed without outputs, and each one runs top to bottom.

Every notebook is executed with nbclient in a fresh kernel of this interpreter, with small settings
(``HRNET_EXPLORER_*`` variables: 96 px, fewer steps and variants) and offline (``HF_HUB_OFFLINE=1`` and
conftest's empty Hugging Face cache: ``weights="default"`` falls back to random weights, which every
notebook must say). A failing cell fails the test; every notebook must end with a Plotly figure.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
TUTORIALS = ("01_quickstart", "02_streams", "03_fusion", "04_attribution", "05_variants", "06_lab_truth")
LAB_NOTEBOOKS = ("06_lab_truth",)  # the shipped lab model: real weights, offline
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))

PLOTLY_MIME = "application/vnd.plotly.v1+json"
CELL_TIMEOUT_S = 300  # one cell; the longest, 05's cost table (fvcore on all nine variants at 224 px), takes ~20-80 s
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


def test_the_six_tutorials_are_there():
    assert [p.stem for p in NOTEBOOKS] == list(TUTORIALS)


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


def poll_in_short_steps(channel, step_s: float = 1.0) -> None:
    """Make ``channel.get_msg(timeout=T)`` wait in ``step_s`` slices until T, instead of once for T.

    zmq.asyncio sometimes misses the wake-up for a message that has already arrived; jupyter_client's
    ``get_msg`` then returns it only when its whole timeout has passed (pyzmq polls once more at the
    timeout). nbclient waits for the execute reply with the cell timeout, so a cell that creates
    widgets could hang for 10 minutes and then pass (jupyter/nbclient#312). Polling again every second
    picks the message up at the next slice.
    """
    get_msg = channel.get_msg

    async def get_msg_in_steps(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = step_s if deadline is None else min(step_s, max(0.0, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg_in_steps


class Client(NotebookClient):
    """nbclient, with the shell and IOPub channels polled in short steps (see poll_in_short_steps)."""

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        poll_in_short_steps(kc.shell_channel)
        poll_in_short_steps(kc.iopub_channel)
        return kc


def outputs_of(cell) -> list[str]:
    return [o.output_type for o in cell.outputs]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, kernel_env):
    nb = nbformat.read(path, as_version=4)
    client = Client(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=120,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},  # the kernel runs in notebooks/, as in JupyterLab
    )
    start = time.perf_counter()
    client.execute(env=kernel_env)  # raises CellExecutionError (with the cell and traceback) on any error
    seconds = time.perf_counter() - start

    cells = code_cells(nb)
    errors = [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for cell in cells for o in cell.outputs if o.output_type == "stream")
    if path.stem in LAB_NOTEBOOKS:
        assert "RANDOM" not in text and "file:" in text, f"{path.name} must load the shipped lab model, not random weights"
    else:
        assert "RANDOM weights" in text, f"{path.name} must print loaded.weights.describe() (random weights offline)"
    last = cells[-1]
    mimes = [m for o in last.outputs for m in o.get("data", {})]
    assert PLOTLY_MIME in mimes, f"{path.name}: the last code cell shows no Plotly figure ({outputs_of(last)})"
    figure = next(o.data[PLOTLY_MIME] for o in last.outputs if PLOTLY_MIME in o.get("data", {}))
    assert figure["data"], f"{path.name}: the final figure is empty"
    print(f"{path.name}: {seconds:.1f} s")

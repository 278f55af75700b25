"""ui.callbacks, called directly (no server): what the endpoints hand the progress bar and the figures.

w18_small with random weights at 64 px on a CPU, the shipped example image.
"""

from __future__ import annotations

import re

import pytest

from hrnet_explorer.ui import ASSETS, Explorer

EXAMPLE = str(ASSETS / "grace_hopper.jpg")
FAST = ("hrnet_w18_small", "random", "64")  # variant, weights, input size


@pytest.fixture(scope="module")
def explorer():
    return Explorer("cpu")


def test_trust_progress_moves_within_each_row(explorer):
    """Issue 26, item 5: the bar moved once per row (84 s at one percentage); now each row's steps move it —
    the attribution's batches, the curves' forwards, the randomisation stages — and it never moves back."""
    calls = []
    explorer.trust(
        EXAMPLE,
        *FAST,
        methods=["saliency", "ig"],
        steps=2,
        randomisation=True,
        progress=lambda share, desc=None: calls.append((share, desc)),
    )
    shares = [share for share, _ in calls]
    assert shares == sorted(shares) and 0.9 < shares[-1] <= 1
    rows = {}
    for _, desc in calls:
        match = re.match(r"Scoring (.+?) \((\d+)/(\d+)\)", desc or "")
        if match:
            rows.setdefault(match.group(1), []).append(desc)
    assert list(rows) == ["Saliency", "IG", "random map", "colour distance (no model)", "Sobel edges (no model)"]
    assert len(rows["Saliency"]) > 2 and len(rows["IG"]) > 2  # attribution, curves, each randomisation stage
    assert all(len(descs) > 1 for descs in rows.values())
    assert rows["Saliency"][-1].endswith(f": step {len(rows['Saliency']) - 2}/{len(rows['Saliency']) - 2}")


@pytest.mark.parametrize(("model", "loud"), [(FAST, True), (("lab", "default", "64"), False)])
def test_every_figure_of_a_random_model_says_so(explorer, model, loud):
    """Issue 26, item 13: the module, Sankey, decomposition, Trust-curve and randomisation figures said nothing of
    random weights; the lab model's (trained) say nothing, and its lanes are named lab, not its architecture."""
    quiet = dict(progress=lambda *a, **k: None)
    _, sankey = explorer.fusion(EXAMPLE, *model, **quiet)
    lanes, module = explorer.streams(EXAMPLE, *model, **quiet)
    decomposition, _ = explorer.decompose(EXAMPLE, *model, **quiet)
    _, curves, randomisation = explorer.trust(EXAMPLE, *model, steps=2, randomisation=True, **quiet)
    figures = dict(
        sankey=sankey, lanes=lanes, module=module, decomposition=decomposition, curves=curves, rand=randomisation
    )
    for name, fig in figures.items():
        assert ("RANDOM weights" in fig.layout.title.text) == loud, name
    assert lanes.layout.title.text.startswith("w18_small" if loud else "lab as parallel lanes")


def test_tables_name_methods_as_the_pickers_do(explorer):
    """Issue 26, item 14: the Trust table and the attribution text said "ig" where the pickers say "Integrated
    Gradients"; both read the one table of names (display.METHODS) now."""
    from hrnet_explorer.attribution import PIXEL_METHODS
    from hrnet_explorer.ui.text import method_choices

    picker = dict((m, name) for name, m in method_choices(PIXEL_METHODS))
    quiet = dict(progress=lambda *a, **k: None)
    methods = ["saliency", "ig", "occlusion"]
    table, *_ = explorer.trust(EXAMPLE, *FAST, methods=methods, steps=2, randomisation=False, **quiet)
    rows = [line.split(" | ")[0].removeprefix("| ") for line in table.splitlines() if line.startswith("| ")][1:]
    assert rows[:3] == [picker[m] for m in methods] == ["Saliency", "Integrated Gradients", "Occlusion"]
    assert rows[3:] == ["random map (reference)", "colour distance (no model)", "Sobel edges (no model)"]
    _, text = explorer.attribute(EXAMPLE, *FAST, method="ig", ig_steps=2, **quiet)
    assert "**Integrated Gradients** for class" in text and "**ig**" not in text

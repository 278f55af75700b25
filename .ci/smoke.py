"""A smoke test of whatever dependencies are installed: ``.ci/minimums.sh`` runs it in a venv that holds
pyproject's declared minimums, so a minimum that does not work fails CI instead of a user's install.

Offline (HF_HUB_OFFLINE=1), CPU, random weights: the offline fallback of ``weights="default"`` (huggingface_hub),
the shipped lab model (safetensors, its card), predict and trace (torch, torchvision, timm, Pillow), fusion shares,
Integrated Gradients, Saliency, per-stream Grad-CAM and stream shares (Captum), a knockout, one figure of each
kind as JSON and an HTML page (Plotly), MACs (fvcore), an ``analyze`` run written and read back as Parquet
(pyarrow, tqdm, numpy); with ``--app``, the Gradio demo built (not launched). Prints the versions it ran with.
Run from the repository root: ``python .ci/smoke.py [--app]``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

_HF_HOME = tempfile.TemporaryDirectory(prefix="hf-smoke-")  # an empty hub cache, removed at exit: nothing is found
os.environ.update(HF_HUB_OFFLINE="1", HF_HOME=_HF_HOME.name, HF_HUB_CACHE=f"{_HF_HOME.name}/hub")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's package, whatever is installed

from minimums import REQUIREMENT, declared  # noqa: E402  (.ci/minimums.py, beside this file)

_CLOCK = [time.perf_counter()]


def step(name: str) -> None:
    """Report a passed step and the seconds it took."""
    now = time.perf_counter()
    print(f"  ok  {name:<44} {now - _CLOCK[0]:6.1f} s", flush=True)
    _CLOCK[0] = now


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="smoke test of the installed dependencies")
    parser.add_argument("--app", action="store_true", help="also build the Gradio demo (needs hrnet-explorer[app])")
    args = parser.parse_args(argv)
    names = [REQUIREMENT.match(line).group(1) for line in declared(["app"] if args.app else [])]  # pyproject's
    versions = [f"{n} {importlib.metadata.version(n)}" for n in names]
    print(" · ".join([f"python {sys.version.split()[0]}", *versions]))

    import torch

    torch.set_num_threads(min(4, torch.get_num_threads()))

    from hrnet_explorer import RandomWeightsWarning, load_model, predict, trace
    from hrnet_explorer.analyze import analyze, read_rows
    from hrnet_explorer.attribution import attribute_pixels, gradcam_streams, knockout, stream_shares
    from hrnet_explorer.costs import count_macs
    from hrnet_explorer.figures import (
        attribution_figure,
        fusion_matrices_figure,
        gradcam_figure,
        lanes_figure,
        sankey_figure,
        stream_shares_figure,
        topk_figure,
    )
    from hrnet_explorer.images import display_crop
    from hrnet_explorer.zoo import ASSETS

    assert Path(__import__("hrnet_explorer").__file__).parent == ROOT / "hrnet_explorer"
    image = ASSETS / "grace_hopper.jpg"
    step("imports")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fallback = load_model("hrnet_w18_small", "default", "cpu", cache=False)
    assert fallback.weights.is_random and any(issubclass(w.category, RandomWeightsWarning) for w in caught)
    step("offline hub fallback to random weights")

    lab = load_model("lab", device="cpu", cache=False)
    assert not lab.weights.is_random and lab.num_classes == 10
    assert predict(lab, ASSETS / "lab_0008_ring.png").top[0].label == "ring"
    step("the lab model (safetensors + card)")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)  # asked for
        loaded = load_model("hrnet_w18_small", "random", "cpu", cache=False)
    prediction = predict(loaded, image, input_size=128)
    assert len(prediction.top) == 5
    t = trace(loaded, image, input_size=128)
    matrix = t.fusion(4, -1).matrix("energy_share")
    assert torch.allclose(torch.as_tensor(matrix).sum(-1), torch.ones(matrix.shape[0]), atol=1e-4)
    step("predict, trace, fusion shares")

    target = prediction.top[0].index
    ig = attribute_pixels(loaded, image, "ig", target, n_steps=4, input_size=128)
    saliency = attribute_pixels(loaded, image, "saliency", target, input_size=128)
    cam = gradcam_streams(loaded, image, target, input_size=128)
    shares = stream_shares(loaded, image, target, n_steps=4, input_size=128)
    ko = knockout(loaded, image, stream=3, target=target, input_size=128)
    assert ig.heatmap.shape == saliency.heatmap.shape and len(cam.maps) == 4 and ko is not None
    assert all(torch.isfinite(torch.as_tensor(m)).all() for m in cam.maps)
    step("IG, saliency, Grad-CAM per stream, shares")

    crop = display_crop(image, loaded.data_config, 128)
    figures = [
        topk_figure(prediction),
        lanes_figure(t),
        fusion_matrices_figure(t),
        sankey_figure(t),
        attribution_figure(crop, ig, weights=loaded.weights),
        gradcam_figure(crop, cam, weights=loaded.weights),
        stream_shares_figure(shares, weights=loaded.weights),
    ]
    assert all(len(f.to_json()) > 1000 for f in figures)
    assert "<html>" in figures[0].to_html(include_plotlyjs=True, full_html=True)
    step("figures (JSON, HTML)")

    assert count_macs(loaded.model, 224) > 1e9
    step("MACs (fvcore)")

    with tempfile.TemporaryDirectory() as out:
        analyze("lab:4", ["hrnet_w18_small"], out, weights="random", device="cpu", workers=0, input_size=64)
        rows = read_rows(out)
        assert rows.num_rows == 4, rows
    step("analyze → Parquet (pyarrow)")

    if args.app:
        import gradio as gr

        from hrnet_explorer.app import build

        assert isinstance(build(), gr.Blocks)
        step("the Gradio demo (built, not launched)")
    print("smoke test passed")


if __name__ == "__main__":
    main()

"""Peers beside us: same process, same model (random weights), same input, interleaved rounds, medians.

What each call captures (so that the comparison is fair):
- plain timm eager: the logits only.
- ours, ``trace(loaded, x)``: every stream, fusion edge, pre-activation sum and fused map of every
  HighResolutionModule, the head's maps and the logits (~76 maps for w18_small, ~300 for w18), at module
  boundaries; on a CPU through the BatchNorm-folded copy (FAST_RTOL), ``exact=True`` on the model itself.
- TorchLens ``torchlens.trace(model, x)``: every tensor operation's output (far finer: each conv, BN, ReLU,
  add, …), with the computational graph. More than we capture, so it is a ceiling, not a like-for-like.
- Captum ``IntegratedGradients(model).attribute(x, target, n_steps)`` vs ours ``attribute_pixels(.., "ig")``:
  the same pixel attribution (ours also picks the top-1 target and returns the convergence delta).
- pytorch-grad-cam ``GradCAM`` vs ours ``gradcam_streams``: ours hooks the last stage-4 module (a list of four
  fused streams: four CAMs from one forward and one backward); pytorch-grad-cam hooks modules whose output
  is one tensor, so it gets the four stage-4 branch outputs (pre-fusion) of that module as target layers.

    python benchmarks/peers.py --variants hrnet_w18_small --repeats 5 [--compile] [--out results/peers_cpu.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings

import torch

from hrnet_explorer import load_model, trace


def bench(variant: str, args: argparse.Namespace) -> dict:
    """Median ms of every peer and of ours on one variant."""
    torch.manual_seed(0)
    loaded = load_model(variant, "random", device="cpu", cache=False, precision="fp32")
    model = loaded.model
    x = torch.randn(1, 3, args.size, args.size)
    with torch.inference_mode():
        target = int(model(x).argmax())
    calls: dict[str, object] = {}
    info: dict[str, object] = {}

    def plain():
        with torch.inference_mode():
            model(x)

    calls["plain_eager"] = plain
    calls["ours_trace_fast"] = lambda: trace(loaded, x)
    calls["ours_trace_exact"] = lambda: trace(loaded, x, exact=True)
    if args.compile:
        compiled = torch.compile(model)
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(x)
        info["plain_compiled_compile_s"] = time.perf_counter() - start

        def plain_compiled():
            with torch.inference_mode():
                compiled(x)

        calls["plain_compiled"] = plain_compiled
    if "torchlens" not in args.skip:
        import torchlens

        logged = torchlens.trace(model, x)
        info["torchlens_version"] = torchlens.__version__
        info["torchlens_layers"] = len(logged.layer_labels) if hasattr(logged, "layer_labels") else None
        del logged
        calls["torchlens_trace"] = lambda: torchlens.trace(model, x)
    if "ig" not in args.skip:
        from captum.attr import IntegratedGradients

        from hrnet_explorer.attribution import attribute_pixels

        ig = IntegratedGradients(model)

        def captum_ig():
            ig.attribute(x, target=target, n_steps=args.steps, internal_batch_size=8, return_convergence_delta=True)

        calls["captum_ig"] = captum_ig
        calls["ours_ig"] = lambda: attribute_pixels(loaded, x, "ig", n_steps=args.steps)
    if "gradcam" not in args.skip:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        from hrnet_explorer.attribution import gradcam_streams

        layers = list(model.stage4[-1].branches)

        def grad_cam():
            with GradCAM(model=model, target_layers=layers) as cam:
                cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])

        calls["pytorch_grad_cam_4_branches"] = grad_cam
        calls["ours_gradcam_streams"] = lambda: gradcam_streams(loaded, x, stage=4, module=-1)
    for fn in calls.values():  # warm-up (builds our private copies, TorchLens' wrappers)
        fn()
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(args.repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - start) * 1e3)
    row = {"variant": variant, "size": args.size, "threads": torch.get_num_threads()}
    row |= {"torch": torch.__version__, "load_avg_1min": round(os.getloadavg()[0], 2)} | info
    row |= {f"{k}_ms": round(statistics.median(v), 1) for k, v in samples.items()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", nargs="+", default=["hrnet_w18_small"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=32, help="IG steps")
    parser.add_argument("--compile", action="store_true", help="also torch.compile the plain model (slow)")
    parser.add_argument("--skip", nargs="*", default=[], help="peer names to leave out")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for variant in args.variants:
        row = bench(variant, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(json.dumps(r) for r in rows) + "\n")


if __name__ == "__main__":
    main()

"""`hrnet-explorer analyze` on GPUs: throughput against the plain forward and the input pipeline, memory at two
dataset lengths, and torchrun scale-out. Random weights (timing does not depend on them), 224 px, batch 256, bf16.

    python benchmarks/analyze_gpu.py one    --images 20480 --workers 14 --out results/analyze_1gpu.json
    python benchmarks/analyze_gpu.py scale  --images 40960 --workers 14 --gpus 2 --out results/analyze_2gpu.json
    python benchmarks/analyze_gpu.py scale  --images 51200 --workers 14 --gpus 2,4,8 --decode gpu   # the curve
    python benchmarks/analyze_gpu.py decode --images 20480 --workers 14 --out results/analyze_decode_1gpu.json
    python benchmarks/analyze_gpu.py --make-folder 51200 --dir /tmp/analyze-bench   # make the folder, then exit

The images are synthetic 500×375 JPEGs (ImageNet's typical size; smooth colour fields plus noise, ~90 kB, quality
90): 512 distinct pictures written under N names in an ImageFolder of 10 classes, so that decoding costs what a
photo costs. `one` measures, on one GPU and in this order:

- correctness of the CUDA-graph engine: the same batch through the graph and eagerly (fp32: equal up to cuDNN's
  algorithm choice), and bf16 against fp32;
- compute ceilings on a batch already on the GPU: the plain forward (eager, the usual anchor), the plain forward
  as a CUDA graph (+ normalisation and top-5), analyze's graph (+ every statistic), analyze with --reliance;
- the input pipeline's ceiling: the DataLoader alone (decode, resize, crop to uint8; W workers);
- the plain forward fed by that pipeline, and `hrnet-explorer analyze` itself (a subprocess, writing Parquet),
  at two dataset lengths with the peak host memory of the main process and of a worker, and peak GPU memory.

`scale` measures the pipeline and the plain forward with it again on this machine's first GPU, then runs analyze on
the same folder with one process on one GPU and with torchrun on each N of --gpus: images/s, speed-up, efficiency
(speed-up / N) and the rows against the one-process run's (same ids and top-1, largest float difference).
`--decode gpu` runs `one`'s and `scale`'s analyze runs with JPEGs decoded on the GPU (hrnet_explorer.analyze.decode;
default pil, today's path).

`decode` compares who decodes (issue 24), on --device: how far the device's crops are from PIL's (mean and max
|Δ| in grey levels, on the folder's first 256 images), then images/s from the JPEG folder to uint8 crops on the
device — PIL in W workers (+ the copy to the device) against decode_jpeg on the device fed by W and by
--gpu-workers workers that only read the files — and `hrnet-explorer analyze` end to end with each (unless
--no-analyze). `--make-folder N` writes the folder of N JPEGs (≥ 50,000 for the scaling curve) and exits.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import time
import warnings
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANT = "hrnet_w18"
DISTINCT = 512


# ----------------------------------------------------------------------------------------------- images


def _jpeg(seed: int) -> bytes:
    from PIL import Image

    r = np.random.default_rng(seed)
    base = Image.fromarray((r.random((6, 8, 3)) * 255).astype(np.uint8)).resize((500, 375), Image.BICUBIC)
    noisy = np.asarray(base).astype(np.int16) + r.normal(0, 18, (375, 500, 3)).astype(np.int16)
    buf = io.BytesIO()
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def prepare(folder: Path, n: int) -> Path:
    """An ImageFolder of ``n`` JPEGs (10 classes), made once."""
    marker = folder / f".made-{n}"
    if marker.exists():
        return folder
    with Pool(min(32, os.cpu_count() or 1)) as pool:
        pictures = pool.map(_jpeg, range(DISTINCT))
    for c in range(10):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"class{i % 10}" / f"{i:06d}.jpg").write_bytes(pictures[i % DISTINCT])
    marker.write_text("")
    return folder


# ----------------------------------------------------------------------------------------------- pieces


def _loaded(device: str, precision: str = "bf16"):
    from hrnet_explorer import load_model
    from hrnet_explorer.zoo import RandomWeightsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return load_model(VARIANT, "random", device, precision, cache=False)


def correctness(device: str) -> dict:
    """The graph engine against the eager engine on one batch (fp32), and bf16 against fp32 — with the trained
    lab model on lab images (random ImageNet weights saturate the softmax: their probabilities compare nothing)."""
    import torch

    from hrnet_explorer import load_model
    from hrnet_explorer.analyze import RowEngine
    from hrnet_explorer.analyze.inputs import Crops
    from hrnet_explorer.sources import open_source

    fp32 = load_model("lab", "default", device, "fp32", cache=False)
    crops = Crops(open_source("lab:32", size=224), range(32), fp32.data_config, 224)
    x = torch.stack([crops[i][0] for i in range(32)])

    def compare(a, b):
        return {
            "top1_equal": float((a["top_i"][:, 0] == b["top_i"][:, 0]).mean()),
            "top_p_max_abs": float(np.abs(a["top_p"] - b["top_p"]).max()),
            "energy_max_rel": float((np.abs(a["energy"] - b["energy"]) / np.abs(b["energy"])).max()),
            "shares_max_abs": float(np.abs(a["shares"] - b["shares"]).max()),
            "reliance_max_abs": float(np.abs(a["reliance"] - b["reliance"]).max()),
        }

    eager = RowEngine(fp32, 32, 224, reliance=True, use_graphs=False).submit(x).get()
    out = {"model": "lab", "mean_top1_p": float(eager["top_p"][:, 0].mean())}
    if device.startswith("cuda"):
        out["fp32_graph_vs_eager"] = compare(RowEngine(fp32, 32, 224, reliance=True).submit(x).get(), eager)
    bf16 = load_model("lab", "default", device, "bf16", cache=False)
    out["bf16_vs_fp32"] = compare(RowEngine(bf16, 32, 224, reliance=True).submit(x).get(), eager)
    return out


def compute_ceilings(device: str, batch: int) -> dict:
    """images/s with the batch already on the GPU (no decode, no copies)."""
    import torch
    from gpu import cuda_ms, plain_copy  # benchmarks/gpu.py, beside this script

    from hrnet_explorer.analyze import RowEngine
    from hrnet_explorer.runtime import autocast

    loaded = _loaded(device)
    row = {}
    net = plain_copy(loaded.model, True)
    xf = torch.randn(batch, 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)

    def plain():
        with torch.inference_mode(), autocast(xf.device, "bf16"):
            net(xf)

    row["plain_eager"] = batch / cuda_ms(plain, 10) * 1e3
    xu = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8)
    for name, kw in (
        ("plain_graph", {"stats": False}),
        ("analyze_graph", {}),
        ("analyze_reliance_graph", {"reliance": True}),
    ):
        engine = RowEngine(loaded, batch, 224, **kw)
        engine.static_in.copy_(xu)
        row[name] = batch / cuda_ms(engine.graph.replay, 10) * 1e3
        # the same through submit(): H2D of pinned uint8, replay, async D2H, overlapped with the next batch
        pinned = xu.pin_memory()
        n, pending = 20, None
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            submitted = engine.submit(pinned)
            if pending is not None:
                pending.get()
            pending = submitted
        pending.get()
        row[f"{name}_submit"] = n * batch / (time.perf_counter() - start)
        del engine
        torch.cuda.empty_cache()
    return {k: round(v, 1) for k, v in row.items()}


def pipeline(folder: Path, device: str, batch: int, workers: int, limit: int, model: str | None) -> float:
    """images/s of the DataLoader alone (model None) or feeding the plain forward's graph (model "plain")."""
    import torch
    from torch.utils.data import DataLoader

    from hrnet_explorer.analyze import RowEngine
    from hrnet_explorer.analyze.inputs import Crops
    from hrnet_explorer.sources import open_source

    loaded = _loaded(device)
    source = open_source(str(folder))
    crops = Crops(source, range(min(limit, len(source))), loaded.data_config, 224)
    cuda = device.startswith("cuda")
    loader = DataLoader(
        crops, batch_size=batch, num_workers=workers, pin_memory=cuda, prefetch_factor=4 if workers else None
    )
    engine = RowEngine(loaded, batch, 224, stats=False) if model else None
    done, start, pending = 0, None, None
    for x, *_ in loader:
        if start is None:  # from the first batch on: worker start-up excluded, as in analyze's own timing
            start = time.perf_counter()
        if engine is not None:
            submitted = engine.submit(x)
            if pending is not None:
                pending.get()
            pending = submitted
        done += x.shape[0]
    if pending is not None:
        pending.get()
    if cuda:
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def fidelity(folder: Path, device: str, n: int = 256) -> dict:
    """The device path's crops against PIL's on the folder's first ``n`` images (uint8, grey levels)."""
    import torch

    from hrnet_explorer.analyze.decode import DeviceDecoder, Encoded, collate
    from hrnet_explorer.analyze.inputs import Crops
    from hrnet_explorer.sources import open_source

    cfg = _loaded(device).data_config
    source = open_source(str(folder))
    indices = list(range(min(n, len(source))))
    reference = torch.stack([Crops(source, indices, cfg, 224)[k][0] for k in range(len(indices))])
    decoder = DeviceDecoder(source, cfg, 224, device)
    x, *_ = decoder(collate([Encoded(source, indices, cfg, 224)[k] for k in range(len(indices))]))
    delta = (x.cpu().int() - reference.int()).abs()
    per_image = delta.float().mean((1, 2, 3))
    return {
        "images": len(indices),
        "decoded": decoder.counts,
        "mean_abs": round(float(delta.float().mean()), 4),
        "worst_image_mean_abs": round(float(per_image.max()), 4),
        "max_abs": int(delta.max()),
        "share_of_values_off_by_more_than_2": round(float((delta > 2).float().mean()), 6),
    }


def decode_rate(folder: Path, device: str, batch: int, workers: int, limit: int, decode: str) -> dict:
    """images/s from the JPEG files to uint8 [B, 3, 224, 224] crops on ``device``: PIL in the workers (then the
    copy), or the workers reading the files and decode_jpeg, resize and crop on the device."""
    import torch
    from torch.utils.data import DataLoader

    from hrnet_explorer.analyze.decode import DeviceDecoder, Encoded, collate
    from hrnet_explorer.analyze.inputs import Crops
    from hrnet_explorer.sources import open_source

    cfg = _loaded(device).data_config
    source = open_source(str(folder))
    indices = range(min(limit, len(source)))
    cuda = device.startswith("cuda")
    gpu = decode == "gpu"
    dataset = (Encoded if gpu else Crops)(source, indices, cfg, 224)
    decoder = DeviceDecoder(source, cfg, 224, device) if gpu else None
    loader = DataLoader(
        dataset,
        batch_size=batch,
        num_workers=workers,
        collate_fn=collate if gpu else None,
        pin_memory=cuda,
        prefetch_factor=4 if workers else None,
    )
    done, start, first = 0, None, 0
    for item in loader:
        x = decoder(item)[0] if gpu else item[0].to(device, non_blocking=True)
        if start is None:  # from the first batch on, as analyze's clock: worker start-up excluded
            if cuda:
                torch.cuda.synchronize()
            start, first = time.perf_counter(), x.shape[0]
        done += x.shape[0]
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    out = {
        "decode": decode,
        "workers": workers,
        "images_per_s": round((done - first) / seconds, 1) if seconds else None,
    }
    if decoder is not None:
        out["decoded"] = decoder.counts
    return out


def run_analyze(
    folder: Path, out: Path, *, workers: int, limit: int | None, batch: int, gpus: int = 1, extra=()
) -> dict:
    """`hrnet-explorer analyze` in a subprocess (torchrun for gpus > 1); its manifest numbers and peak memory."""
    args = [str(folder), "--variant", VARIANT, "--weights", "random", "--out", str(out), "--workers", str(workers)]
    args += ["-b", str(batch), "-q", *extra]
    if limit:
        args += ["--limit", str(limit)]
    probe = [sys.executable, str(Path(__file__).resolve()), "_probe", *args]
    if gpus > 1:
        probe = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(gpus),
            str(Path(__file__).resolve()),
            "_probe",
            *args,
        ]
    start = time.perf_counter()
    done = subprocess.run(probe, cwd=ROOT, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"analyze failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    memory = [json.loads(line.split("PROBE ", 1)[1]) for line in done.stdout.splitlines() if "PROBE " in line]
    manifest = json.loads((out / "manifest.json").read_text())
    info = manifest["variants"][VARIANT]
    return {
        "images": info["this_run"]["images"],
        "rows": info["rows"],
        "errors": info["errors"],
        "images_per_s": info["this_run"]["images_per_s"],
        "images_per_s_with_startup": info["this_run"]["images_per_s_with_startup"],
        "per_rank": info["this_run"]["per_rank"],
        "wall_s": round(wall, 2),
        "wall_images_per_s": round(info["this_run"]["images"] / wall, 1),
        "memory": memory,
        "device_name": manifest["run"]["device_name"],
        "workers_per_rank": manifest["run"]["workers_per_rank"],
        "world_size": manifest["run"]["world_size"],
    }


def same_rows(one: Path, many: Path) -> dict:
    """A torchrun run's rows against the one-process run's: the same ids and top-1, the largest float difference."""
    import pyarrow as pa

    from hrnet_explorer.analyze import read_rows

    a, b = (read_rows(d, VARIANT).sort_by("image_id") for d in (one, many))
    out = {"rows": [a.num_rows, b.num_rows], "ids_equal": a.column("image_id").equals(b.column("image_id"))}
    if a.num_rows != b.num_rows:
        return out
    out["top1_equal"] = a.column("top1").equals(b.column("top1"))
    floats = [f.name for f in a.schema if f.type == pa.float32()]
    out["max_abs_float"] = max(float(np.abs(np.array(a.column(c)) - np.array(b.column(c))).max()) for c in floats)
    return out


def _probe(argv: list[str]) -> None:
    """Run analyze in this process, then print its peak memory (one PROBE line per rank)."""
    import torch

    from hrnet_explorer.cli import analyze as analyze_command

    parser = argparse.ArgumentParser()
    analyze_command.add_command(parser.add_subparsers())
    args = parser.parse_args(["analyze", *argv])
    args.func(args)
    rank = int(os.environ.get("RANK", "0"))
    peak = {
        "rank": rank,
        "host_main_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "host_worker_peak_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    if torch.cuda.is_available():
        peak["gpu_allocated_peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        peak["gpu_reserved_peak_mib"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    print("PROBE " + json.dumps(peak), flush=True)


# ----------------------------------------------------------------------------------------------- main


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_probe":
        return _probe(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=("one", "scale", "decode"))
    parser.add_argument("--images", type=int, default=20480)
    parser.add_argument("--workers", type=int, default=14)
    parser.add_argument("--gpus", default="2", help="scale: GPU counts for torchrun, e.g. 2 or 2,4,8 (the curve)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dir", default="/tmp/analyze-bench")
    parser.add_argument("--out", default=None)
    parser.add_argument("--no-plain", action="store_true", help="scale: skip the plain forward with the pipeline")
    parser.add_argument("--decode", default="pil", choices=("pil", "gpu", "auto"), help="one, scale: analyze's")
    parser.add_argument("--gpu-workers", default="2,4", help="decode: also decode_jpeg fed by these worker counts")
    parser.add_argument("--no-analyze", action="store_true", help="decode: skip analyze end to end")
    parser.add_argument("--make-folder", type=int, default=None, metavar="N", help="write N JPEGs under --dir, exit")
    args = parser.parse_args()
    import torch

    torch.backends.cudnn.benchmark = True
    work = Path(args.dir)
    if args.make_folder:
        start = time.perf_counter()
        folder = prepare(work / "images", args.make_folder)
        size = sum(p.stat().st_size for p in folder.rglob("*.jpg"))
        print(
            json.dumps(
                {
                    "folder": str(folder),
                    "images": args.make_folder,
                    "bytes": size,
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
        )
        return None
    if args.mode is None:
        parser.error("give a mode (one, scale, decode) or --make-folder N")
    folder = prepare(work / "images", args.images)
    cuda = args.device.startswith("cuda")
    result: dict = {
        "mode": args.mode,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "gpus_visible": torch.cuda.device_count(),
        "cpus": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "variant": VARIANT,
        "batch": args.batch,
        "images": args.images,
        "workers": args.workers,
        "decode": args.decode if args.mode != "decode" else "pil vs gpu",
    }

    def report(key, value):
        result[key] = value
        print(json.dumps({key: value}), flush=True)

    decode = ("--decode", args.decode)
    if args.mode == "decode":
        report("fidelity", fidelity(folder, args.device))
        rates = [decode_rate(folder, args.device, args.batch, args.workers, args.images, "pil")]
        for workers in sorted({args.workers, *(int(w) for w in args.gpu_workers.split(",") if w)}):
            rates.append(decode_rate(folder, args.device, args.batch, workers, args.images, "gpu"))
        report("to_device_img_s", rates)
        if not args.no_analyze:
            for path in ("pil", "gpu"):
                out = work / f"out-decode-{path}"
                run = run_analyze(
                    folder, out, workers=args.workers, limit=None, batch=args.batch, extra=("--decode", path)
                )
                report(f"analyze_{path}", run)
            result["analyze_gpu_over_pil"] = round(
                result["analyze_gpu"]["images_per_s"] / result["analyze_pil"]["images_per_s"], 3
            )
    elif args.mode == "one":
        report("correctness", correctness(args.device))
        if cuda:
            report("compute_img_s", compute_ceilings(args.device, args.batch))
        report(
            "pipeline_only_img_s", round(pipeline(folder, args.device, args.batch, args.workers, args.images, None), 1)
        )
        report(
            "plain_with_pipeline_img_s",
            round(pipeline(folder, args.device, args.batch, args.workers, args.images, "plain"), 1),
        )
        short = args.images // 4
        report(
            "analyze_short",
            run_analyze(folder, work / "out-short", workers=args.workers, limit=short, batch=args.batch, extra=decode),
        )
        report(
            "analyze_full",
            run_analyze(folder, work / "out-full", workers=args.workers, limit=None, batch=args.batch, extra=decode),
        )
        full = result["analyze_full"]["images_per_s"]
        result["analyze_over_plain_with_pipeline"] = round(full / result["plain_with_pipeline_img_s"], 3)
    else:  # the 1-GPU baseline again on this machine (its CPUs), then one process vs torchrun on the same job
        report(
            "pipeline_only_img_s", round(pipeline(folder, args.device, args.batch, args.workers, args.images, None), 1)
        )
        plain = None if args.no_plain else pipeline(folder, args.device, args.batch, args.workers, args.images, "plain")
        report("plain_with_pipeline_img_s", plain and round(plain, 1))
        report(
            "one_gpu",
            run_analyze(folder, work / "out-1", workers=args.workers, limit=None, batch=args.batch, extra=decode),
        )
        one = result["one_gpu"]
        curve = [{"gpus": 1, "images_per_s": one["images_per_s"], "speedup": 1.0, "efficiency": 1.0}]
        for gpus in (int(g) for g in args.gpus.split(",")):
            out = work / f"out-{gpus}"
            many = run_analyze(folder, out, workers=args.workers, limit=None, batch=args.batch, gpus=gpus, extra=decode)
            report(f"{gpus}_gpus", many)
            speedup = many["images_per_s"] / one["images_per_s"]
            point = {"gpus": gpus, "images_per_s": many["images_per_s"], "speedup": round(speedup, 3)}
            point |= {"efficiency": round(speedup / gpus, 3), "speedup_wall": round(one["wall_s"] / many["wall_s"], 3)}
            point["rows_vs_one_process"] = same_rows(work / "out-1", out)
            curve.append(point)
        report("curve", curve)
        if plain:
            result["analyze_over_plain_with_pipeline"] = round(one["images_per_s"] / plain, 3)
        if len(curve) == 2:  # the keys of the 2-GPU results before the curve
            result["speedup"], result["speedup_wall"] = curve[1]["speedup"], curve[1]["speedup_wall"]
    print(json.dumps(result, indent=1), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Warm request time of the app's main endpoint, /analyze (predict + trace + fusion figures), on a CPU or GPU.

Everything is warm (model loaded, fvcore costs counted, two warm-up rounds discarded). Four numbers,
measured round by round (one of each per round) so that load from other processes hits them alike:

- ``inprocess_new_image``: ``Explorer.analyze`` on a picture it has not seen (so the traced forward runs),
  plus the figures' JSON that Gradio sends — the server's work for one request;
- ``inprocess_cached``: the same picture again (the trace is reused: figures + JSON only);
- ``http_new_image`` / ``http_cached``: the same through the launched app as the page's JavaScript does it
  (upload, join the queue, read the SSE stream to the result; one kept-alive connection) — what a user waits
  for, less the browser's drawing;
- ``gradio_client_new_image`` / ``gradio_client_cached``: the same with ``gradio_client``, what API users run.
  It reads its messages in a loop that sleeps 50 ms when none is waiting: on the 2-core CPU a text echo takes
  69 ms through it against 5 ms as the page does it, so these two carry ~50–80 ms of the client's own.

Each new picture is the example with one pixel changed (a different file, a cache miss). Prints one JSON
line per measurement (median / p90 / min ms); ``--markdown`` also prints rows for benchmarks/README.md.

    python benchmarks/app_cpu.py --repeats 20 --markdown
    python benchmarks/app_cpu.py --device cuda --variant hrnet_w18 --markdown   # on a GPU: graph-replayed trace
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub lookups (and no retries) while timing
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import httpx  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from hrnet_explorer.ui import ASSETS, Explorer, build_demo  # noqa: E402

EXAMPLE = ASSETS / "grace_hopper.jpg"


def variants_of(n: int, start: int = 0) -> list[bytes]:
    """``n`` different JPEG files of the example picture: pixel (0, k) nudged for each k."""
    base = Image.open(EXAMPLE).convert("RGB")
    out = []
    for k in range(start, start + n):
        img = base.copy()
        x, y = k % img.width, k // img.width
        r, g, b = img.getpixel((x, y))
        img.putpixel((x, y), ((r + 97) % 256, g, b))
        buf = io.BytesIO()
        img.save(buf, format="PNG")  # lossless: the nudged pixel survives, every file differs
        out.append(buf.getvalue())
    return out


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
        "min_ms": round(ordered[0], 1),
        "n": len(ordered),
    }


def to_json(outputs) -> int:
    """What Gradio does to the outputs: figures to JSON. Returns the bytes sent."""
    total = 0
    for out in outputs:
        if hasattr(out, "to_json"):
            total += len(out.to_json())
    return total


class BrowserLikeClient:
    """One click as the page's JavaScript makes it: upload the picture, join the queue, read the session's SSE
    stream until the event's ``process_completed`` message — one kept-alive connection, no polling."""

    def __init__(self, url: str, config: dict, api_name: str):
        self.root = url.rstrip("/") + "/gradio_api"
        endpoint = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
        self.fn_index, self.n_inputs = endpoint["id"], len(endpoint["inputs"])
        self.http = httpx.Client(timeout=120)
        self.session = uuid.uuid4().hex

    def predict(self, path: Path, *args) -> list:
        with path.open("rb") as fh:
            uploaded = self.http.post(f"{self.root}/upload", files=[("files", (path.name, fh))])
        uploaded.raise_for_status()
        image = {"path": uploaded.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}
        data = [image, *args] + [None] * (self.n_inputs - 1 - len(args))  # the page's hidden inputs: unset
        payload = {"data": data, "fn_index": self.fn_index, "session_hash": self.session, "trigger_id": None}
        joined = self.http.post(f"{self.root}/queue/join", json=payload)
        joined.raise_for_status()
        event = joined.json()["event_id"]
        with self.http.stream("GET", f"{self.root}/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("event_id") == event and message.get("msg") == "process_completed":
                    if not message.get("success"):
                        raise RuntimeError(f"/analyze failed: {message.get('output')}")
                    return message["output"]["data"]
        raise RuntimeError("The event stream closed before the result came.")


def bench(explorer: Explorer, variant: str, weights: str, repeats: int, http: bool) -> dict[str, dict]:
    """All measurements interleaved round by round, so that load from other processes hits them alike."""
    samples: dict[str, list[float]] = {"inprocess_new_image": [], "inprocess_cached": []}
    pictures = variants_of(3 * repeats + 9, start=1000)
    same = pictures[0]

    def inprocess(data: bytes) -> float:
        start = time.perf_counter()
        to_json(explorer.analyze(data, variant, weights, "default"))
        return 1e3 * (time.perf_counter() - start)

    demo = client = None
    if http:
        from gradio_client import Client, handle_file

        samples |= {
            name: [] for name in ("http_new_image", "http_cached", "gradio_client_new_image", "gradio_client_cached")
        }
        demo = build_demo(explorer)
        demo.queue(max_size=16, default_concurrency_limit=1)
        _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        client = Client(url, verbose=False, download_files=False)
        page = BrowserLikeClient(url, demo.config, "analyze")
    try:
        with tempfile.TemporaryDirectory() as tmp:

            def over_http(data: bytes, name: str, how: str) -> float:
                path = Path(tmp) / f"{name}.png"
                if not path.exists():
                    path.write_bytes(data)
                args = (variant, weights, "default", "energy_share")
                start = time.perf_counter()
                if how == "page":
                    page.predict(path, *args)
                else:
                    client.predict(handle_file(str(path)), *args, api_name="/analyze")
                return 1e3 * (time.perf_counter() - start)

            for k in range(-2, repeats):  # two warm-up rounds
                new_a, new_b, new_c = pictures[3 * k + 9 : 3 * k + 12]
                times = {"inprocess_new_image": inprocess(new_a), "inprocess_cached": inprocess(same)}
                if http:
                    times["http_new_image"] = over_http(new_b, f"new{k}", "page")
                    times["http_cached"] = over_http(same, "same", "page")
                    times["gradio_client_new_image"] = over_http(new_c, f"client{k}", "gradio_client")
                    times["gradio_client_cached"] = over_http(same, "same", "gradio_client")
                if k >= 0:
                    for name, ms in times.items():
                        samples[name].append(ms)
    finally:
        if demo is not None:
            demo.close()
    return {name: stats(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="hrnet_w18_small")
    parser.add_argument("--weights", default="random", help="warm timings do not depend on the weights")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu", help="cpu | cuda[:N] | auto")
    parser.add_argument("--no-http", action="store_true", help="in-process only")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--profile", action="store_true", help="first, cProfile 5 new-image requests")
    args = parser.parse_args()

    explorer = Explorer(args.device)
    explorer.analyze(str(EXAMPLE), args.variant, args.weights, "default")  # load, count MACs, first forward
    load_before = os.getloadavg()[0]
    if args.profile:  # where a new image's request spends its time (cProfile, our functions and the heaviest)
        profiler = cProfile.Profile()
        profiler.enable()
        for picture in variants_of(5, start=5000):
            to_json(explorer.analyze(picture, args.variant, args.weights, "default"))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    results = bench(explorer, args.variant, args.weights, args.repeats, http=not args.no_http)
    context = {
        "variant": args.variant,
        "device": explorer.device_text,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_avg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    for name, values in results.items():
        print(json.dumps({"measure": name, **values, **context}))
    if args.markdown:
        print("\n| request (warm) | median ms | p90 ms | min ms | n |\n|---|---|---|---|---|")
        for name, v in results.items():
            print(f"| {name} | {v['median_ms']} | {v['p90_ms']} | {v['min_ms']} | {v['n']} |")
        print(f"\n{context}")


if __name__ == "__main__":
    main()

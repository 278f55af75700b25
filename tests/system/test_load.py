"""Load and soak: the app under 16 concurrent API clients, the core under 500 traces.

The app runs as users start it (``python app.py``, tests/corpus.py's ``app_server``): w18_small with random
weights (offline), its own queue (QUEUE_MAX_SIZE) and concurrency limit. Every request must be answered or
refused cleanly by the bounded queue — none lost — and the server's memory must stay flat.
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import torch
from corpus import SUMMARY, app_server, encode, picture
from gradio_client import Client, handle_file

from hrnet_explorer.trace import trace
from hrnet_explorer.ui import CONCURRENCY_LIMIT, QUEUE_MAX_SIZE

pytestmark = pytest.mark.slow

VARIANT = "hrnet_w18_small"
APP_SIZE = "160"  # the app's smallest input size
CLIENTS, REQUESTS, WARMUP = 16, 8, 2
TIMEOUT = 300  # seconds for one request, queueing included: beyond it the request counts as lost
MEMORY_RATIO = 1.05


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with app_server(tmp_path_factory.mktemp("load"), OMP_NUM_THREADS="1") as srv:
        yield srv


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    """One picture per client, all different: with the trace cache's four entries, most requests trace."""
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for k in range(CLIENTS):
        path = folder / f"client{k:02d}.png"
        path.write_bytes(encode(picture((96 + 4 * k, 72)), "PNG"))
        paths.append(str(path))
    return paths


def _analyze(client: Client, image: str):
    return client.submit(handle_file(image), VARIANT, "random", APP_SIZE, "energy_share", api_name="/analyze")


def _outcome(job) -> str:
    """ "answered", "rejected" (the queue was full: a clean, immediate error) or "lost" (anything else)."""
    try:
        banner, summary, *_ = job.result(timeout=TIMEOUT)
    except Exception as exc:
        return "rejected" if "queue is full" in str(exc).lower() else f"lost: {type(exc).__name__}: {exc}"
    return "answered" if VARIANT in summary and "Top-1" in summary else f"lost: unexpected answer {summary[:100]!r}"


def _run(clients: list[Client], images: list[str], requests: int) -> tuple[Counter, list[float]]:
    """Every client sends ``requests`` analyses of its own picture, one after another, all clients at once."""

    def one_client(k: int) -> list[tuple[str, float]]:
        results = []
        for _ in range(requests):
            start = time.perf_counter()
            job = clients[k].submit(
                handle_file(images[k]), VARIANT, "random", APP_SIZE, "energy_share", api_name="/analyze"
            )
            results.append((_outcome(job), time.perf_counter() - start))
        return results

    with ThreadPoolExecutor(len(clients)) as pool:
        results = [r for rs in pool.map(one_client, range(len(clients))) for r in rs]
    return Counter(o for o, _ in results), [s for o, s in results if o == "answered"]


def _settled_rss(server) -> int:
    """The server's RSS once the last responses have gone out (the least of three reads)."""
    reads = []
    for _ in range(3):
        time.sleep(0.5)
        reads.append(server.rss())
    return min(reads)


def test_sixteen_concurrent_clients(server, images):
    assert QUEUE_MAX_SIZE >= CLIENTS and CONCURRENCY_LIMIT == 1  # so 16 waiting clients fit in the queue
    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = list(pool.map(lambda _: Client(server.url, verbose=False, download_files=False), range(CLIENTS)))
    warm, _ = _run(clients, images, WARMUP)  # every code path, thread and allocator arena in use once
    assert warm["answered"] == CLIENTS * WARMUP, warm
    before = _settled_rss(server)
    start = time.perf_counter()
    counts, latencies = _run(clients, images, REQUESTS)
    seconds = time.perf_counter() - start
    after = _settled_rss(server)
    lost = {k: v for k, v in counts.items() if k.startswith("lost")}
    SUMMARY["load"] = (
        f"load: {CLIENTS} clients × {REQUESTS} requests in {seconds:.0f} s: answered={counts['answered']} "
        f"rejected={counts['rejected']} lost={sum(lost.values())} · latency median "
        f"{statistics.median(latencies):.1f} s, max {max(latencies):.1f} s · server RSS {before / 2**20:.0f} → "
        f"{after / 2**20:.0f} MiB ({after / before:.3f}×)"
    )
    assert not lost, lost
    assert counts["answered"] + counts["rejected"] == CLIENTS * REQUESTS
    assert counts["answered"] == CLIENTS * REQUESTS  # 16 clients never overfill a queue of QUEUE_MAX_SIZE >= 16
    assert after <= MEMORY_RATIO * before, SUMMARY["load"]
    assert server.proc.poll() is None


def test_a_burst_beyond_the_queue_is_refused_cleanly(server, images):
    """One client fires QUEUE_MAX_SIZE + 24 slow requests at once: those beyond the queue are refused at
    once with "Queue is full", the rest answered; none hangs or vanishes; the app answers afterwards."""
    client = Client(server.url, verbose=False, download_files=False)
    burst = QUEUE_MAX_SIZE + 24
    steps = 16  # ~1 s a request on one CPU thread: the burst arrives long before the queue drains
    shares = (handle_file(images[0]), VARIANT, "random", APP_SIZE, "top-1 prediction", steps)
    jobs = [client.submit(*shares, api_name="/stream_shares") for _ in range(burst)]
    outcomes = Counter()
    for job in jobs:
        try:
            figure = job.result(timeout=TIMEOUT)
            outcomes["answered" if figure["type"] == "plotly" else "lost: no figure"] += 1
        except Exception as exc:
            outcomes["rejected" if "queue is full" in str(exc).lower() else f"lost: {exc}"] += 1
    SUMMARY["burst"] = (
        f"burst: {burst} requests at once into a queue of {QUEUE_MAX_SIZE}: answered={outcomes['answered']} "
        f"rejected={outcomes['rejected']} lost={burst - outcomes['answered'] - outcomes['rejected']}"
    )
    assert outcomes["answered"] + outcomes["rejected"] == burst, outcomes
    assert outcomes["rejected"] > 0 and outcomes["answered"] >= 1, outcomes
    assert _outcome(_analyze(client, images[1])) == "answered"


# ----------------------------------------------------------------------------------------------- soak


def _hooks(model: torch.nn.Module) -> int:
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, kind, {})) for m in model.modules() for kind in kinds)


def test_soak_500_traces(w18_small):
    """500 traces through the core (keep all/outputs/summaries in turn, every tenth from a picture): no hook
    left on the model, every captured tensor freed as soon as its Trace is, and the process memory flat."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see test_robustness.one_thread
    try:
        x = torch.rand(1, 3, 64, 64)
        image = picture((80, 64))
        one = trace(w18_small, x, keep="all")
        trace_bytes = sum(t.numel() * t.element_size() for t in one.maps.values())
        del one
        for i in range(30):  # warm-up: allocator, oneDNN primitives
            trace(w18_small, x, keep=("all", "outputs", "summaries")[i % 3])
        proc = psutil.Process()
        before, peak = proc.memory_info().rss, 0
        start = time.perf_counter()
        for i in range(500):
            keep = ("all", "outputs", "summaries")[i % 3]
            result = trace(w18_small, image if i % 10 == 0 else x, keep=keep, input_size=64)
            probe = weakref.ref(next(iter(result.maps.values())))
            del result
            assert probe() is None, f"trace {i}: a captured tensor outlived its Trace"
            peak = max(peak, proc.memory_info().rss - before) if i % 25 == 0 else peak
        seconds = time.perf_counter() - start
        growth = proc.memory_info().rss - before
    finally:
        torch.set_num_threads(threads)
    # Leaking even three of the 500 traces (0.6%) would break the bound.
    bound = 3 * trace_bytes
    SUMMARY["soak"] = (
        f"soak: 500 traces in {seconds:.1f} s · RSS growth {growth / 2**20:+.2f} MiB (peak {peak / 2**20:+.2f}; "
        f"bound {bound / 2**20:.1f} MiB = 3 traces of {trace_bytes / 2**20:.2f} MiB) · hooks left "
        f"{_hooks(w18_small.model)}"
    )
    assert _hooks(w18_small.model) == 0
    assert not torch.nn.modules.module._global_forward_hooks and not torch.nn.modules.module._global_forward_pre_hooks
    assert not w18_small.model.training
    assert growth < bound and peak < bound, SUMMARY["soak"]

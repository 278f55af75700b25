"""What each figure of the app's main request, /analyze, costs to build and to turn into JSON (CPU, warm).

The cached /analyze request (the trace reused) is figures only: top-k, card vs measured, the fusion matrices and
the Sankey, then their JSON (what Gradio sends). This times each one, wide and compact, round by round (one of
each per round, so that load from other processes hits them alike), on the app's own cached analysis.

    python benchmarks/figures_cpu.py --variant hrnet_w18 --repeats 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hrnet_explorer.analyses import fusion_flows  # noqa: E402
from hrnet_explorer.figures import fusion_matrices_figure, sankey_figure, topk_figure, variants_figure  # noqa: E402
from hrnet_explorer.ui import ASSETS, Explorer  # noqa: E402
from hrnet_explorer.ui.callbacks import variant_costs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="hrnet_w18")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--measure", default="energy_share")
    args = parser.parse_args()

    explorer = Explorer("cpu")
    image = str(ASSETS / "grace_hopper.jpg")
    a, _ = explorer.analysis(image, args.variant, "random", "default")
    costs = variant_costs(a.loaded.variant.name)
    flows = fusion_flows(a.trace, args.measure)  # computed per request too; timed apart below
    builders = {
        "topk": lambda c: topk_figure(a.prediction, compact=c),
        "variants": lambda c: variants_figure(
            [costs], {costs.variant: explorer.latency_ms(a)}, device=explorer.device_text, compact=c
        ),
        "fusion_matrices": lambda c: fusion_matrices_figure(a.trace, args.measure, compact=c),
        "sankey": lambda c: sankey_figure(flows, args.measure, compact=c),
    }
    build: dict[str, list[float]] = {}
    to_json: dict[str, list[float]] = {}
    flow_ms: list[float] = []
    load_before = os.getloadavg()[0]
    for k in range(-2, args.repeats):  # two warm-up rounds
        start = time.perf_counter()
        fusion_flows(a.trace, args.measure)
        if k >= 0:
            flow_ms.append(1e3 * (time.perf_counter() - start))
        for name, fn in builders.items():
            for c in (False, True):
                key = f"{name}{' compact' if c else ''}"
                start = time.perf_counter()
                fig = fn(c)
                mid = time.perf_counter()
                fig.to_json()
                end = time.perf_counter()
                if k >= 0:
                    build.setdefault(key, []).append(1e3 * (mid - start))
                    to_json.setdefault(key, []).append(1e3 * (end - mid))
    med = statistics.median
    rows = [(key, med(build[key]), med(to_json[key])) for key in build]
    print(f"| figure ({args.variant}, CPU) | build ms | to_json ms |\n|---|---|---|")
    for key, b, j in rows:
        print(f"| {key} | {b:.1f} | {j:.1f} |")
    for c in ("", " compact"):
        keys = [r for r in rows if r[0].endswith(" compact") == bool(c)]
        print(f"| all four{c} | {sum(r[1] for r in keys):.1f} | {sum(r[2] for r in keys):.1f} |")
    print(f"| fusion_flows | {med(flow_ms):.1f} | |")
    load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps({"variant": args.variant, "repeats": args.repeats, "load_avg_1m_before_after": load}))


if __name__ == "__main__":
    main()

"""HRNet Explorer's web app — ``python app.py`` locally, and the Hugging Face Spaces entry point.

Binds to 127.0.0.1:7860 unless told otherwise: ``--host``/``--port``, or the GRADIO_SERVER_NAME /
GRADIO_SERVER_PORT environment variables (Spaces sets GRADIO_SERVER_NAME=0.0.0.0). ``--share`` asks Gradio
for a public link. ``--models DIR`` offers every checkpoint in DIR that has a model card beside it, under the
card's name.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys

from hrnet_explorer.ui import (
    CONCURRENCY_LIMIT,
    MAX_FILE_SIZE,
    QUEUE_MAX_SIZE,
    Explorer,
    build_demo,
    launch_options,
)
from hrnet_explorer.zoo import WeightsError

demo = build_demo()  # module level, so `gradio app.py` reload mode and Spaces find it


def bound_native_memory(arenas: int = 1, mmap_threshold: int = 1 << 20) -> bool:
    """Keep the server's memory flat under concurrent requests (glibc; a no-op elsewhere).

    glibc gives threads their own malloc arenas and raises its mmap threshold as big blocks are freed, so
    what a request frees (traced maps, figure JSON) stays in the process: RSS climbed ~10% per 128 concurrent
    requests, with no live object growing (tests/test_load.py). One arena, and blocks of 1 MiB and more mapped
    (and unmapped when freed), keep it flat. MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ in the environment win.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold, m_arena_max = -3, -8  # from glibc's malloc.h
    done = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        done &= mallopt(m_arena_max, arenas) == 1
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done &= mallopt(m_mmap_threshold, mmap_threshold) == 1
    return done


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="HRNet Explorer web app")
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="interface to bind (default 127.0.0.1, or $GRADIO_SERVER_NAME; 0.0.0.0 exposes it to the network)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        help="port (default 7860, or $GRADIO_SERVER_PORT)",
    )
    parser.add_argument("--share", action="store_true", help="also create a public gradio.live link")
    parser.add_argument(
        "--models",
        metavar="DIR",
        default=None,
        help="also offer every *.safetensors / *.pth in DIR with a model card (*.json) beside it, by the card's name",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    if args.models is not None:
        try:  # every card and name is checked now: a bad one stops the start, with one line saying why
            demo = build_demo(Explorer(models=args.models))
        except WeightsError as exc:
            sys.exit(f"app.py: error: {exc}")
    bound_native_memory()
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=MAX_FILE_SIZE,
        **launch_options(),
        footer_links=["api", "gradio"],
    )

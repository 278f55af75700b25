"""HRNet Explorer's web app: ``hrnet-explorer app``, ``python -m hrnet_explorer.app``, or ``python app.py`` in a
checkout (the repository's ``app.py`` is the Hugging Face Spaces entry point and calls :func:`main`).

Binds to 127.0.0.1:7860 unless told otherwise: ``--host``/``--port``, or the GRADIO_SERVER_NAME /
GRADIO_SERVER_PORT environment variables (Spaces sets GRADIO_SERVER_NAME=0.0.0.0). ``--share`` asks Gradio
for a public link. ``--models DIR`` offers every checkpoint in DIR that has a model card beside it, under the
card's name. The example images and the lab model are package data, so an installed wheel runs the app too.

Importing this module is cheap (no gradio): the CLI adds its ``app`` command from here.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    import gradio as gr

__all__ = ["add_arguments", "add_app_command", "bound_native_memory", "build", "launch", "main", "parse_args", "serve"]


def bound_native_memory(arenas: int = 1, mmap_threshold: int = 1 << 20) -> bool:
    """Keep the server's memory flat under concurrent requests (glibc; a no-op elsewhere).

    glibc gives threads their own malloc arenas and raises its mmap threshold as big blocks are freed, so
    what a request frees (traced maps, figure JSON) stays in the process: RSS climbed ~10% per 128 concurrent
    requests, with no live object growing (tests/system/test_load.py). One arena, and blocks of 1 MiB and more mapped
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


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The app's options: one definition for ``app.py``, ``python -m hrnet_explorer.app``, ``hrnet-explorer app``."""
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
    return parser


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    return add_arguments(argparse.ArgumentParser(prog=prog, description="HRNet Explorer web app"))


def parse_args(argv: Sequence[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    return _parser(prog).parse_args(argv)


def _ui():
    """The gradio half of the package, or one line saying how to install it."""
    try:
        from . import ui
    except ModuleNotFoundError as exc:
        if exc.name != "gradio":
            raise
        sys.exit("hrnet-explorer: error: the web app needs gradio: pip install 'hrnet-explorer[app]'")
    return ui


def build(models: str | os.PathLike | None = None) -> gr.Blocks:
    """The app's Blocks: the nine variants and the lab model, plus the carded checkpoints in ``models``.

    A bad card or two models of one name raise :class:`~hrnet_explorer.errors.WeightsError` now, before any launch.
    """
    ui = _ui()
    return ui.build_demo() if models is None else ui.build_demo(ui.Explorer(models=models))


def launch(demo: gr.Blocks, args: argparse.Namespace) -> None:
    """Queue and serve ``demo`` as every start of the app does (blocks until the server stops)."""
    ui = _ui()
    # The server log: where an endpoint's internal error leaves its traceback (ui.guard); a no-op when the host
    # (a test, an embedding app) has configured logging already.
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bound_native_memory()
    demo.queue(max_size=ui.QUEUE_MAX_SIZE, default_concurrency_limit=ui.CONCURRENCY_LIMIT)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=ui.MAX_FILE_SIZE,
        **ui.launch_options(),
        footer_links=["api", "gradio"],
    )


def serve(args: argparse.Namespace, demo: gr.Blocks | None = None) -> None:
    """Build (unless ``demo`` is given and no ``--models``) and launch the app for parsed ``args``."""
    if demo is None or args.models is not None:
        demo = build(args.models)
    launch(demo, args)


def add_app_command(sub) -> None:
    """``hrnet-explorer app``: the same options as ``python app.py``."""
    # The help texts name their defaults themselves (the environment's too): no "(default: …)" added.
    p = sub.add_parser(
        "app", help="serve the web app (Gradio; needs hrnet-explorer[app])", formatter_class=argparse.HelpFormatter
    )
    add_arguments(p)
    p.set_defaults(func=serve)


def main(argv: Sequence[str] | None = None, *, demo: gr.Blocks | None = None, prog: str | None = None) -> None:
    """Parse the app's options and serve it; ``demo`` is a Blocks already built (``app.py``'s module-level one).

    Every card and model name is checked before the launch: a bad one exits with one line saying why.
    """
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        serve(args, demo)
    except UserError as exc:
        sys.exit(f"{parser.prog}: error: {exc}")


if __name__ == "__main__":
    main(prog="python -m hrnet_explorer.app")

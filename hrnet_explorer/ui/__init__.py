"""The Gradio app: ``build_demo()`` returns the explorer's ``gr.Blocks`` (see ``hrnet_explorer.app`` to launch it).

Floors, each importing only those below it (tests/unit/ui/test_ui_choices.py):

- ``gpu``: Hugging Face's ZeroGPU when the ``spaces`` package is there, a no-op otherwise;
- ``choices``: the menus' entries and the parsers of every control (no gradio);
- ``cache``: the model and analysis cache — one image through one model, traced once (no gradio);
- ``text``: what the app says in words, Markdown and HTML (no gradio);
- ``gradio_private`` and ``components``: Gradio's private API behind one adapter, the app's image input;
- ``guard``: a user's mistake becomes one line, a bug a logged traceback and a generic message;
- ``dense``: the dense view's endpoint (the Pixels tab: dense models, :mod:`hrnet_explorer.dense`);
- ``callbacks``: the endpoints, one per event;
- ``layout``: the Blocks and their event wiring.

Only this package imports gradio; the core (trace, fusion, attribution, figures) never does.
"""

from .cache import Analysis, TraceCache
from .callbacks import Explorer
from .layout import (
    ASSETS,
    CONCURRENCY_LIMIT,
    DEFAULT_VARIANT,
    DELETE_CACHE,
    MAX_FILE_SIZE,
    QUEUE_MAX_SIZE,
    build_demo,
    example_images,
    launch_options,
)

__all__ = [
    "ASSETS",
    "Analysis",
    "CONCURRENCY_LIMIT",
    "DEFAULT_VARIANT",
    "DELETE_CACHE",
    "Explorer",
    "MAX_FILE_SIZE",
    "QUEUE_MAX_SIZE",
    "TraceCache",
    "build_demo",
    "example_images",
    "launch_options",
]

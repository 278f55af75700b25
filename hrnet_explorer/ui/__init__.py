"""The Gradio app: ``build_demo()`` returns the explorer's ``gr.Blocks`` (see ``app.py`` to launch it).

Only this package imports gradio; the core (trace, fusion, attribution, figures) never does.
"""

from .callbacks import Analysis, Explorer, TraceCache
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

"""Every use of Gradio's private API in the app, each behind one small function (pinned: gradio>=6.20,<7).

Gradio documents neither of these; tests/unit/ui/test_gradio_adapter.py checks both against the installed gradio, so an
upgrade that breaks one fails there, by name, rather than somewhere in the app.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr
from gradio.context import LocalContext
from gradio.data_classes import ImageData

__all__ = ["ImageData", "request_max_file_size", "replace_preprocess"]

C = TypeVar("C", bound=gr.components.Component)


def request_max_file_size() -> int | None:
    """The upload limit in bytes of the app serving the current request (``launch(max_file_size=...)``); None
    outside a request or when the app has no limit.

    Gradio enforces the limit on uploads only; a payload that arrives inside the request (a pasted image's
    data: URL) is the app's to check, and the running Blocks is reachable only through ``LocalContext``.
    """
    return getattr(LocalContext.blocks.get(None), "max_file_size", None)


def replace_preprocess(component: C, preprocess: Callable[[C, Any], Any]) -> C:
    """``component`` with ``preprocess(component, payload)`` in place of its class's preprocess, for this one
    instance: what the callback receives for the payload the browser sent.

    An instance override rather than a subclass: Gradio writes a ``.pyi`` stub next to the module of every
    Component subclass, and calls ``block.preprocess`` on the instance, so the override is what runs.
    """
    component.preprocess = types.MethodType(preprocess, component)
    return component

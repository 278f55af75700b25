"""Gradio components of the app."""

from __future__ import annotations

import base64
import binascii
import html
import types
from typing import Any

import gradio as gr

from .gradio_private import ImageData, replace_preprocess, request_max_file_size

__all__ = ["check_inputs", "image_input", "text_in_the_api"]


def _pass_file_through(self: gr.Image, payload: ImageData | None) -> str | bytes | None:
    """The uploaded file's path (or a data: URL's bytes), not decoded."""
    if payload is None:
        return None
    if payload.url and payload.url.startswith("data:"):
        encoded = payload.url.partition(",")[2]
        # A data: URL arrives inside the request, not as an upload: hold it to the upload limit here.
        limit = request_max_file_size()
        if limit is not None and len(encoded) * 3 // 4 > limit:
            raise gr.Error(f"The pasted image exceeds the maximum file size of {limit:,} bytes.", title="Image error")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise gr.Error("The pasted image is not valid base64 data.", title="Image error") from exc
    if payload.path is None:
        raise gr.Error("The upload has no file; try uploading it again.", title="Image error")
    return str(payload.path)


def image_input(**kwargs) -> gr.Image:
    """A ``gr.Image`` (upload, webcam, clipboard) that hands the callback the uploaded file untouched.

    gr.Image decodes every upload with Pillow before the callback runs, so a broken file fails inside
    Gradio with a generic message. This one passes the file's path (or the bytes of a pasted data: URL)
    and leaves decoding — and its clear :class:`~hrnet_explorer.errors.ImageError` messages — to
    :func:`hrnet_explorer.images.read_image`.
    """
    return replace_preprocess(gr.Image(type="filepath", **kwargs), _pass_file_through)


CHOICES_SHOWN = 8  # a menu's first entries in an error (the class picker has a thousand)


def _shown(value: Any) -> str:
    text = repr(value)
    return html.escape(text if len(text) <= 60 else text[:57] + "…", quote=False)


def _choices(component: gr.components.Component) -> str:
    values = [value for _, value in getattr(component, "choices", None) or []]
    listed = ", ".join(map(str, values[:CHOICES_SHOWN]))
    return listed + (f", … ({len(values)} in all)" if len(values) > CHOICES_SHOWN else "")


def _input_problem(component: gr.components.Component, payload: Any, exc: Exception) -> str:
    """One line saying what ``component`` takes and what it got (not the exception's text: Python's or Gradio's
    internals, such as "(type: <class 'int'>)" or "'<' not supported between instances of 'str' and 'int'")."""
    what = component.label or type(component).__name__
    if isinstance(component, gr.CheckboxGroup):
        if not isinstance(payload, (list, tuple)):
            return f"{what} must be a list of: {_choices(component)}; got {_shown(payload)}."
        bad = next((v for v in payload if v not in [value for _, value in component.choices]), payload)
        return f"{what}: {_shown(bad)} is not in the list of choices: {_choices(component)}."
    if isinstance(component, (gr.Dropdown, gr.Radio)):
        return f"{what}: {_shown(payload)} is not in the list of choices: {_choices(component)}."
    if isinstance(component, (gr.Slider, gr.Number)):
        low, high = component.minimum, component.maximum
        bounds = f" from {low:g} to {high:g}" if low is not None and high is not None else ""
        if isinstance(exc, gr.Error) and isinstance(payload, (int, float)):  # a number out of bounds: Gradio's words
            return f"{what}: {exc.message}"
        return f"{what} must be a number{bounds}; got {_shown(payload)}."
    if isinstance(component, gr.Checkbox):
        return f"{what} must be true or false; got {_shown(payload)}."
    return f"{what}: cannot read {_shown(payload)}."


def _checked_preprocess(self: gr.components.Component, payload: Any) -> Any:
    try:
        return type(self).preprocess(self, payload)
    except Exception as exc:
        raise gr.Error(_input_problem(self, payload, exc), title="Input error", print_exception=False) from None


def check_inputs(components: Any) -> None:
    """Every one of ``components`` (but those whose preprocess is replaced already, like :func:`image_input`)
    answers a value it cannot take — a wrong type from an API caller — with one line saying what it takes, instead
    of Gradio's message with Python's internals in it (the app launches with ``show_error=True``)."""
    for component in components:
        if isinstance(component, gr.components.FormComponent) and "preprocess" not in vars(component):
            replace_preprocess(component, _checked_preprocess)


def text_in_the_api(component: gr.components.Component, description: str) -> gr.components.Component:
    """``component`` described to API clients as a string (``description`` says what it takes), not as an enum of
    its choices: the class picker's thousand ImageNet names, repeated in every endpoint that takes a class, made
    ``view_api()`` 223k characters. The page's menu keeps every choice."""
    component.api_info = types.MethodType(lambda self: {"type": "string", "description": description}, component)
    return component

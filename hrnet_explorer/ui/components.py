"""Gradio components of the app."""

from __future__ import annotations

import base64
import binascii

import gradio as gr

from .gradio_private import ImageData, replace_preprocess, request_max_file_size

__all__ = ["image_input"]


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

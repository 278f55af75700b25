"""The contract of hrnet_explorer.ui.gradio_private with the installed gradio (pinned >=6.20,<7).

The app relies on two things Gradio does not document: the running Blocks (and its ``max_file_size``) is
reachable from inside a request, and Gradio calls ``preprocess`` on the component instance, so an override on
one instance decides what the callback receives. Each is checked here through a real request, by name.
"""

from __future__ import annotations

import base64
import json
import urllib.request

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from servers import free_port

from hrnet_explorer.ui.components import image_input
from hrnet_explorer.ui.gradio_private import ImageData, replace_preprocess, request_max_file_size
from hrnet_explorer.zoo import ASSETS

EXAMPLE = ASSETS / "grace_hopper.jpg"
LIMIT = 300_000


def _seen(self: gr.Image, payload: ImageData | None) -> str:
    """What a callback receives under the override: the payload's kind and the limit seen inside the request."""
    kind = "none" if payload is None else "url" if payload.url and payload.url.startswith("data:") else "path"
    return json.dumps(
        {"kind": kind, "path": None if payload is None else payload.path, "limit": request_max_file_size()}
    )


@pytest.fixture(scope="module")
def served():
    with gr.Blocks(analytics_enabled=False) as demo:
        probe = replace_preprocess(gr.Image(type="filepath"), _seen)
        passed = image_input()
        out = gr.Textbox()
        probe.change(lambda seen: seen, probe, out, api_name="probe")
        passed.change(lambda value: repr(type(value).__name__) + " " + str(value), passed, out, api_name="passed")
    _, url, _ = demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True, max_file_size=LIMIT
    )
    try:
        yield demo, url
    finally:
        demo.close()


def test_the_pinned_range():
    major, minor = (int(p) for p in gr.__version__.split(".")[:2])
    assert (6, 20) <= (major, minor) < (7, 0), gr.__version__


def test_outside_a_request_there_is_no_limit():
    assert request_max_file_size() is None


def test_the_instance_override_runs_and_sees_the_running_limit(served):
    demo, url = served
    seen = json.loads(Client(url, verbose=False).predict(handle_file(str(EXAMPLE)), api_name="/probe"))
    # Gradio called this instance's preprocess (not gr.Image's, which would have decoded the file), inside a
    # request whose running Blocks carries launch()'s max_file_size
    assert seen["kind"] == "path" and seen["path"].endswith(".jpg")
    assert seen["limit"] == demo.max_file_size == LIMIT


def test_the_image_input_hands_over_the_file_or_the_pasted_bytes(served):
    _, url = served
    answer = Client(url, verbose=False).predict(handle_file(str(EXAMPLE)), api_name="/passed")
    assert answer.startswith("'str' ") and answer.endswith(".jpg")  # the upload's path, not a decoded image

    def call(data_url: str) -> str:
        body = json.dumps({"data": [{"url": data_url, "meta": {"_type": "gradio.FileData"}}]}).encode()
        request = urllib.request.Request(f"{url}gradio_api/call/passed", body, {"Content-Type": "application/json"})
        event = json.loads(urllib.request.urlopen(request, timeout=60).read())["event_id"]
        return urllib.request.urlopen(f"{url}gradio_api/call/passed/{event}", timeout=60).read().decode()

    small = EXAMPLE.read_bytes()
    assert len(small) < LIMIT
    assert "'bytes' " in call("data:image/jpeg;base64," + base64.b64encode(small).decode())
    # the pasted image is held to the running app's limit, read through the adapter
    big = call("data:image/png;base64," + base64.b64encode(b"\0" * (LIMIT + 1)).decode())
    assert "event: error" in big and f"maximum file size of {LIMIT:,} bytes" in big

"""ui.guard: a user's mistake becomes one escaped line under a title; anything else a generic message and a logged
traceback."""

from __future__ import annotations

import logging
import re

import gradio as gr
import pytest

from hrnet_explorer.errors import CardError, ImageError, NotFoundError, UserError
from hrnet_explorer.ui.guard import INTERNAL_ERROR, user_errors


def raising(exc: BaseException):
    @user_errors
    def endpoint(value):
        """An endpoint."""
        raise exc

    return endpoint


@pytest.mark.parametrize(
    ("exc", "message", "title"),
    [
        (ImageError("This file is not an image we can read."), "This file is not an image we can read.", "Image error"),
        (CardError("card.json:\n  'labels' is missing"), "card.json: 'labels' is missing", "Card error"),
        (NotFoundError("No row for 'x'"), "No row for 'x'", "Not found error"),  # no KeyError quotes around it
        (UserError("<b>bold</b>"), "&lt;b&gt;bold&lt;/b&gt;", "User error"),  # shown as HTML: escaped
    ],
)
def test_a_user_mistake_is_one_escaped_line(exc, message, title):
    with pytest.raises(gr.Error) as info:
        raising(exc)(1)
    assert info.value.message == message and info.value.title == title
    assert info.value.print_exception is False and info.value.__cause__ is exc


def test_a_bug_is_a_generic_message_and_a_logged_traceback(caplog):
    bug = ValueError("list index out of range at /srv/app/secret.py")  # a bare builtin: not the user's mistake
    caplog.set_level(logging.ERROR, logger="hrnet_explorer.ui")
    with pytest.raises(gr.Error) as info:
        raising(bug)(1)
    message = info.value.message
    assert message.startswith(INTERNAL_ERROR) and "secret" not in message and info.value.title == "Internal error"
    ref = re.fullmatch(rf"{INTERNAL_ERROR} \(ref ([0-9a-f]{{8}})\)\.", message).group(1)
    (record,) = caplog.records
    assert ref in record.getMessage() and "endpoint" in record.getMessage() and record.exc_info[1] is bug


def test_gradio_errors_and_results_pass_through():
    error = gr.Error("already worded")
    with pytest.raises(gr.Error) as info:
        raising(error)(1)
    assert info.value is error
    assert user_errors(lambda value: value + 1)(1) == 2
    assert raising(error).__doc__ == "An endpoint." and raising(error).__wrapped__.__name__ == "endpoint"

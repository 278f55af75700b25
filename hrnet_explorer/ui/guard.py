"""What reaches the person at the browser when an endpoint fails: a user's mistake in one line, a bug as a notice.

A :class:`~hrnet_explorer.errors.UserError` becomes a ``gr.Error`` with its message (shown in the UI, returned
to API clients), every absolute path in it cut to its file name. Anything else is a bug: its traceback goes to
the server log (``logging``, logger ``hrnet_explorer.ui``) under a short reference, and the browser gets only
"Internal error — see the server log" with that reference, never the exception's text (which may name server
paths).
"""

from __future__ import annotations

import functools
import html
import logging
import re
import uuid
from collections.abc import Callable
from typing import TypeVar

import gradio as gr

from ..errors import UserError

__all__ = ["INTERNAL_ERROR", "log", "user_errors", "without_paths"]

log = logging.getLogger("hrnet_explorer.ui")
INTERNAL_ERROR = "Internal error — see the server log"
F = TypeVar("F", bound=Callable)


def _title(exc: UserError) -> str:
    """'ImageError' → 'Image error', 'ModuleNotFoundInStage' → 'Module not found in stage'."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__).capitalize()


def _one_line(message: str) -> str:
    """A message as one line: a toast shows it, and a message listing choices over lines would break it up."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


# The folders of an absolute path ("/srv/models/", "~/models/"): a message names a file by its name alone. Not a
# relative path the user typed ("../x"), a hub tag ("timm/hrnet_w18") nor a fraction ("1/4"): the lookbehind.
_FOLDERS = re.compile(r"(?<![\w.:/~-])~?/(?:[^\s/'\"`,;()<>]+/)+")


def without_paths(message: str) -> str:
    """``message`` with every absolute path cut to its file name: server paths are no business of the browser."""
    return _FOLDERS.sub("", message)


def user_errors(fn: F) -> F:
    """``fn`` with its user mistakes as one-line ``gr.Error`` messages and its bugs logged with a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as exc:
            raise gr.Error(  # the UI renders the message as HTML, and it may quote what the user typed
                html.escape(_one_line(without_paths(str(exc))), quote=False), title=_title(exc), print_exception=False
            ) from exc
        except Exception as exc:
            ref = uuid.uuid4().hex[:8]
            log.exception("Internal error in %s (ref %s)", fn.__name__, ref)
            raise gr.Error(f"{INTERNAL_ERROR} (ref {ref}).", title="Internal error", print_exception=False) from exc

    return wrapper  # type: ignore[return-value]

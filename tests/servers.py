"""The app launched for tests: a free loopback port, and the Blocks served in-process."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from hrnet_explorer.ui import CONCURRENCY_LIMIT, QUEUE_MAX_SIZE, Explorer, build_demo
from hrnet_explorer.ui import launch_options as app_launch_options


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def launched_demo(explorer: Explorer | None = None, **launch_options) -> Iterator[tuple[object, str]]:
    """Build the app (default: a CPU Explorer), launch it on 127.0.0.1 in this process; yield (demo, url);
    close it."""
    demo = build_demo(explorer or Explorer("cpu"))
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT)
    _, url, _ = demo.launch(
        prevent_thread_lock=True,
        server_name="127.0.0.1",
        server_port=free_port(),
        quiet=True,
        **(app_launch_options() | launch_options),
    )
    try:
        yield demo, url
    finally:
        demo.close()

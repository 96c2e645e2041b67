"""The real app served under uvicorn on a loopback socket in this process: for the few tests
that must reach into the app (add a failing route, swap a service) or into the server's side
of a connection while talking to it over a real socket."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from lamina.testing import _free_port


@contextmanager
def serving(app: Any, **options: Any) -> Iterator[int]:
    """Serves ``app`` (its lifespan included) until the block ends; yields the port.
    ``options`` are more of ``uvicorn.Config``'s (``http=``: the server's own protocol)."""
    port = _free_port()
    settings: dict[str, Any] = {"log_level": "warning", "lifespan": "on", **options}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **settings))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)

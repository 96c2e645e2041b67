"""The real app served under uvicorn on a loopback socket in this process: for the few tests
that must reach into the app (add a failing route, swap a service) while talking to it over a
real socket."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from lamina.testing import _free_port


@contextmanager
def serving(app: FastAPI) -> Iterator[int]:
    """Serves ``app`` (its lifespan included) until the block ends; yields the port."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
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

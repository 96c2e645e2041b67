"""Websockets get request ids like requests do: the caller's, or a fresh one, echoed on the
handshake's response and seen by the handler (no websocket route exists yet, so this adds one
to the real app, served on a loopback socket in this process)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import WebSocket
from websockets.sync.client import connect

from lamina_server.app import create_app
from lamina_server.config import ServerConfig
from tests.server.in_process import serving


@pytest.fixture
def ws_server(tmp_path: Path) -> Iterator[str]:
    app = create_app(ServerConfig(data_dir=tmp_path, config_path=None, write_config=False))

    @app.websocket("/ws-id")
    async def echo_id(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.state.request_id)
        await websocket.close()

    with serving(app) as port:
        yield f"ws://127.0.0.1:{port}/ws-id"


def test_a_websocket_carries_the_callers_request_id(ws_server: str) -> None:
    with connect(ws_server, additional_headers={"X-Request-Id": "ws-trace-7"}) as ws:
        assert ws.response is not None
        assert ws.response.headers["x-request-id"] == "ws-trace-7"
        assert ws.recv(timeout=10) == "ws-trace-7"


def test_a_websocket_without_an_id_gets_a_fresh_one(ws_server: str) -> None:
    with connect(ws_server) as ws:
        assert ws.response is not None
        issued = ws.response.headers["x-request-id"]
        assert len(issued) == 32 and ws.recv(timeout=10) == issued

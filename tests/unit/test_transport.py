"""The default transports over real loopback sockets: which transport is chosen, and how
connection failures surface (connect-phase failures must stay distinguishable, as the retry
policy resends a POST only when the connection was never made)."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest
import sniffio

import lamina
from lamina._transport import AiohttpTransport, create_async_transport


class _Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def asleep(self, seconds: float) -> None:
        self.seconds.append(seconds)

    def sleep(self, seconds: float) -> None:
        self.seconds.append(seconds)


class _FaultyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    mode: str  # "drop": close without answering; "hang": answer nothing for a second
    requests: int


class _Handler(socketserver.BaseRequestHandler):
    server: _FaultyServer

    def handle(self) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            data += chunk
        self.server.requests += 1
        if self.server.mode == "hang":
            time.sleep(1.0)


@pytest.fixture(params=["drop", "hang"])
def faulty_server(request: pytest.FixtureRequest) -> Iterator[_FaultyServer]:
    """A loopback server that reads each request, then drops the connection or never answers."""
    server = _FaultyServer(("127.0.0.1", 0), _Handler)
    server.mode = request.param
    server.requests = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.anyio
async def test_asyncio_gets_the_aiohttp_transport_other_loops_httpx() -> None:
    transport = create_async_transport(8)
    assert isinstance(transport, AiohttpTransport)
    await transport.aclose()
    token = sniffio.current_async_library_cvar.set("trio")
    try:
        fallback = create_async_transport(8)
    finally:
        sniffio.current_async_library_cvar.reset(token)
    assert isinstance(fallback, httpx.AsyncHTTPTransport)
    await fallback.aclose()


@pytest.mark.anyio
async def test_refused_connection_is_a_connect_error_and_retried_even_for_post() -> None:
    sleeps = _Sleeps()
    async with lamina.AsyncClient(api_key="k", endpoint_url=_closed_port()) as client:
        client._sleep = sleeps.asleep
        with pytest.raises(lamina.TransportError) as caught:
            await client.post("/organizations", json={})
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(sleeps.seconds) == 2  # retried max_retries times


def test_refused_connection_blocking() -> None:
    sleeps = _Sleeps()
    with lamina.Client(api_key="k", endpoint_url=_closed_port()) as client:
        client._sleep = sleeps.sleep
        with pytest.raises(lamina.TransportError) as caught:
            client.post("/organizations", json={})
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(sleeps.seconds) == 2


@pytest.mark.anyio
async def test_failure_after_sending_is_retried_for_get_but_not_for_post(
    faulty_server: _FaultyServer,
) -> None:
    endpoint = f"http://127.0.0.1:{faulty_server.server_address[1]}"
    expected = httpx.ReadTimeout if faulty_server.mode == "hang" else httpx.RemoteProtocolError
    sleeps = _Sleeps()
    async with lamina.AsyncClient(
        api_key="k", endpoint_url=endpoint, timeout=0.3, max_retries=1
    ) as client:
        client._sleep = sleeps.asleep
        with pytest.raises(lamina.TransportError) as caught:
            await client.post("/organizations", json={})
        assert isinstance(caught.value.__cause__, expected)
        with anyio.fail_after(10):
            while faulty_server.requests < 1:
                await anyio.sleep(0.01)
        assert sleeps.seconds == []

        with pytest.raises(lamina.TransportError) as caught:
            await client.get("/organizations")
        assert isinstance(caught.value.__cause__, expected)
        assert len(sleeps.seconds) == 1

"""The default transports over real loopback sockets: which transport is chosen, how
connection failures surface (connect-phase failures must stay distinguishable, as the retry
policy resends a POST only when the connection was never made), and how bodies are read and
streamed."""

from __future__ import annotations

import gzip
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import httpx
import pytest
import sniffio

import lamina
from lamina import _transport
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


_PAYLOAD = {"message": "héllo", "items": list(range(50))}
_BIG = bytes(range(256)) * 8192  # 2 MiB: streamed, not read at once


class _BodyHandler(BaseHTTPRequestHandler):
    """``/plain`` and ``/gzip``: the same JSON, the second gzip-encoded; ``/big``: 2 MiB."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps(_PAYLOAD).encode()
        headers = {"Content-Type": "application/json"}
        if self.path == "/api/v1/gzip":
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        elif self.path == "/api/v1/big":
            body, headers = _BIG, {"Content-Type": "application/octet-stream"}
        self.send_response(200)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        """Answers with the Content-Type the request came with (``null`` for none)."""
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps(self.headers.get("Content-Type")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def body_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BodyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.anyio
async def test_a_body_goes_with_the_content_type_it_was_given_or_none(body_server: str) -> None:
    async with lamina.AsyncClient(api_key="k", endpoint_url=body_server) as client:
        assert await client.request_json("PUT", "/put", content=b"raw") is None
        typed = {"Content-Type": "text/plain"}
        assert await client.request_json("PUT", "/put", content=b"x", headers=typed) == "text/plain"
        assert await client.request_json("PUT", "/put", json={"a": 1}) == "application/json"


def test_headers_reach_aiohttp_as_text_as_httpx_decodes_them() -> None:
    ascii_only = httpx.Headers({"X-Trace": "abc", "authorization": "Bearer k"})
    assert _transport._header_items(ascii_only) == [
        ("X-Trace", "abc"),
        ("authorization", "Bearer k"),
    ]
    utf8 = httpx.Headers([(b"X-Name", "ünï".encode())])
    assert _transport._header_items(utf8) == utf8.multi_items() == [("x-name", "ünï")]


@pytest.mark.anyio
async def test_bodies_read_at_once_are_decoded_as_httpx_decodes_them(body_server: str) -> None:
    async with lamina.AsyncClient(api_key="k", endpoint_url=body_server) as client:
        plain = await client.get("/plain")
        encoded = await client.get("/gzip")
        assert await client.request_json("GET", "/gzip") == _PAYLOAD
        assert (await client.request_headers("GET", "/gzip"))["content-encoding"] == "gzip"
    assert encoded.headers["content-encoding"] == "gzip"
    assert plain.json() == encoded.json() == _PAYLOAD
    assert plain.content == encoded.content == json.dumps(_PAYLOAD).encode()
    for response in (plain, encoded):
        assert response.is_stream_consumed and response.is_closed
        assert response.num_bytes_downloaded == int(response.headers["content-length"])
        assert [chunk async for chunk in response.aiter_bytes()] == [response.content]


@pytest.mark.anyio
async def test_the_own_pool_answers_without_httpx_objects(
    body_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On asyncio, a call whose body is in memory builds no httpx.Request or httpx.Response
    unless one is asked for (``request()``); the answers are the same."""
    built: list[str] = []
    request_init, response_init = httpx.Request.__init__, httpx.Response.__init__

    def count(init: Any, name: str) -> Any:
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> None:
            built.append(name)
            init(self, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(httpx.Request, "__init__", count(request_init, "request"))
    monkeypatch.setattr(httpx.Response, "__init__", count(response_init, "response"))
    async with lamina.AsyncClient(api_key="k", endpoint_url=body_server) as client:
        assert await client.request_json("GET", "/plain") == _PAYLOAD
        assert await client.request_json("PUT", "/put", json={"a": 1}) == "application/json"
        headers = await client.request_headers("GET", "/plain")
        assert headers["content-type"] == "application/json"
        assert built == []
        assert (await client.get("/plain")).json() == _PAYLOAD
        assert built == ["request", "response"]


async def _chunks() -> Any:
    yield b"streamed"


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b"])
async def test_a_header_with_a_line_break_is_refused_on_every_path(
    body_server: str, value: str
) -> None:
    """The exchange pool, aiohttp's streamed path and the blocking client's httpx pool all
    refuse it the same way, before sending (aiohttp raised a bare ValueError)."""
    evil = {"X-Evil": value}
    async with lamina.AsyncClient(api_key="k", endpoint_url=body_server) as client:
        with pytest.raises(lamina.InvalidArgumentError, match="X-Evil"):
            await client.get("/plain", headers=evil)
        with pytest.raises(lamina.InvalidArgumentError, match="X-Evil"):
            await client.put("/put", content=_chunks(), headers=evil)
        assert await client.request_json("GET", "/plain") == _PAYLOAD
    with (
        lamina.Client(api_key="k", endpoint_url=body_server) as blocking,
        pytest.raises(lamina.InvalidArgumentError, match="X-Evil"),
    ):
        blocking.get("/plain", headers=evil)


def test_default_headers_or_an_api_key_with_a_line_break_are_refused_up_front() -> None:
    with pytest.raises(lamina.InvalidArgumentError, match="default_headers"):
        lamina.AsyncClient(api_key="k", default_headers={"X-Team": "a\r\nX-Injected: 1"})
    with pytest.raises(lamina.ConfigurationError, match="line break"):
        lamina.Client(api_key="k\nX-Injected: 1")

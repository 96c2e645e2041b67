"""The asyncio client's own HTTP/1.1 exchanges (:mod:`lamina._exchange`), through
``AsyncClient`` over real loopback sockets: each test's server is a raw TCP server that
reads requests and writes exactly the bytes the test scripts, so that framing, keep-alive,
stale connections, protocol errors, timeouts, header injection, the pool's bounds and
cancellation can be observed from the server's side (connections accepted, open at once,
bytes received, how each connection ended)."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import lamina
from lamina import _transport


@dataclass
class _Request:
    """One request as the server read it: its head (request line and headers, without the
    blank line) and body, on which connection (0, 1, ... in order of acceptance) and which
    request on that connection (0, 1, ...)."""

    head: bytes
    body: bytes
    connection: int
    number: int

    @property
    def line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def method(self) -> str:
        return self.line.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.line.split(" ")[1]

    def headers(self) -> list[tuple[str, str]]:
        pairs = []
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            pairs.append((name, value.strip()))
        return pairs

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers() if key.lower() == name.lower()]


#: Writes the answer to a request on the socket; False closes the connection afterwards.
Respond = Callable[[socket.socket, _Request], bool]


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, respond: Respond) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.respond = respond
        self.lock = threading.Lock()
        self.requests: list[_Request] = []
        self.accepted = 0
        self.open = 0
        self.most_open = 0
        self.in_flight = 0
        self.received = 0
        #: how each connection ended: "eof" (the client closed it), "reset", or "server"
        self.ends: list[str] = []
        #: seconds a connection the client closed still counts as open (a server's moment to
        #: notice the end), so that a close and an open at once are seen as overlapping
        self.linger = 0.0
        self.endpoint = f"http://127.0.0.1:{self.server_address[1]}"
        self.netloc = f"127.0.0.1:{self.server_address[1]}"


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        server = self.server
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with server.lock:
            index = server.accepted
            server.accepted += 1
            server.open += 1
            server.most_open = max(server.most_open, server.open)
        buffer = b""
        number = 0
        how = "server"
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        how = "eof"
                        return
                    with server.lock:
                        server.received += len(chunk)
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                request = _Request(head, b"", index, number)
                length = int((request.values("content-length") or ["0"])[0])
                while len(buffer) < length:
                    chunk = sock.recv(65536)
                    if not chunk:
                        how = "eof"
                        return
                    with server.lock:
                        server.received += len(chunk)
                    buffer += chunk
                request.body, buffer = buffer[:length], buffer[length:]
                with server.lock:
                    server.requests.append(request)
                    server.in_flight += 1
                try:
                    keep = server.respond(sock, request)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                if not keep:
                    return
                number += 1
        except OSError:
            how = "reset"
        finally:
            if how != "server":
                time.sleep(server.linger)
            with server.lock:
                server.open -= 1
                server.ends.append(how)


@pytest.fixture
def serve() -> Iterator[Callable[[Respond], _Server]]:
    """Starts scripted loopback servers, stopped after the test."""
    servers: list[_Server] = []

    def start(respond: Respond) -> _Server:
        server = _Server(respond)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _client(server: _Server, **options: Any) -> lamina.AsyncClient:
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", 5.0)
    return lamina.AsyncClient(api_key="k", endpoint_url=server.endpoint, **options)


def _ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in (*headers, f"Content-Length: {len(body)}"))
    return f"HTTP/1.1 200 OK\r\n{head}\r\n".encode() + body


def _replying(answer: bytes, *, keep_open: bool = True) -> Respond:
    """A server's answer to every request: ``answer``, then the connection kept or closed."""

    def respond(sock: socket.socket, request: _Request) -> bool:
        sock.sendall(answer)
        return keep_open

    return respond


def _bytewise(sock: socket.socket, data: bytes) -> None:
    for index in range(len(data)):
        sock.sendall(data[index : index + 1])
        time.sleep(0.0005)


def _send(sock: socket.socket, data: bytes, mode: str) -> None:
    if mode == "bytewise":
        _bytewise(sock, data)
    else:
        sock.sendall(data)


async def _until(predicate: Callable[[], bool], seconds: float = 3.0) -> None:
    with anyio.fail_after(seconds):
        while not predicate():
            await anyio.sleep(0.01)


def _cause(caught: pytest.ExceptionInfo[lamina.TransportError]) -> BaseException | None:
    return caught.value.__cause__


# -- framing -------------------------------------------------------------------------------

_FRAMED = {
    "content-length": (b"HTTP/1.1 200 OK\r\nX-Case: a\r\nContent-Length: 11\r\n\r\nhello world"),
    "empty-content-length": b"HTTP/1.1 200 OK\r\nX-Case: a\r\nContent-Length: 0\r\n\r\n",
    "chunked-extensions-trailers": (
        b"HTTP/1.1 200 OK\r\nX-Case: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n"
        b"1\r\n \r\n"
        b'A;name="quoted;value"\r\nworld, 10!\r\n'
        b"0\r\nX-Trailer: yes\r\nX-Other: 2\r\n\r\n"
    ),
    "chunked-no-trailers": (
        b"HTTP/1.1 200 OK\r\nX-Case: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"00b\r\nhello world\r\n0\r\n\r\n"
    ),
    "interim-100-and-103": (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nX-Case: a\r\nContent-Length: 11\r\n\r\nhello world"
    ),
}
_FRAMED_BODIES = {
    "content-length": b"hello world",
    "empty-content-length": b"",
    "chunked-extensions-trailers": b"hello world, 10!",
    "chunked-no-trailers": b"hello world",
    "interim-100-and-103": b"hello world",
}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["whole", "bytewise"])
@pytest.mark.parametrize("case", sorted(_FRAMED))
async def test_framed_answer_is_read_whole_and_its_connection_serves_the_next(
    serve: Callable[[Respond], _Server], case: str, mode: str
) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        if request.number == 0:
            _send(sock, _FRAMED[case], mode)
        else:
            sock.sendall(_ok(b"next"))
        return True

    server = serve(respond)
    async with _client(server) as client:
        first = await client.get("/x")
        second = await client.get("/x")
    assert first.status_code == 200
    assert first.content == _FRAMED_BODIES[case]
    assert first.headers["x-case"] == "a"
    assert "link" not in first.headers  # the 103's headers are not the answer's
    assert second.content == b"next"
    assert server.accepted == 1
    assert [request.connection for request in server.requests] == [0, 0]


_UNTIL_CLOSE = {
    "no-length": b"HTTP/1.1 200 OK\r\nX-Case: a\r\n\r\nuntil the end",
    "http-1.0-no-length": b"HTTP/1.0 200 OK\r\nX-Case: a\r\n\r\nuntil the end",
    "non-chunked-transfer-encoding": (
        b"HTTP/1.1 200 OK\r\nX-Case: a\r\nTransfer-Encoding: identity\r\n\r\nuntil the end"
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["whole", "bytewise"])
@pytest.mark.parametrize("case", sorted(_UNTIL_CLOSE))
async def test_body_ended_by_the_close_is_whole_and_its_connection_not_reused(
    serve: Callable[[Respond], _Server], case: str, mode: str
) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        if request.path.endswith("/close"):
            _send(sock, _UNTIL_CLOSE[case], mode)
            return False
        sock.sendall(_ok(b"next"))
        return True

    server = serve(respond)
    async with _client(server) as client:
        first = await client.get("/close")
        second = await client.get("/next")
    assert first.content == b"until the end"
    assert first.headers["x-case"] == "a"
    assert second.content == b"next"
    assert server.accepted == 2
    assert [(r.connection, r.path) for r in server.requests] == [
        (0, "/api/v1/close"),
        (1, "/api/v1/next"),
    ]


@pytest.mark.anyio
async def test_head_answer_has_no_body_and_the_connection_serves_the_next(
    serve: Callable[[Respond], _Server],
) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        if request.method == "HEAD":
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-Head: 1\r\n\r\n")
        else:
            sock.sendall(_ok(b"after the head"))
        return True

    server = serve(respond)
    async with _client(server) as client:
        headers = await client.request_headers("HEAD", "/x")
        response = await client.request("HEAD", "/x")
        after = await client.get("/x")
    assert headers["content-length"] == "1000"
    assert headers["x-head"] == "1"
    assert response.status_code == 200
    assert response.content == b""
    assert after.content == b"after the head"
    assert server.accepted == 1
    assert [r.method for r in server.requests] == ["HEAD", "HEAD", "GET"]


@pytest.mark.anyio
async def test_204_and_304_have_no_body_and_the_connection_serves_the_next(
    serve: Callable[[Respond], _Server],
) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        if request.path.endswith("/204"):
            sock.sendall(b"HTTP/1.1 204 No Content\r\nX-Case: 204\r\n\r\n")
        elif request.path.endswith("/304"):
            sock.sendall(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: e\r\n\r\n")
        else:
            sock.sendall(_ok(b"next"))
        return True

    server = serve(respond)
    async with _client(server) as client:
        deleted = await client.delete("/204")
        second = await client.get("/next")
        with pytest.raises(lamina.APIError) as caught:
            await client.get("/304")
        third = await client.get("/next")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert deleted.headers["x-case"] == "204"
    assert caught.value.status_code == 304
    assert second.content == third.content == b"next"
    assert server.accepted == 1
    assert len(server.requests) == 4


# -- keep-alive ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sequential_requests_share_one_connection(
    serve: Callable[[Respond], _Server],
) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        sock.sendall(_ok(f"{request.connection}-{request.number}".encode()))
        return True

    server = serve(respond)
    async with _client(server) as client:
        bodies = [(await client.get("/x")).content for _ in range(3)]
        bodies.append((await client.post("/x", json={"a": 1})).content)
    assert bodies == [b"0-0", b"0-1", b"0-2", b"0-3"]
    assert server.accepted == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status_line", "header", "connections"),
    [
        ("HTTP/1.1 200 OK", "Connection: close", 2),
        ("HTTP/1.1 200 OK", "Connection: Keep-Alive, Close", 2),
        ("HTTP/1.0 200 OK", "X-None: 1", 2),
        ("HTTP/1.0 200 OK", "Connection: keep-alive", 1),
        ("HTTP/1.1 200 OK", "Connection: keep-alive", 1),
    ],
)
async def test_connection_reused_only_when_the_answer_keeps_it_alive(
    serve: Callable[[Respond], _Server], status_line: str, header: str, connections: int
) -> None:
    """The server leaves every connection open: only the client's reading of the answer
    decides whether it is used again."""

    def respond(sock: socket.socket, request: _Request) -> bool:
        body = f"{request.connection}-{request.number}".encode()
        head = f"{status_line}\r\n{header}\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)
        return True

    server = serve(respond)
    async with _client(server) as client:
        first = await client.get("/x")
        second = await client.get("/x")
        if connections == 2:  # each connection given up after its answer: closed by the client
            await _until(lambda: len(server.ends) == 2)
            assert server.ends == ["eof", "eof"]
        else:
            await anyio.sleep(0.05)
            assert server.ends == []
    assert first.content == b"0-0"
    assert second.content == (b"1-0" if connections == 2 else b"0-1")
    assert server.accepted == connections


@pytest.mark.anyio
async def test_idle_connection_past_keepalive_expiry_is_not_reused(
    serve: Callable[[Respond], _Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transport, "KEEPALIVE_EXPIRY", 0.2)

    def respond(sock: socket.socket, request: _Request) -> bool:
        sock.sendall(_ok(f"{request.connection}-{request.number}".encode()))
        return True

    server = serve(respond)
    async with _client(server) as client:
        first = await client.get("/x")
        soon = await client.get("/x")
        await anyio.sleep(0.3)
        late = await client.get("/x")
        await _until(lambda: server.ends == ["eof"])
    assert [first.content, soon.content, late.content] == [b"0-0", b"0-1", b"1-0"]


# -- stale connections ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_connection_the_server_closed_while_idle_is_not_used(
    serve: Callable[[Respond], _Server],
) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        sock.sendall(_ok(f"{request.connection}-{request.number}".encode()))
        time.sleep(0.05)
        return False  # a keep-alive answer, then the server closes the connection

    server = serve(respond)
    async with _client(server) as client:
        first = await client.get("/x")
        await _until(lambda: server.ends == ["server"])
        await anyio.sleep(0.05)
        second = await client.post("/x", json={})  # not idempotent: must not hit the stale one
    assert first.content == b"0-0"
    assert second.content == b"1-0"
    assert server.accepted == 2
    assert len(server.requests) == 2


def _drop_second_on_first_connection(sock: socket.socket, request: _Request) -> bool:
    """Answers, but reads the second request on the first connection and closes unanswered."""
    if request.connection == 0 and request.number == 1:
        return False
    sock.sendall(_ok(f"{request.connection}-{request.number}".encode()))
    return True


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
async def test_idempotent_request_resent_once_when_a_reused_connection_closes_unanswered(
    serve: Callable[[Respond], _Server], method: str
) -> None:
    server = serve(_drop_second_on_first_connection)
    async with _client(server) as client:
        first = await client.get("/x")
        headers = await client.request_headers(method, "/x")
    assert first.content == b"0-0"
    assert headers["content-length"] == "3"
    assert [(r.connection, r.number, r.method) for r in server.requests] == [
        (0, 0, "GET"),
        (0, 1, method),
        (1, 0, method),
    ]


@pytest.mark.anyio
async def test_get_is_resent_only_once(serve: Callable[[Respond], _Server]) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        if request.connection == 0 and request.number == 0:
            sock.sendall(_ok(b"first"))
            return True
        return False  # every later request: closed unanswered

    server = serve(respond)
    async with _client(server) as client:
        assert (await client.get("/x")).content == b"first"
        with pytest.raises(lamina.TransportError) as caught:
            await client.get("/x")
    assert isinstance(_cause(caught), httpx.RemoteProtocolError)
    assert [(r.connection, r.number) for r in server.requests] == [(0, 0), (0, 1), (1, 0)]


@pytest.mark.anyio
async def test_get_is_resent_on_a_new_connection_not_on_another_idle_one(
    serve: Callable[[Respond], _Server],
) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        if request.number == 0:
            time.sleep(0.1)  # both first requests at once: two connections, then both idle
            sock.sendall(_ok(f"{request.connection}-{request.number}".encode()))
            return True
        return False  # the second request on either connection: closed unanswered

    server = serve(respond)
    async with _client(server) as client:
        await asyncio.gather(client.get("/x"), client.get("/x"))
        assert server.accepted == 2
        response = await client.get("/x")
    assert response.content == b"2-0"
    assert len(server.requests) == 4  # two answered, one closed unanswered, one resent
    assert server.accepted == 3


@pytest.mark.anyio
async def test_post_not_resent_when_a_reused_connection_closes_unanswered(
    serve: Callable[[Respond], _Server],
) -> None:
    server = serve(_drop_second_on_first_connection)
    async with _client(server) as client:
        first = await client.post("/x", json={"n": 1})
        with pytest.raises(lamina.TransportError) as caught:
            await client.post("/x", json={"n": 2})
        assert server.accepted == 1
        after = await client.get("/x")  # the pool still works, on a new connection
    assert isinstance(_cause(caught), httpx.RemoteProtocolError)
    assert first.content == b"0-0"
    assert after.content == b"1-0"
    assert [(r.connection, r.method, r.body) for r in server.requests] == [
        (0, "POST", b'{"n":1}'),
        (0, "POST", b'{"n":2}'),
        (1, "GET", b""),
    ]


@pytest.mark.anyio
async def test_get_on_a_new_connection_closed_unanswered_is_not_resent(
    serve: Callable[[Respond], _Server],
) -> None:
    server = serve(lambda sock, request: False)
    async with _client(server) as client:
        with pytest.raises(lamina.TransportError) as caught:
            await client.get("/x")
    assert isinstance(_cause(caught), httpx.RemoteProtocolError)
    assert len(server.requests) == 1
    assert server.accepted == 1


@pytest.mark.anyio
async def test_bytes_past_the_answer_make_its_connection_unusable(
    serve: Callable[[Respond], _Server],
) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        answer = _ok(f"{request.connection}-{request.number}".encode())
        if request.connection == 0:
            sock.sendall(answer + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
        else:
            sock.sendall(answer)
        return True

    server = serve(respond)
    async with _client(server) as client:
        first = await client.get("/x")
        second = await client.get("/x")
    assert first.content == b"0-0"
    assert second.content == b"1-0"


@pytest.mark.anyio
async def test_bytes_on_an_idle_connection_make_it_unusable(
    serve: Callable[[Respond], _Server],
) -> None:
    sent = threading.Event()

    def respond(sock: socket.socket, request: _Request) -> bool:
        sock.sendall(_ok(f"{request.connection}-{request.number}".encode()))
        if request.connection == 0:
            time.sleep(0.05)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
            sent.set()
        return True

    server = serve(respond)
    async with _client(server) as client:
        first = await client.get("/x")
        await _until(sent.is_set)
        await anyio.sleep(0.05)
        second = await client.get("/x")
    assert first.content == b"0-0"
    assert second.content == b"1-0"


# -- errors --------------------------------------------------------------------------------

_MALFORMED = {
    "status-without-code": (b"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nok", True),
    "status-code-not-digits": (b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok", True),
    "not-http-1": (b"ICY 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
    "http-2-status": (b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
    "status-code-too-long": (b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", True),
    "header-without-colon": (
        b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 2\r\n\r\nok",
        True,
    ),
    "folded-header": (
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 2\r\n\r\nok",
        True,
    ),
    "space-before-colon": (b"HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 2\r\n\r\nok", True),
    "conflicting-content-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
        True,
    ),
    "negative-content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nok", True),
    "text-content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok", True),
    "bad-chunk-size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
        True,
    ),
    "prefixed-chunk-size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n",
        True,
    ),
    "underscored-chunk-size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0_2\r\nok\r\n0\r\n\r\n",
        True,
    ),
    "chunk-longer-than-its-size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokay\r\n0\r\n\r\n",
        True,
    ),
    "closed-mid-head": (b"HTTP/1.1 200 OK\r\nContent-Le", False),
    "closed-after-100-continue": (b"HTTP/1.1 100 Continue\r\n\r\n", False),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(_MALFORMED))
async def test_malformed_answer_is_a_remote_protocol_error(
    serve: Callable[[Respond], _Server], case: str
) -> None:
    answer, keep_open = _MALFORMED[case]

    server = serve(_replying(answer, keep_open=keep_open))
    async with _client(server, timeout=2.0) as client:
        started = time.monotonic()
        with pytest.raises(lamina.TransportError) as caught:
            await client.get("/x")
    assert isinstance(_cause(caught), httpx.RemoteProtocolError)
    assert time.monotonic() - started < 1.5  # found in the bytes, not by a timeout
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_identical_duplicate_content_lengths_are_accepted(
    serve: Callable[[Respond], _Server],
) -> None:
    server = serve(
        _replying(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok")
    )
    async with _client(server) as client:
        assert (await client.get("/x")).content == b"ok"


@pytest.mark.anyio
async def test_header_block_past_its_limit_is_a_remote_protocol_error(
    serve: Callable[[Respond], _Server],
) -> None:
    server = serve(_replying(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 300_000))
    async with _client(server, timeout=2.0) as client:
        started = time.monotonic()
        with pytest.raises(lamina.TransportError) as caught:
            await client.get("/x")
    assert isinstance(_cause(caught), httpx.RemoteProtocolError)
    assert time.monotonic() - started < 1.5


@pytest.mark.anyio
@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhalf of",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    ],
    ids=["content-length", "mid-chunk", "between-chunks"],
)
async def test_close_mid_body_is_a_read_error(
    serve: Callable[[Respond], _Server], answer: bytes
) -> None:
    server = serve(_replying(answer, keep_open=False))
    async with _client(server) as client:
        with pytest.raises(lamina.TransportError) as caught:
            await client.get("/x")
    assert isinstance(_cause(caught), httpx.ReadError)
    assert len(server.requests) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "sent", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"], ids=["nothing", "mid-body"]
)
async def test_silence_longer_than_the_read_timeout_is_a_read_timeout(
    serve: Callable[[Respond], _Server], sent: bytes
) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        sock.sendall(sent)
        time.sleep(1.0)
        return False

    server = serve(respond)
    async with _client(server, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(lamina.TransportError) as caught:
            await client.get("/x")
        elapsed = time.monotonic() - started
    assert isinstance(_cause(caught), httpx.ReadTimeout)
    assert 0.25 < elapsed < 0.9


@pytest.mark.anyio
async def test_read_timeout_is_between_reads_not_for_the_whole_answer(
    serve: Callable[[Respond], _Server],
) -> None:
    pieces = [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 6\r\n", b"\r\n", *b"dribbl"]

    def respond(sock: socket.socket, request: _Request) -> bool:
        for piece in pieces:
            time.sleep(0.1)
            sock.sendall(piece if isinstance(piece, bytes) else bytes([piece]))
        return True

    server = serve(respond)
    async with _client(server, timeout=0.3) as client:
        started = time.monotonic()
        response = await client.get("/x")
        elapsed = time.monotonic() - started
    assert response.content == b"dribbl"
    assert elapsed > 0.6  # twice the read timeout, in all


# -- header injection ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nX-Injected: 1"},
        {"X-Evil": "a\nX-Injected: 1"},
        {"X-Evil": "a\rX-Injected: 1"},
        {"X-Evil": "a\0b"},
        {"X-Evil\r\nX-Injected": "1"},
    ],
    ids=["crlf", "lf", "cr", "nul", "crlf-in-name"],
)
async def test_header_with_a_line_break_or_nul_is_refused_and_nothing_is_sent(
    serve: Callable[[Respond], _Server], headers: dict[str, str]
) -> None:
    server = serve(_replying(_ok(b"fine")))
    async with _client(server) as client:
        with pytest.raises(lamina.InvalidArgumentError):
            await client.get("/x", headers=headers)
        with pytest.raises(lamina.InvalidArgumentError):
            await client.post("/x", headers=headers, content=b"body")
        await anyio.sleep(0.05)
        assert server.received == 0
        assert server.requests == []
        assert (await client.get("/x", headers={"X-Fine": "1"})).content == b"fine"
    assert [r.values("x-fine") for r in server.requests] == [["1"]]
    assert all(not r.values("x-injected") for r in server.requests)


# -- the bytes sent ------------------------------------------------------------------------


def _echo(sock: socket.socket, request: _Request) -> bool:
    sock.sendall(_ok(b"seen"))
    return True


@pytest.mark.anyio
async def test_get_sends_its_request_line_one_host_and_the_api_key(
    serve: Callable[[Respond], _Server],
) -> None:
    server = serve(_echo)
    async with _client(server) as client:
        await client.get("/x", params={"a": 1})
    (request,) = server.requests
    assert request.line == "GET /api/v1/x?a=1 HTTP/1.1"
    assert request.values("host") == [server.netloc]
    assert request.values("authorization") == ["Bearer k"]
    assert request.values("content-length") == []
    assert request.values("transfer-encoding") == []
    assert request.body == b""


@pytest.mark.anyio
async def test_a_host_given_by_the_caller_is_the_only_one(
    serve: Callable[[Respond], _Server],
) -> None:
    server = serve(_echo)
    async with _client(server) as client:
        await client.get("/x", headers={"host": "example.test"})
    (request,) = server.requests
    assert request.values("host") == ["example.test"]


@pytest.mark.anyio
async def test_redirect_to_another_origin_gets_its_own_host_and_no_api_key(
    serve: Callable[[Respond], _Server],
) -> None:
    other = serve(_echo)

    def redirect(sock: socket.socket, request: _Request) -> bool:
        location = f"{other.endpoint}/elsewhere?sig=1"
        sock.sendall(
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )
        return True

    server = serve(redirect)
    async with _client(server) as client:
        response = await client.get("/x", follow_redirects=True)
    assert response.content == b"seen"
    (request,) = other.requests
    assert request.line == "GET /elsewhere?sig=1 HTTP/1.1"
    assert request.values("host") == [other.netloc]
    assert request.values("authorization") == []
    assert server.requests[0].values("host") == [server.netloc]


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_body_method_without_a_body_sends_content_length_zero(
    serve: Callable[[Respond], _Server], method: str
) -> None:
    server = serve(_echo)
    async with _client(server) as client:
        await client.request(method, "/x")
        await client.request(method, "/x", content=b"")
        await client.get("/x")  # the connection still frames requests right
    assert [r.method for r in server.requests] == [method, method, "GET"]
    for request in server.requests[:2]:
        assert request.values("content-length") == ["0"]
        assert request.body == b""
    assert server.accepted == 1


@pytest.mark.anyio
@pytest.mark.parametrize("size", [7, 65536, 65537, 300_000])
async def test_put_sends_the_exact_length_and_body(
    serve: Callable[[Respond], _Server], size: int
) -> None:
    body = bytes(index * 7 % 256 for index in range(size))
    server = serve(_echo)
    async with _client(server) as client:
        await client.put("/x", content=body)
        await client.get("/x")
    put, get = server.requests
    assert put.line == "PUT /api/v1/x HTTP/1.1"
    assert put.values("content-length") == [str(size)]
    assert put.body == body
    assert get.line == "GET /api/v1/x HTTP/1.1"  # nothing sent past the body
    assert server.accepted == 1


@pytest.mark.anyio
async def test_delete_without_a_body_sends_no_length(
    serve: Callable[[Respond], _Server],
) -> None:
    server = serve(_echo)
    async with _client(server) as client:
        await client.delete("/x")
    (request,) = server.requests
    assert request.line == "DELETE /api/v1/x HTTP/1.1"
    assert request.values("content-length") == []


# -- the pool ------------------------------------------------------------------------------


class _Slow:
    """Answers each request with its path, after ``seconds`` on paths containing ``only``,
    counting the requests it holds at once: while they wait, before their answers are sent
    (so that an answer the client has read never still counts)."""

    def __init__(self, seconds: float, only: str = "") -> None:
        self.seconds = seconds
        self.only = only
        self.lock = threading.Lock()
        self.held = 0
        self.most_held = 0

    def __call__(self, sock: socket.socket, request: _Request) -> bool:
        if self.only in request.path:
            with self.lock:
                self.held += 1
                self.most_held = max(self.most_held, self.held)
            time.sleep(self.seconds)
            with self.lock:
                self.held -= 1
        sock.sendall(_ok(request.path.encode()))
        return True


@pytest.mark.anyio
async def test_concurrent_requests_stay_within_max_concurrency(
    serve: Callable[[Respond], _Server],
) -> None:
    """At most two connections open at the server's end at any moment (counted from its
    accepting one until a moment after it reads the connection's end), and two requests at
    once. The server keeps every connection alive: a pool that closes none opens two."""
    slow = _Slow(0.05)
    server = serve(slow)
    server.linger = 0.05
    async with _client(server, max_concurrency=2) as client:
        responses = await asyncio.gather(*(client.get(f"/n{index}") for index in range(20)))
    assert [r.content for r in responses] == [f"/api/v1/n{index}".encode() for index in range(20)]
    assert slow.most_held == 2
    assert server.most_open <= 2


@pytest.mark.anyio
async def test_queued_requests_reuse_the_pools_connections(
    serve: Callable[[Respond], _Server],
) -> None:
    """Requests that waited for room take the keep-alive connections the finished ones left,
    rather than closing them to open new ones."""
    server = serve(_Slow(0.05))
    async with _client(server, max_concurrency=2) as client:
        responses = await asyncio.gather(*(client.get(f"/n{index}") for index in range(10)))
    assert len(responses) == 10
    assert server.accepted == 2


@pytest.mark.anyio
async def test_waiting_for_a_connection_past_the_pool_timeout_is_a_pool_timeout(
    serve: Callable[[Respond], _Server],
) -> None:
    server = serve(_Slow(1.0, only="/busy"))
    async with _client(server, max_concurrency=2) as client:
        busy = [asyncio.ensure_future(client.get(f"/busy{index}")) for index in range(2)]
        await _until(lambda: server.in_flight == 2)
        started = time.monotonic()
        with pytest.raises(lamina.TransportError) as caught:
            await client.get("/waits", timeout=httpx.Timeout(5.0, pool=0.2))
        elapsed = time.monotonic() - started
        done = await asyncio.gather(*busy)
        after = await client.get("/after", timeout=httpx.Timeout(5.0, pool=0.2))
    assert isinstance(_cause(caught), httpx.PoolTimeout)
    assert 0.15 < elapsed < 0.7
    assert [r.content for r in done] == [b"/api/v1/busy0", b"/api/v1/busy1"]
    assert after.content == b"/api/v1/after"
    assert "/api/v1/waits" not in [r.path for r in server.requests]
    assert server.accepted == 2


#: What the server has sent of the answer to ``/cancelled`` when the request is cancelled
#: (after 0.1 s); the rest follows 1 s later, on the same connection.
_CANCELLED_AT = {
    "before-any-byte": (b"", _ok(b"late answer")),
    "mid-content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nAAAAA", b"BBBBB"),
    "between-chunks": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nAAAAA\r\n",
        b"5\r\nBBBBB\r\n0\r\n\r\n",
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["cancel-scope", "wait_for"])
@pytest.mark.parametrize("stage", sorted(_CANCELLED_AT))
async def test_request_cancelled_mid_answer_does_not_leave_its_connection_in_the_pool(
    serve: Callable[[Respond], _Server], stage: str, how: str
) -> None:
    sent, rest = _CANCELLED_AT[stage]

    def respond(sock: socket.socket, request: _Request) -> bool:
        if request.path.endswith("/cancelled"):
            sock.sendall(sent)
            time.sleep(1.0)
            sock.sendall(rest)
        else:
            sock.sendall(_ok(request.path.encode()))
        return True

    server = serve(respond)
    async with _client(server) as client:
        if how == "cancel-scope":
            with anyio.move_on_after(0.1) as scope:
                await client.get("/cancelled")
            assert scope.cancelled_caught
        else:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.get("/cancelled"), 0.1)
        after = await client.get("/after")
        again = await client.get("/again")
    assert after.content == b"/api/v1/after"
    assert again.content == b"/api/v1/again"
    assert [(r.connection, r.path) for r in server.requests] == [
        (0, "/api/v1/cancelled"),
        (1, "/api/v1/after"),
        (1, "/api/v1/again"),
    ]


@pytest.mark.anyio
async def test_request_cancelled_while_waiting_for_a_connection_takes_no_room(
    serve: Callable[[Respond], _Server],
) -> None:
    """The cancelled waiter neither takes the one connection's room for good (the later
    requests would wait out their pool timeout) nor adds room (two requests at once)."""
    slow = _Slow(0.1, only="/n")
    server = serve(slow)
    timeout = httpx.Timeout(5.0, pool=1.0)
    async with _client(server, max_concurrency=1, timeout=timeout) as client:
        busy = asyncio.ensure_future(client.get("/n-busy"))
        await _until(lambda: server.in_flight == 1)
        with anyio.move_on_after(0.05) as scope:
            await client.get("/cancelled")
        assert scope.cancelled_caught
        await busy
        responses = await asyncio.gather(*(client.get(f"/n{index}") for index in range(3)))
    assert [r.content for r in responses] == [f"/api/v1/n{index}".encode() for index in range(3)]
    assert slow.most_held == 1
    assert "/api/v1/cancelled" not in [r.path for r in server.requests]


# -- bodies and headers as httpx gives them --------------------------------------------------

_PAYLOAD = {"message": "héllo", "items": list(range(50))}


@pytest.mark.anyio
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_gzip_answer_is_decoded(serve: Callable[[Respond], _Server], framing: str) -> None:
    compressed = gzip.compress(json.dumps(_PAYLOAD).encode())

    def respond(sock: socket.socket, request: _Request) -> bool:
        if framing == "chunked":
            half = len(compressed) // 2
            chunks = b"".join(
                b"%x\r\n%s\r\n" % (len(part), part)
                for part in (compressed[:half], compressed[half:])
            )
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/json"
                b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
            )
        else:
            sock.sendall(
                _ok(compressed, "Content-Encoding: gzip", "Content-Type: application/json")
            )
        return True

    server = serve(respond)
    async with _client(server) as client:
        assert await client.request_json("GET", "/x") == _PAYLOAD
        response = await client.get("/x")
    assert response.json() == _PAYLOAD
    assert response.headers["content-encoding"] == "gzip"
    assert server.accepted == 1


@pytest.mark.anyio
@pytest.mark.parametrize("value", [b"caf\xc3\xa9", b"caf\xe9"], ids=["utf-8", "latin-1"])
async def test_non_ascii_answer_header_reads_as_httpx_reads_it(
    serve: Callable[[Respond], _Server], value: bytes
) -> None:
    server = serve(
        _replying(b"HTTP/1.1 200 OK\r\nX-Name: " + value + b"\r\nContent-Length: 2\r\n\r\nok")
    )
    expected = httpx.Response(200, headers=[(b"X-Name", value)]).headers["x-name"]
    async with _client(server) as client:
        response = await client.get("/x")
    assert response.content == b"ok"
    assert response.headers["x-name"] == expected


@pytest.mark.anyio
async def test_error_answer_with_a_non_ascii_header_is_its_api_error(
    serve: Callable[[Respond], _Server],
) -> None:
    def respond(sock: socket.socket, request: _Request) -> bool:
        body = b'{"message": "no such thing", "code": "not_found"}'
        sock.sendall(
            b"HTTP/1.1 404 Not Found\r\nX-Name: caf\xc3\xa9\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        return True

    server = serve(respond)
    async with _client(server) as client:
        with pytest.raises(lamina.NotFoundError) as caught:
            await client.request_json("GET", "/x")
    assert caught.value.status_code == 404
    assert "no such thing" in str(caught.value)


# -- TLS ---------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key, and the key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lamina-test")])
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _TlsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An https server on loopback with a self-signed certificate: (its URL, the certificate)."""
    cert_path, key_path = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TlsHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert_path
    server.shutdown()
    server.server_close()


@pytest.mark.anyio
async def test_https_answers_over_a_verified_connection(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, cert_path = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))  # the system's trust, here this one
    async with lamina.AsyncClient(api_key="k", endpoint_url=endpoint, max_retries=0) as client:
        assert await client.request_json("GET", "/x?a=1") == {"path": "/api/v1/x?a=1"}
        assert await client.request_json("GET", "/y") == {"path": "/api/v1/y"}


@pytest.mark.anyio
async def test_https_to_a_certificate_nobody_trusts_is_refused(
    tls_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, _ = tls_server
    (tmp_path / "other").mkdir()
    other, _ = _self_signed(tmp_path / "other")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    async with lamina.AsyncClient(api_key="k", endpoint_url=endpoint, max_retries=0) as client:
        with pytest.raises(lamina.TransportError) as caught:
            await client.request_json("GET", "/x")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


# -- closing -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_aclose_closes_idle_connections(serve: Callable[[Respond], _Server]) -> None:
    server = serve(_echo)
    client = _client(server)
    await client.get("/x")
    await client.get("/x")
    await anyio.sleep(0.05)
    assert server.ends == []  # kept alive, idle
    assert server.open == 1
    await client.aclose()
    await _until(lambda: server.open == 0, seconds=2.0)
    assert server.ends in (["eof"], ["reset"])
    with pytest.raises(lamina.LaminaError):
        await client.get("/x")
    assert server.accepted == 1

"""The kernel relay of response bodies (:mod:`lamina_server.splicing`) on real sockets: what
it relays, how it fails, and which answers it declines to relay."""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lamina_server import splicing
from lamina_server.config import ServerConfig
from lamina_server.serving import limited_protocol
from lamina_server.splicing import RelayError, SocketBody
from tests.server.in_process import serving

pytestmark = [
    pytest.mark.skipif(not splicing.AVAILABLE, reason="splice(2) is Linux's"),
    pytest.mark.anyio,
]


def _receive_all(sock: socket.socket, into: bytearray) -> None:
    while chunk := sock.recv(1 << 20):
        into += chunk


@pytest.fixture
def pipes() -> Iterator[tuple[socket.socket, socket.socket, socket.socket, socket.socket]]:
    """(the source's far end, the source, the sink, the client's end)."""
    far, source = socket.socketpair()
    sink, client = socket.socketpair()
    source.setblocking(False)
    sink.setblocking(False)
    yield far, source, sink, client
    for sock in (far, source, sink, client):
        sock.close()


def _body(source: socket.socket, head: bytes, count: int) -> SocketBody:
    assert splicing._slots.acquire(blocking=False)
    return SocketBody(socket.socket(fileno=os.dup(source.fileno())), head, count)


def test_a_relay_writes_the_head_then_exactly_the_rest(pipes: tuple[socket.socket, ...]) -> None:
    far, source, sink, client = pipes
    data = os.urandom(5 * 1024 * 1024 + 17)
    body = _body(source, data[:1000], len(data))
    received = bytearray()
    reader = threading.Thread(target=_receive_all, args=(client, received))
    reader.start()
    writer = threading.Thread(target=far.sendall, args=(data[1000:] + b"next answer",))
    writer.start()
    splicing.relay(body, os.dup(sink.fileno()), threading.Event())
    writer.join()
    sink.shutdown(socket.SHUT_WR)
    reader.join()
    assert bytes(received) == data
    assert source.recv(100) == b"next answer"  # not one byte more was taken
    assert splicing._slots._value == splicing.SLOTS  # type: ignore[attr-defined]


def test_a_source_that_ends_early_fails_the_relay(pipes: tuple[socket.socket, ...]) -> None:
    far, source, sink, client = pipes
    body = _body(source, b"", 4096)
    far.sendall(b"x" * 100)
    far.shutdown(socket.SHUT_WR)
    with pytest.raises(RelayError, match="the source ended early") as failed:
        splicing.relay(body, os.dup(sink.fileno()), threading.Event())
    assert failed.value.source
    assert client.recv(200) == b"x" * 100


def test_a_client_that_goes_away_fails_the_relay(pipes: tuple[socket.socket, ...]) -> None:
    far, source, sink, client = pipes
    body = _body(source, b"", 64 * 1024 * 1024)
    client.close()
    far.sendall(b"y" * 100_000)
    with pytest.raises(RelayError, match="the client went away") as failed:
        splicing.relay(body, os.dup(sink.fileno()), threading.Event())
    assert not failed.value.source


def test_a_stopped_relay_gives_up_waiting(pipes: tuple[socket.socket, ...]) -> None:
    _, source, sink, _ = pipes
    body = _body(source, b"", 100)
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(RelayError, match="stopped"):
        splicing.relay(body, os.dup(sink.fileno()), stopped)  # the source never sends


def _serve_once(answer: bytes) -> tuple[str, list[bytes]]:
    """A loopback server that answers one request with ``answer``; its URL and the requests."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(4096)
                requests.append(request)
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/bucket/key?X-Amz-Signature=s", requests


async def test_a_plain_partial_answer_opens_a_body() -> None:
    url, requests = _serve_once(
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nETag: x\r\n\r\n0123"
    )
    body = await splicing.open_body(url, 5, 15)
    assert body is not None
    try:
        assert (body.head, body.count) == (b"0123", 10)
        assert requests[0].startswith(b"GET /bucket/key?X-Amz-Signature=s HTTP/1.1\r\n")
        assert b"\r\nRange: bytes=5-14\r\n" in requests[0]
    finally:
        body.close()
    assert splicing._slots._value == splicing.SLOTS  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 9\r\n\r\n",  # not the range's length
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 10\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Encoding: gzip\r\n\r\n",
        b"garbage",
    ],
)
async def test_an_answer_that_is_not_a_plain_body_is_declined(answer: bytes) -> None:
    url, _ = _serve_once(answer)
    assert await splicing.open_body(url, 0, 10) is None
    assert splicing._slots._value == splicing.SLOTS  # type: ignore[attr-defined]


async def test_https_and_unreachable_sources_are_declined() -> None:
    assert await splicing.open_body("https://127.0.0.1:1/b/k", 0, 10) is None
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert await splicing.open_body(f"http://127.0.0.1:{port}/b/k", 0, 10) is None
    assert splicing._slots._value == splicing.SLOTS  # type: ignore[attr-defined]


def test_a_near_client_is_relayed_through_a_small_send_buffer() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        served, _ = listener.accept()
        with client, served:
            grown = served.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            splicing._fit_send_buffer(served)
            fitted = served.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    assert fitted == 2 * splicing.NEAR_SEND_BUFFER  # Linux doubles what it is given
    assert fitted != grown


class _Connection:
    """A TCP connection's options as the kernel reports them: its shortest and its smoothed
    round trip (microseconds); ``min_rtt=None`` as a kernel older than 4.9 reports them."""

    def __init__(self, *, min_rtt: int | None, rtt: int) -> None:
        self.min_rtt = min_rtt
        self.rtt = rtt
        self.set: list[tuple[int, int, int]] = []

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        assert (level, option) == (socket.IPPROTO_TCP, socket.TCP_INFO)
        info = bytearray(size if self.min_rtt is not None else 104)
        info[splicing._TCP_INFO_RTT] = self.rtt.to_bytes(4, sys.byteorder)
        if self.min_rtt is not None:
            info[splicing._TCP_INFO_MIN_RTT] = self.min_rtt.to_bytes(4, sys.byteorder)
        return bytes(info)

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.set.append((level, option, value))


FITTED = [(socket.SOL_SOCKET, socket.SO_SNDBUF, splicing.NEAR_SEND_BUFFER)]


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        # on loopback, mid-transfer: queued bytes make the smoothed round trip milliseconds
        (_Connection(min_rtt=16, rtt=5_266), FITTED),
        (_Connection(min_rtt=20_000, rtt=20_000), []),  # a client 20 ms away
        (_Connection(min_rtt=None, rtt=50), FITTED),  # an older kernel: the smoothed one
        (_Connection(min_rtt=None, rtt=20_000), []),
    ],
)
def test_the_shortest_round_trip_says_how_near_a_client_is(
    connection: _Connection, expected: list[tuple[int, int, int]]
) -> None:
    splicing._fit_send_buffer(connection)
    assert connection.set == expected


def test_a_socket_that_is_not_tcp_keeps_the_kernels_buffers(
    pipes: tuple[socket.socket, ...],
) -> None:
    sink = pipes[2]
    before = sink.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    splicing._fit_send_buffer(sink)  # a Unix socket has no TCP_INFO
    assert sink.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == before


def _socket_at(local: tuple[str, int], peer: tuple[str, int]) -> socket.socket:
    """This process's own socket whose ends are ``local`` and ``peer`` (a duplicate)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        try:
            if sock.getsockname() == local and sock.getpeername() == peer:
                return sock
        except OSError:
            pass
        sock.close()
    raise AssertionError(f"no socket from {local} to {peer}")


def test_the_servers_protocol_relays_a_body_to_a_near_client_through_a_small_buffer(
    tmp_path: Path,
) -> None:
    """The server's own HTTP protocol offers the relay to a GET, and a relayed answer reaches
    a loopback client whole, through the fixed send buffer."""
    data = os.urandom(3 * 1024 * 1024 + 5)
    url, _ = _serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = await splicing.open_body(url, 0, len(data))
        assert body is not None
        response = splicing.SplicedResponse(body, 200, {"content-length": str(len(data))})
        await response(scope, receive, send)

    protocol = limited_protocol(ServerConfig(data_dir=tmp_path, config_path=None))
    with serving(app, http=protocol, lifespan="off") as port:
        client = socket.create_connection(("127.0.0.1", port))
        with client:
            client.sendall(b"GET /blob HTTP/1.1\r\nHost: test\r\n\r\n")
            received = b""
            while b"\r\n\r\n" not in received:
                received += client.recv(65536)
            head, _, body = received.partition(b"\r\n\r\n")
            while len(body) < len(data):
                body += client.recv(1 << 20)
            served = _socket_at(client.getpeername(), client.getsockname())
            with served:
                sndbuf = served.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    assert head.startswith(b"HTTP/1.1 200")
    assert body == data
    assert sndbuf == 2 * splicing.NEAR_SEND_BUFFER  # Linux doubles what it is given

"""Relaying a response body from another server's socket to the client's in the kernel.

The S3 gateway on an S3-compatible blob store answers GetObject with bytes it fetches from the
store. Read into the process and written out again, each byte is copied three times (the
kernel's receive, the HTTP client's buffers, the kernel's send), which on a machine of few
cores costs the gateway a third of the store's own speed. Linux moves bytes between two
sockets through a pipe with ``splice(2)``, without copying them through the process: this
module does that, for plain-HTTP sources.

- :func:`open_body` sends a ``GET`` (with ``Range``) for a presigned URL over a socket of its
  own and reads the answer's head: a :class:`SocketBody`, the socket positioned at the body
  with exactly its length still to come (or ``None`` where that cannot be had, and the
  caller streams instead: an HTTPS URL, an answer other than 200/206 with that
  ``Content-Length``, or no slot free).
- The app's connections offer GET requests the ASGI extension :data:`EXTENSION`
  (:func:`offer`, by :mod:`lamina_server.serving`): once a response has started with a
  ``Content-Length``, a
  ``{"type": MESSAGE, "body": SocketBody}`` message relays that body to the client in a
  worker thread of this module's own (at most :data:`SLOTS` at once, so relays never take
  the threads the rest of the server works in), then ends the response.
  :class:`SplicedResponse` is the Starlette response that sends one.

A relay stops when either side stalls for :data:`IDLE_TIMEOUT` seconds, or fails; the client's
connection is then closed, as for any response that fails after it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import select
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

EXTENSION = "lamina.splice"  # the scope extension a connection that can relay offers
MESSAGE = "lamina.response.splice"
SLOTS = 16  # relays at once; more requests stream as before
IDLE_TIMEOUT = 60.0  # seconds either side may stall before a relay gives up
CONNECT_TIMEOUT = 10.0
MAX_HEAD = 64 * 1024  # the most an answer's status line and headers may take
_PIPE_SIZE = 1024 * 1024
_F_SETPIPE_SZ = 1031  # fcntl: a pipe's capacity (Linux)
_CHECK_EVERY = 1.0  # seconds between a waiting relay's looks at whether it was stopped
#: A client whose shortest round trip is at most this many microseconds (the same host, a
#: LAN) is sent a relay through a send buffer of NEAR_SEND_BUFFER bytes (:func:`_fit_send_buffer`).
NEAR_RTT_US = 200
NEAR_SEND_BUFFER = 256 * 1024
# struct tcp_info's tcpi_min_rtt and, for kernels older than 4.9 that lack it, tcpi_rtt
# (microseconds, native u32s)
_TCP_INFO_MIN_RTT = slice(148, 152)
_TCP_INFO_RTT = slice(68, 72)

AVAILABLE = sys.platform == "linux" and hasattr(os, "splice")
_slots = threading.BoundedSemaphore(SLOTS)
_workers = ThreadPoolExecutor(SLOTS, thread_name_prefix="lamina-splice")


class RelayError(Exception):
    """A relay failed: its source (``source``) or the client (not ``source``) went away or
    stalled."""

    def __init__(self, message: str, *, source: bool) -> None:
        super().__init__(message)
        self.source = source


class SocketBody:
    """``count`` body bytes of an HTTP answer: ``head`` (the first of them, read with the
    answer's headers), then the rest, still to come on ``sock`` (non-blocking). Holds one of
    the :data:`SLOTS` until closed; once handed to a relay, the relay closes it."""

    def __init__(self, sock: socket.socket, head: bytes, count: int) -> None:
        self.sock = sock
        self.head = head
        self.count = count
        self.relaying = False
        self._lock = threading.Lock()
        self._open = True

    def close(self) -> None:
        """Closes the socket and frees the slot (not while a relay uses them)."""
        with self._lock:
            if self._open and not self.relaying:
                self._open = False
                self.sock.close()
                _slots.release()


def offered(scope: Scope) -> bool:
    """Whether the connection of ``scope`` can relay a :class:`SocketBody`."""
    return EXTENSION in scope.get("extensions", {})


async def open_body(url: str, start: int, end: int) -> SocketBody | None:
    """Bytes ``[start, end)`` of what ``GET url`` answers, as a :class:`SocketBody`, or None
    (see the module's docstring)."""
    if not AVAILABLE or urlsplit(url).scheme != "http" or not _slots.acquire(blocking=False):
        return None
    opening = asyncio.get_running_loop().run_in_executor(_workers, _open_body, url, start, end)
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_unused)  # the thread may still open one
        raise


def _close_unused(opening: asyncio.Future[SocketBody | None]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        body = opening.result()
        if body is not None:
            body.close()


def _open_body(url: str, start: int, end: int) -> SocketBody | None:
    """(blocking) :func:`open_body`, holding a slot: the body holds it, or it is released."""
    parts = urlsplit(url)
    try:
        sock = socket.create_connection(
            (parts.hostname or "", parts.port or 80), timeout=CONNECT_TIMEOUT
        )
    except OSError:
        _slots.release()
        return None
    try:
        head = _request(sock, parts.path, parts.query, parts.netloc, (start, end))
    except BaseException:
        sock.close()
        _slots.release()
        raise
    if head is None:
        sock.close()
        _slots.release()
        return None
    sock.setblocking(False)
    return SocketBody(sock, head, end - start)


def _request(
    sock: socket.socket, path: str, query: str, host: str, span: tuple[int, int]
) -> bytes | None:
    """Sends ``GET path?query`` for bytes ``span`` on ``sock`` and reads the answer's head:
    the body bytes that came with it, or None if it is not a plain answer of the span's
    length."""
    start, end = span
    target = path + (f"?{query}" if query else "")
    sock.settimeout(IDLE_TIMEOUT)
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\n"
        f"Range: bytes={start}-{end - 1}\r\nConnection: close\r\n\r\n"
    )
    try:
        sock.sendall(request.encode("ascii"))
        received = b""
        while b"\r\n\r\n" not in received:
            more = sock.recv(MAX_HEAD)
            if not more or len(received) + len(more) > MAX_HEAD:
                return None
            received += more
    except OSError:
        return None
    head, _, body = received.partition(b"\r\n\r\n")
    return body if _plain_answer(head, end - start) and len(body) <= end - start else None


def _plain_answer(head: bytes, length: int) -> bool:
    """Whether ``head`` is a 200 or 206 answer whose body is ``length`` bytes, not encoded."""
    status_line, *lines = head.split(b"\r\n")
    status = status_line.split(b" ", 2)
    if len(status) < 2 or status[1] not in (b"200", b"206"):
        return False
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return (
        headers.get(b"content-length") == str(length).encode("ascii")
        and b"transfer-encoding" not in headers
        and headers.get(b"content-encoding", b"identity") == b"identity"
    )


def relay(body: SocketBody, sink: int, stopped: threading.Event) -> None:
    """(blocking) Writes ``body`` to the non-blocking socket ``sink``; closes both. Raises
    :class:`RelayError` if a side fails, stalls or is ``stopped``."""
    pipe_out, pipe_in = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        with contextlib.suppress(OSError):  # else the default capacity will do
            fcntl.fcntl(pipe_in, _F_SETPIPE_SZ, _PIPE_SIZE)
        head = memoryview(body.head)
        while head:
            head = head[_write(sink, head, stopped) :]
        source = body.sock.fileno()
        left = body.count - len(body.head)
        while left:
            if stopped.is_set():
                raise RelayError("stopped", source=True)
            moved = _splice(source, pipe_in, min(left, _PIPE_SIZE), stopped, source_side=True)
            if moved == 0:
                raise RelayError("the source ended early", source=True)
            left -= moved
            while moved:
                moved -= _splice(pipe_out, sink, moved, stopped, source_side=False)
    finally:
        os.close(pipe_out)
        os.close(pipe_in)
        os.close(sink)
        body.relaying = False
        body.close()


_FLAGS = os.SPLICE_F_MOVE if AVAILABLE else 0  # (SPLICE_F_MORE only delays the client)


def _write(sink: int, data: memoryview, stopped: threading.Event) -> int:
    while True:
        try:
            return os.write(sink, data)
        except BlockingIOError:
            _wait(sink, select.POLLOUT, stopped, source_side=False)
        except OSError as exc:
            raise _failed(exc, source_side=False) from None


def _splice(
    source: int, sink: int, count: int, stopped: threading.Event, *, source_side: bool
) -> int:
    """``splice(2)`` of up to ``count`` bytes, waiting while the socket side would block."""
    while True:
        try:
            return os.splice(source, sink, count, flags=_FLAGS)
        except BlockingIOError:
            _wait(source if source_side else sink, _EVENT[source_side], stopped, source_side)
        except OSError as exc:
            raise _failed(exc, source_side) from None


_EVENT = {True: select.POLLIN, False: select.POLLOUT}
_GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN)


def _side(source_side: bool) -> str:
    return "the source" if source_side else "the client"


def _failed(exc: OSError, source_side: bool) -> RelayError:
    what = "went away" if exc.errno in _GONE else f"failed: {exc.strerror or exc}"
    return RelayError(f"{_side(source_side)} {what}", source=source_side)


def _wait(fd: int, event: int, stopped: threading.Event, source_side: bool) -> None:
    """Until ``event`` on ``fd``; a :class:`RelayError` once ``stopped`` or idle too long."""
    poller = select.poll()
    poller.register(fd, event)
    waited = 0.0
    while not poller.poll(_CHECK_EVERY * 1000):
        waited += _CHECK_EVERY
        if stopped.is_set():
            raise RelayError("stopped", source=source_side)
        if waited >= IDLE_TIMEOUT:
            raise RelayError(f"{_side(source_side)} stalled", source=source_side)


def can_relay(transport: asyncio.Transport) -> bool:
    """Whether a connection served on ``transport`` can relay: a plain socket (not TLS)."""
    return (
        AVAILABLE
        and transport.get_extra_info("socket") is not None
        and transport.get_extra_info("sslcontext") is None
    )


def offer(cycle: Any, transport: asyncio.Transport) -> None:
    """Offers :data:`EXTENSION` on the request/response ``cycle`` of uvicorn's httptools
    protocol, served on ``transport`` (:func:`can_relay`)."""
    cycle.scope.setdefault("extensions", {})[EXTENSION] = {}
    send = cycle.send

    async def spliced_send(message: Any) -> None:
        if message["type"] != MESSAGE:
            await send(message)
            return
        body: SocketBody = message["body"]
        try:
            await _relay(cycle, transport, body)
        finally:
            body.close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    cycle.send = spliced_send


async def _relay(cycle: Any, transport: asyncio.Transport, body: SocketBody) -> None:
    if cycle.disconnected:
        return
    if (
        not cycle.response_started
        or cycle.response_complete
        or cycle.chunked_encoding is not False
        or body.count != cycle.expected_content_length
    ):
        raise RuntimeError("a spliced body ends a response started with its Content-Length")
    while transport.get_write_buffer_size():  # the head uvicorn wrote goes first
        await asyncio.sleep(0.001)
    _fit_send_buffer(transport.get_extra_info("socket"))
    stopped = threading.Event()
    body.relaying = True
    relayed = asyncio.get_running_loop().run_in_executor(
        _workers, relay, body, os.dup(transport.get_extra_info("socket").fileno()), stopped
    )
    try:
        await asyncio.shield(relayed)
    except asyncio.CancelledError:
        stopped.set()
        transport.close()
        raise
    except RelayError as exc:
        transport.close()  # the client has part of the body: it must see it cut short
        if exc.source:
            raise
        cycle.disconnected = True
        return
    cycle.expected_content_length = 0


def _fit_send_buffer(sock: Any) -> None:
    """Gives a near client's connection (:data:`NEAR_RTT_US`) a fixed send buffer of
    :data:`NEAR_SEND_BUFFER` bytes.

    Linux grows a connection's send buffer with its congestion window, to megabytes on a
    short path that never loses a packet. A relay then queues megabytes for the client at a
    time: the bytes wait past the CPU caches before the client copies them, and the client's
    own acknowledgements send the rest, so the client pays for both (``gateway.py``: 0.26-0.29
    s of the client's CPU per GiB against 0.21 with this buffer, the server's 0.23 against
    0.20). A round trip that short needs far less in flight: 256 KiB covers 10 Gbit/s at
    200 us. A farther client keeps the kernel's tuning, which its longer round trip needs.
    The buffer stays fixed for the rest of the connection (Linux cannot hand it back to its
    tuning), which the same short round trip makes harmless.

    The round trip is the connection's shortest (``tcpi_min_rtt``): the smoothed one counts the
    time bytes wait in queues, milliseconds on loopback while a transfer fills them."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_MIN_RTT.stop)
        field = _TCP_INFO_MIN_RTT if len(info) >= _TCP_INFO_MIN_RTT.stop else _TCP_INFO_RTT
        rtt = int.from_bytes(info[field], sys.byteorder)
        if 0 < rtt <= NEAR_RTT_US:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, NEAR_SEND_BUFFER)
    except OSError:  # not a TCP connection: the kernel's buffers as they are
        pass


class SplicedResponse(Response):
    """A response whose body is a :class:`SocketBody`, relayed (:data:`EXTENSION`); the
    headers must carry its ``Content-Length``."""

    def __init__(self, body: SocketBody, status_code: int, headers: dict[str, str]) -> None:
        super().__init__(status_code=status_code, headers=headers)
        self.socket_body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            await send({"type": MESSAGE, "body": self.socket_body})
        finally:
            self.socket_body.close()

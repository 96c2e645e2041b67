"""HTTP/1.1 exchanges on asyncio: a request whose body is in memory, answered whole, over a
pool of keep-alive connections of its own.

Most API calls are such exchanges (a ``HEAD`` of an object, a JSON request, a small upload),
and on them a general HTTP client's machinery (aiohttp's request and response objects, its
tracing, cookie and timer plumbing) costs the client more CPU than the rest of the call: about
140 µs of a ``HEAD``'s 230 µs on the machine ``scripts/bench/call_overhead.py`` ran on. An
exchange needs little of it, so :class:`ExchangePool` speaks HTTP/1.1 itself on asyncio's
transports: the request is written in one piece, the answer is parsed as it arrives (a body
framed by ``Content-Length``, by chunks, or by the connection's end) and kept whole.

What it does, as the aiohttp pool did for these requests:

- connections are kept alive per origin (``http`` or ``https``, certificates verified with the
  system's default context) and reused newest first; one idle longer than ``keepalive_expiry``
  is closed rather than reused; at most ``max_connections`` are open at once, and a request
  waits for a free one up to the ``pool`` timeout;
- timeouts: ``connect`` for opening a connection, ``read`` for the longest silence while an
  answer is awaited, ``pool`` for the wait above; no write timeout;
- a connection the server closed while it sat idle is found before it is used, or, when the
  close races the request, the request is sent again once on a new connection if its method
  is idempotent (the server cannot have read it);
- failures are the ``httpx`` exceptions the rest of the client maps (``ConnectError``,
  ``ConnectTimeout``, ``PoolTimeout``, ``ReadTimeout``, ``RemoteProtocolError``,
  ``ReadError``);
- the headers sent are the prepared ones, with ``Host`` first when they lack it and a
  ``Content-Length: 0`` on a POST, PUT or PATCH without a body, as httpx adds them; nothing
  else (no ``Accept-Encoding``: bodies come as they are).

Streamed bodies and streamed answers (downloads, large uploads) stay on the aiohttp pool.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import httpx
from multidict import CIMultiDict

from lamina._http import Prepared, Reply
from lamina._urls import Origin

__all__ = ["ExchangePool"]

#: The longest status line and header block an answer may have.
MAX_HEAD = 256 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_LENGTH_HEADERS = frozenset({"content-length", "transfer-encoding"})
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_NO_BODY_STATUSES = frozenset({204, 304})
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Where an answer's parse stands.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILERS, _UNTIL_CLOSE, _DONE = range(7)


class _Disconnected(Exception):
    """The connection ended before any byte of the answer came (a reused one may be stale)."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: sends a request, parses its answer as the bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0
        self.keep_alive = True
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Reply] | None = None
        self._prepared: Prepared | None = None
        self._head_only = False
        self._state = _DONE
        self._status = 0
        self._raw: list[tuple[str, str]] | list[tuple[bytes, bytes]] = []
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._body: list[bytes] = []
        self._remaining = 0
        self._received = False
        self._last_read = 0.0
        self._read_timeout: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio's callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # bytes nobody asked for: the connection is not reusable
            self.keep_alive = False
            self.close()
            return
        self._received = True
        self._last_read = self._loop.time()
        self._buffer += data
        try:
            self._advance()
        except httpx.RemoteProtocolError as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        if self._state == _UNTIL_CLOSE:
            self._finish()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._waiter is None or self._waiter.done():
            return
        if self._state == _UNTIL_CLOSE:
            self._finish()
        elif not self._received:
            self._fail(_Disconnected())
        elif self._state == _HEAD:
            self._fail(httpx.RemoteProtocolError("Server disconnected before answering in full"))
        else:
            self._fail(httpx.ReadError("Server disconnected before the body was complete"))

    # -- one request -------------------------------------------------------------------------

    def send(self, prepared: Prepared, request: bytes, body: bytes | None) -> asyncio.Future[Reply]:
        """Write the request; the future is its answer."""
        assert self.transport is not None
        waiter = self._waiter = self._loop.create_future()
        self._prepared = prepared
        self._head_only = prepared.method == "HEAD"
        self._state = _HEAD
        self._received = False
        self._body = []
        if body is not None and len(body) <= 65536:
            self.transport.write(request + body)
        else:
            self.transport.write(request)
            if body:
                self.transport.write(body)
        read = prepared.timeout.get("read")
        self._read_timeout = read
        if read is not None:
            self._last_read = self._loop.time()
            self._timer = self._loop.call_at(self._last_read + read, self._check_silence)
        return waiter

    def done(self) -> None:
        """The exchange is over (answered, failed or cancelled)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._state != _DONE or self._buffer:  # cancelled, failed, or bytes past the answer
            self.keep_alive = False
        self._waiter = None
        self._prepared = None

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()
        self.lost = True

    def _check_silence(self) -> None:
        self._timer = None
        read = self._read_timeout
        if read is None or self._waiter is None or self._waiter.done():
            return
        due = self._last_read + read
        if self._loop.time() >= due:
            self._fail(httpx.ReadTimeout("Timed out reading the answer"))
        else:
            self._timer = self._loop.call_at(due, self._check_silence)

    def _fail(self, exc: BaseException) -> None:
        self.keep_alive = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def _finish(self) -> None:
        self._state = _DONE
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        prepared = self._prepared
        assert prepared is not None
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        if self._buffer:  # more than the answer: the next one would not be where it should
            self.keep_alive = False
            self._buffer.clear()
        waiter.set_result(Reply(self._status, self._headers, self._raw, body, prepared))

    # -- parsing -----------------------------------------------------------------------------

    def _advance(self) -> None:
        buffer = self._buffer
        while True:
            state = self._state
            if state == _HEAD:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD:
                        raise httpx.RemoteProtocolError("The answer's header block is too long")
                    return
                head = buffer[:end].decode("utf-8", "surrogateescape")
                del buffer[: end + 4]
                self._head(head)
            elif state == _LENGTH:
                if len(buffer) < self._remaining:
                    return
                self._take(self._remaining)
                self._finish()
                return
            elif state == _CHUNK_SIZE:
                end = buffer.find(b"\r\n")
                if end < 0:
                    return
                size_text = buffer[:end].split(b";", 1)[0].strip()
                del buffer[: end + 2]
                if not size_text or size_text.strip(_HEX_DIGITS):
                    raise httpx.RemoteProtocolError(f"A malformed chunk size: {size_text[:20]!r}")
                size = int(size_text, 16)
                self._remaining = size
                self._state = _CHUNK_DATA if size else _TRAILERS
            elif state == _CHUNK_DATA:
                if len(buffer) < self._remaining + 2:
                    return
                self._take(self._remaining)
                if buffer[:2] != b"\r\n":
                    raise httpx.RemoteProtocolError("A chunk did not end where its size said")
                del buffer[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                if buffer[:2] == b"\r\n":
                    del buffer[:2]
                else:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    del buffer[: end + 4]
                self._finish()
                return
            elif state == _UNTIL_CLOSE:
                self._take(len(buffer))
                return
            else:
                return

    def _take(self, size: int) -> None:
        buffer = self._buffer
        if size == len(buffer):
            self._body.append(bytes(buffer))
            buffer.clear()
        elif size:
            with memoryview(buffer) as view:
                self._body.append(bytes(view[:size]))
            del buffer[:size]

    def _head(self, head: str) -> None:
        """Read a status line and header block, and how the body that follows is framed."""
        lines = head.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        status_text = rest[:3]
        if (
            not version.startswith("HTTP/1.")
            or len(status_text) != 3
            or not (status_text.isascii() and status_text.isdigit())
            or rest[3:4] not in ("", " ")
        ):
            raise httpx.RemoteProtocolError(f"A malformed status line: {lines[0][:100]!r}")
        status = int(status_text)
        pairs: list[tuple[str, str]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name[-1] in " \t" or name[0] in " \t":
                raise httpx.RemoteProtocolError(f"A malformed header line: {line[:100]!r}")
            pairs.append((name, value.strip(" \t")))
        if status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            return
        self._status = status
        headers = self._headers = CIMultiDict(pairs)
        # the raw headers (an httpx.Response's, built on demand) as the bytes that came
        self._raw = pairs if head.isascii() else [_raw_pair(pair) for pair in pairs]
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.keep_alive = self.keep_alive and "keep-alive" in connection
        elif "close" in connection:
            self.keep_alive = False
        if self._head_only or status in _NO_BODY_STATUSES:
            self._state = _DONE
            self._finish()
            return
        encoding = headers.get("transfer-encoding")
        if encoding is not None:
            if encoding.lower().rsplit(",", 1)[-1].strip() != "chunked":
                self.keep_alive = False
                self._state = _UNTIL_CLOSE
            else:
                self._state = _CHUNK_SIZE
            return
        lengths = headers.getall("content-length", None)
        if lengths is None:
            self.keep_alive = False
            self._state = _UNTIL_CLOSE
            return
        if len(set(lengths)) != 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
            raise httpx.RemoteProtocolError(f"A malformed Content-Length: {lengths!r}")
        self._remaining = int(lengths[0])
        self._state = _LENGTH


class ExchangePool:
    """Keep-alive HTTP/1.1 connections, and exchanges over them (see the module docstring).
    Made and used inside one running event loop."""

    def __init__(self, *, max_connections: int, keepalive_expiry: float) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[str, list[_Connection]] = {}
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._addresses: dict[str, tuple[str, int, ssl.SSLContext | None]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def exchange(self, prepared: Prepared) -> Reply:
        """Send ``prepared`` (its body in memory, or none) and read the whole answer."""
        request, body = _encode(prepared)
        origin = prepared.target.origin
        connection = await self._acquire(origin, prepared.timeout, fresh=False)
        if connection.idle_since and prepared.method in _IDEMPOTENT:
            try:
                return await self._send(origin, connection, prepared, request, body)
            except _Disconnected:  # closed by the server as the request went: once more, anew
                connection = await self._acquire(origin, prepared.timeout, fresh=True)
        try:
            return await self._send(origin, connection, prepared, request, body)
        except _Disconnected:
            raise httpx.RemoteProtocolError("Server disconnected without answering") from None

    async def _send(
        self,
        origin: Origin,
        connection: _Connection,
        prepared: Prepared,
        request: bytes,
        body: bytes | None,
    ) -> Reply:
        try:
            return await connection.send(prepared, request, body)
        finally:
            connection.done()
            self._release(origin.text, connection)

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close as their exchanges end."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
                self._open -= 1
        self._idle.clear()

    # -- the pool ----------------------------------------------------------------------------

    async def _acquire(
        self, origin: Origin, timeout: dict[str, float | None], *, fresh: bool
    ) -> _Connection:
        """An idle connection to ``origin`` (unless ``fresh``), else a new one once there is
        room: an idle connection to another origin is closed for it, or one in use ends."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            if not fresh:
                connection = self._idle_connection(loop, origin.text)
                if connection is not None:
                    return connection
            if self._open < self._max_connections or self._close_an_idle_connection():
                break
            pool_timeout = timeout.get("pool")
            if pool_timeout is not None and deadline is None:
                deadline = loop.time() + pool_timeout
            await self._wait(loop, deadline)
        self._open += 1
        try:
            return await self._connect(loop, origin, timeout.get("connect"))
        except BaseException:
            self._open -= 1
            self._wake()
            raise

    def _idle_connection(self, loop: asyncio.AbstractEventLoop, key: str) -> _Connection | None:
        """The newest idle connection to ``key`` that is still usable (others are closed)."""
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if (
                not connection.lost
                and connection.transport is not None
                and not connection.transport.is_closing()
                and loop.time() - connection.idle_since < self._keepalive_expiry
            ):
                return connection
            connection.close()
            self._open -= 1
        return None

    async def _wait(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> None:
        """Until a connection is released (or closed), at most until ``deadline``."""
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            if deadline is None:
                await waiter
            else:
                await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise httpx.PoolTimeout("Timed out waiting for a free connection") from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._wake()  # woken, then cancelled: the turn goes to the next in line
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        if self._closed:
            raise httpx.ConnectError("The connection pool is closed")

    def _close_an_idle_connection(self) -> bool:
        for connections in self._idle.values():
            if connections:
                connections.pop(0).close()
                self._open -= 1
                return True
        return False

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, origin: Origin, connect_timeout: float | None
    ) -> _Connection:
        host, port, context = self._address(origin)
        connection = _Connection(loop)
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: connection,
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                ),
                connect_timeout,
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"Timed out connecting to {origin.text}") from None
        except OSError as exc:
            raise httpx.ConnectError(f"Cannot connect to {origin.text}: {exc}") from exc
        return connection

    def _address(self, origin: Origin) -> tuple[str, int, ssl.SSLContext | None]:
        address = self._addresses.get(origin.text)
        if address is None:
            url = origin.url
            if url.scheme not in _DEFAULT_PORTS or not url.host:
                raise httpx.UnsupportedProtocol(f"Cannot send a request to {origin.text}")
            context = None
            if url.scheme == "https":
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                context = self._ssl
            address = (url.host, url.port or _DEFAULT_PORTS[url.scheme], context)
            self._addresses[origin.text] = address
        return address

    def _release(self, key: str, connection: _Connection) -> None:
        if connection.keep_alive and not connection.lost and not self._closed:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(key, []).append(connection)
        else:
            connection.close()
            self._open -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _raw_pair(pair: tuple[str, str]) -> tuple[bytes, bytes]:
    name, value = pair
    return name.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape")


def _encode(prepared: Prepared) -> tuple[bytes, bytes | None]:
    """The request line and headers, and the body (headers with a line break never get here:
    :func:`lamina._http.prepare` refuses them)."""
    target = prepared.target
    if target.path is None:
        path = target.url.raw_path.decode("ascii")
    elif target.query is None:
        path = target.path
    else:
        path = f"{target.path}?{target.query}"
    headers = prepared.headers
    lines = [f"{prepared.method} {path} HTTP/1.1"]
    if (not headers or headers[0][0] != "Host") and all(
        name.lower() != "host" for name, _ in headers
    ):
        lines.append(f"Host: {target.origin.netloc}")
    lines.extend([f"{name}: {value}" for name, value in headers])
    body: Any = prepared.content
    if (
        prepared.method in _BODY_METHODS
        and not body
        and not _LENGTH_HEADERS & {name.lower() for name, _ in headers}
    ):
        lines.append("Content-Length: 0")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8"), body or None

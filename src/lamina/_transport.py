"""The connection pools behind a client, and how a client sends through them: hand-written
async/blocking pairs.

:class:`AsyncWire` (generated twin: :class:`Wire`) sends a client's prepared requests: through
the ``httpx`` client the user injected (``http_client=``), else through the client's own pool,
which ``create_async_transport()`` (twin: ``create_transport()``) opens on the first request.
On asyncio that pool is :class:`AiohttpTransport`, an ``httpx`` transport over one ``aiohttp``
session: httpx stays the interface (requests, responses, timeouts, errors are httpx's), aiohttp
moves the bytes, several times faster than httpx's own async pool under concurrency. A request
whose body is in memory and whose answer is read whole (most API calls) skips the httpx
objects and aiohttp: :meth:`AiohttpTransport.exchange` sends the prepared request through
the transport's :class:`~lamina._exchange.ExchangePool` (HTTP/1.1 on keep-alive connections
of its own) and answers with a :class:`~lamina._http.Reply` over the parsed headers, and the
client builds an ``httpx.Response`` only when one is asked for. On any other event loop
(trio) the pool is ``httpx.AsyncHTTPTransport``. Neither reads proxy settings from the environment; pass
``http_client=`` for proxies or custom TLS.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import httpx
import sniffio
from yarl import URL

from lamina._errors import LaminaError
from lamina._exchange import ExchangePool
from lamina._http import Prepared, Reply
from lamina._httpx_compat import read_response

__all__ = [
    "AiohttpTransport",
    "AsyncWire",
    "Wire",
    "create_async_transport",
    "create_transport",
]

#: Idle keep-alive connections are dropped after this many seconds: sooner than servers
#: close them (uvicorn, which serves the reference server, after 5 s), so that a request is
#: not sent on a connection the server is closing at that moment.
KEEPALIVE_EXPIRY = 4.0
#: Bodies up to this size (by ``Content-Length``) are read at once.
READ_AT_ONCE = 1 << 20
_NO_CONTENT_TYPE = ("Content-Type",)
#: Size of the block freed once when a pool opens, to keep socket reads on the heap (see
#: :func:`_serve_reads_from_the_heap`).
HEAP_PRIMER = 2 << 20


def create_async_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """The default pool for an async client; call it from inside the event loop."""
    if sniffio.current_async_library() == "asyncio":
        return AiohttpTransport(max_connections=max_connections)
    return httpx.AsyncHTTPTransport(limits=_limits(max_connections))


def create_transport(max_connections: int) -> httpx.BaseTransport:
    """The default pool for a blocking client (thread-safe)."""
    return httpx.HTTPTransport(limits=_limits(max_connections))


def _limits(max_connections: int) -> httpx.Limits:
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )


class AsyncWire:
    """Sends an :class:`~lamina.AsyncClient`'s prepared requests (see the module docstring);
    ``stream``: the reply's ``response`` is returned before its body is read."""

    def __init__(self, max_connections: int, http_client: httpx.AsyncClient | None) -> None:
        self._max_connections = max_connections
        self._http_client = http_client
        self._transport: httpx.AsyncBaseTransport | None = None
        self._lock = threading.Lock()
        self.closed = False

    def send(self, prepared: Prepared, stream: bool) -> Awaitable[Reply]:
        """The reply to ``prepared``, to await (the aiohttp pool's own, when it can)."""
        if self._http_client is None:
            transport = self._transport or self._open()
            if not stream and type(transport) is AiohttpTransport and not prepared.streamed:
                return transport.exchange(prepared)
        return self._send(prepared, stream)

    async def _send(self, prepared: Prepared, stream: bool) -> Reply:
        if self._http_client is not None:
            response = await self._http_client.send(prepared.request(), stream=True)
        else:
            transport = self._transport or self._open()
            request = prepared.request()
            response = await transport.handle_async_request(request)
            response.request = request
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return Reply.of(response)

    def _open(self) -> httpx.AsyncBaseTransport:
        with self._lock:
            if self.closed:
                raise LaminaError("the client is closed")
            if self._transport is None:
                self._transport = create_async_transport(self._max_connections)
            return self._transport

    async def aclose(self) -> None:
        """Close the pool (an injected ``http_client`` is left open)."""
        with self._lock:
            self.closed = True
            transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()


class Wire:
    """Sends a :class:`~lamina.Client`'s prepared requests (blocking twin of
    :class:`AsyncWire`, always through httpx)."""

    def __init__(self, max_connections: int, http_client: httpx.Client | None) -> None:
        self._max_connections = max_connections
        self._http_client = http_client
        self._transport: httpx.BaseTransport | None = None
        self._lock = threading.Lock()
        self.closed = False

    def send(self, prepared: Prepared, stream: bool) -> Reply:
        request = prepared.request()
        if self._http_client is not None:
            response = self._http_client.send(request, stream=True)
        else:
            response = (self._transport or self._open()).handle_request(request)
            response.request = request
        if not stream:
            try:
                response.read()
            except BaseException:
                response.close()
                raise
        return Reply.of(response)

    def _open(self) -> httpx.BaseTransport:
        with self._lock:
            if self.closed:
                raise LaminaError("the client is closed")
            if self._transport is None:
                self._transport = create_transport(self._max_connections)
            return self._transport

    def close(self) -> None:
        """Close the pool (an injected ``http_client`` is left open)."""
        with self._lock:
            self.closed = True
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport that sends requests with one pooled ``aiohttp`` session.

    Timeouts map as: ``connect`` -> aiohttp ``sock_connect``, ``read`` -> ``sock_read``,
    ``pool`` -> ``connect`` (waiting for a pooled connection); aiohttp has no write timeout.
    aiohttp errors are raised as the matching ``httpx`` exceptions, with the original as the
    ``__cause__``. A body of known length up to :data:`READ_AT_ONCE` is read before the
    response is returned (one step instead of a stream); other bodies stream as they arrive:
    each piece is what the connection has received since the last one, never copied or
    split here. :meth:`exchange` sends a request whose body is in memory and reads its answer
    whole through the transport's :class:`~lamina._exchange.ExchangePool`, without httpx
    objects or aiohttp.
    """

    def __init__(self, *, max_connections: int = 100) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._exchanges: ExchangePool | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        _serve_reads_from_the_heap()
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, keepalive_timeout=KEEPALIVE_EXPIRY
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # httpx.Response decodes, as with any httpx transport
        )
        return self._session

    def _timeout(self, timeout: dict[str, float | None] | None) -> aiohttp.ClientTimeout:
        if not timeout:
            return aiohttp.ClientTimeout()
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        cached = self._timeouts.get(key)
        if cached is None:
            connect, read, pool = key
            cached = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = cached
        return cached

    def _request(
        self, method: str, url: URL, headers: Any, data: Any, timeout: aiohttp.ClientTimeout
    ) -> Awaitable[aiohttp.ClientResponse]:
        session = self._session or self._open()
        # aiohttp gives a body without a Content-Type one of its own; httpx sends none
        # (skipping is a per-request option: a session-wide one costs every request)
        skip = None
        if data is not None and all(name.lower() != "content-type" for name, _ in headers):
            skip = _NO_CONTENT_TYPE
        return session.request(
            method,
            url,
            headers=headers,
            data=data,
            skip_auto_headers=skip,
            allow_redirects=False,
            timeout=timeout,
        )

    async def exchange(self, prepared: Prepared) -> Reply:
        """Send ``prepared`` (its body in memory, or none) and read the whole answer, through
        the transport's :class:`~lamina._exchange.ExchangePool`."""
        pool = self._exchanges
        if pool is None:
            pool = self._exchanges = ExchangePool(
                max_connections=self._max_connections, keepalive_expiry=KEEPALIVE_EXPIRY
            )
        reply = await pool.exchange(prepared)
        if "Content-Encoding" in reply.headers:  # httpx decodes it
            return Reply.of(
                read_response(
                    reply.status_code, reply.raw_headers, reply.content, prepared.request(), False
                )
            )
        return reply

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = _header_items(request.headers)
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed body: aiohttp frames it itself
            data = request.stream
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        timeout = self._timeout(request.extensions.get("timeout"))
        try:
            response = await self._request(
                request.method, URL(str(request.url), encoded=True), headers, data, timeout
            )
            length = response.content_length
            if length is None or length > READ_AT_ONCE:
                return httpx.Response(
                    response.status,
                    headers=response.raw_headers,
                    stream=_ResponseStream(response),
                    request=request,
                )
            try:
                body = await response.read()
            finally:
                response.release()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _httpx_error(exc) from exc
        decoded = "Content-Encoding" not in response.headers
        return read_response(response.status, response.raw_headers, body, request, decoded)

    async def aclose(self) -> None:
        exchanges, self._exchanges = self._exchanges, None
        if exchanges is not None:
            await exchanges.aclose()
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _httpx_error(exc) from exc

    async def aclose(self) -> None:
        self._response.release()


def _header_items(headers: httpx.Headers) -> list[tuple[str, str]]:
    """The headers as text pairs, as sent: ASCII almost always (``multi_items()`` otherwise,
    which decodes as httpx would encode them)."""
    try:
        return [(name.decode("ascii"), value.decode("ascii")) for name, value in headers.raw]
    except UnicodeDecodeError:
        return headers.multi_items()


def _serve_reads_from_the_heap() -> None:
    """asyncio reads a socket into a fresh 256 KiB buffer each time. glibc's malloc serves a
    block that large by mapping new memory, which faults on every page the read fills and is
    unmapped when freed, until the process has freed a mapped block at least that large: then
    it raises its threshold and serves such blocks from the heap (its "dynamic mmap
    threshold"). A download in a fresh process would otherwise pay a page fault per 4 KiB,
    about twice the CPU. Allocating and freeing one zeroed block (mapped, never touched) is
    that first free; with other allocators it is a 2 MiB allocation and nothing else."""
    bytes(HEAP_PRIMER)


def _httpx_error(exc: BaseException) -> httpx.TransportError:
    """The httpx exception for an aiohttp failure (connect-phase failures stay distinguishable,
    as the retry policy may resend a POST only when the connection was never made)."""
    message = str(exc) or type(exc).__name__
    error: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.ConnectTimeout
    elif isinstance(exc, asyncio.TimeoutError):
        error = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = httpx.ConnectError
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)):
        error = httpx.RemoteProtocolError
    elif isinstance(exc, aiohttp.ClientPayloadError):
        error = httpx.ReadError
    elif isinstance(exc, aiohttp.InvalidURL):
        error = httpx.UnsupportedProtocol
    else:
        error = httpx.NetworkError
    return error(message)

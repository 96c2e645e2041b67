"""The connection pool behind a client: a hand-written async/blocking pair.

``create_async_transport()`` (generated twin: ``create_transport()``) is called once per client,
on its first request. On asyncio it returns :class:`AiohttpTransport`, an ``httpx`` transport
over one ``aiohttp`` session: httpx stays the interface (requests, responses, timeouts, errors
are httpx's), aiohttp moves the bytes, several times faster than httpx's own async pool under
concurrency. On any other event loop (trio) it falls back to ``httpx.AsyncHTTPTransport``.
Neither reads proxy settings from the environment; pass ``http_client=`` for proxies or custom
TLS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import sniffio
from yarl import URL

from lamina._httpx_compat import read_response

__all__ = ["AiohttpTransport", "create_async_transport", "create_transport"]

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


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` transport that sends requests with one pooled ``aiohttp`` session.

    Timeouts map as: ``connect`` -> aiohttp ``sock_connect``, ``read`` -> ``sock_read``,
    ``pool`` -> ``connect`` (waiting for a pooled connection); aiohttp has no write timeout.
    aiohttp errors are raised as the matching ``httpx`` exceptions, with the original as the
    ``__cause__``. A body of known length up to :data:`READ_AT_ONCE` is read before the
    response is returned (one step instead of a stream); other bodies stream as they arrive:
    each piece is what the connection has received since the last one, never copied or
    split here.
    """

    def __init__(self, *, max_connections: int = 100) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
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
        client_timeout = self._timeouts.get(key)
        if client_timeout is None:
            connect, read, pool = key
            client_timeout = aiohttp.ClientTimeout(
                total=None, connect=pool, sock_connect=connect, sock_read=read
            )
            self._timeouts[key] = client_timeout
        return client_timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        headers = _header_items(request.headers)
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed body: aiohttp frames it itself
            data = request.stream
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        # aiohttp gives a body without a Content-Type one of its own; httpx sends none
        # (skipping is a per-request option: a session-wide one costs every request)
        skip = None
        if data is not None and all(name.lower() != "content-type" for name, _ in headers):
            skip = _NO_CONTENT_TYPE
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=data,
                skip_auto_headers=skip,
                allow_redirects=False,
                timeout=self._timeout(request.extensions.get("timeout")),
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _httpx_error(exc) from exc
        length = response.content_length
        if length is not None and length <= READ_AT_ONCE:
            try:
                body = await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                raise _httpx_error(exc) from exc
            finally:
                response.release()
            decoded = "Content-Encoding" not in response.headers
            return read_response(response.status, response.raw_headers, body, request, decoded)
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response),
            request=request,
        )

    async def aclose(self) -> None:
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

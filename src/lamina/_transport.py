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

__all__ = ["AiohttpTransport", "create_async_transport", "create_transport"]

#: Idle keep-alive connections are dropped after this many seconds (httpx's default).
KEEPALIVE_EXPIRY = 5.0
#: Bodies up to this size (by ``Content-Length``) are read at once.
READ_AT_ONCE = 1 << 20
#: Larger or unsized bodies stream in chunks of this size.
CHUNK_SIZE = 1 << 16


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
    response is returned (one step instead of a stream); other bodies stream in chunks.
    """

    def __init__(self, *, max_connections: int = 100) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, keepalive_timeout=KEEPALIVE_EXPIRY
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # httpx.Response decodes, as with any httpx transport
            skip_auto_headers=("Content-Type",),
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
        headers = request.headers.multi_items()
        data: Any
        try:
            data = request.content or None
        except httpx.RequestNotRead:  # a streamed body: aiohttp frames it itself
            data = request.stream
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        try:
            response = await session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=data,
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
            return httpx.Response(
                response.status, headers=response.raw_headers, content=body, request=request
            )
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
        try:
            async for chunk in self._response.content.iter_chunked(CHUNK_SIZE):
                yield chunk
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise _httpx_error(exc) from exc

    async def aclose(self) -> None:
        self._response.release()


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

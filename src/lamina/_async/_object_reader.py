"""The streaming reader that ``objects.get()`` returns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from lamina._errors import InvalidArgumentError, TransportError
from lamina._redact import redact
from lamina.models.objects import range_header, unquote_etag

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from lamina._async._client import AsyncClient

#: Default piece size of :meth:`AsyncObjectReader.iter_bytes`.
DEFAULT_CHUNK_SIZE = 64 * 1024


class AsyncObjectReader:
    """A file-like view of one object's bytes, streamed from its download URL.

    The request goes out when the reader is entered (``with`` / ``async with``) or first read:
    the API answers with a redirect to a signed download URL, which is followed. An error (the
    object does not exist, a bad path) is raised then, as a typed :class:`~lamina.APIError`.
    Memory stays constant while streaming with :meth:`iter_bytes` or ``read(n)``. Reads
    consume the body as a file's do: ``read()`` returns all that is left, and a read at the
    end returns ``b""``.

    Header values (``etag``, ``content_type``, ``content_length``, ``content_range``) are those
    of the download response and are set once the reader is open.
    """

    def __init__(
        self,
        client: AsyncClient,
        path: str,
        params: dict[str, str],
        *,
        byte_range: tuple[int, int | None] | None = None,
    ) -> None:
        self._client = client
        self._path = path
        self._params = params
        self._headers = {"Range": range_header(byte_range)} if byte_range is not None else {}
        self._stream: AbstractAsyncContextManager[httpx.Response] | None = None
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        # the last piece received and how much of it was read: bytes not yet returned
        self._pending = b""
        self._offset = 0
        self._eof = False
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self._params.get('path')!r})"

    async def _open(self) -> httpx.Response:
        if self._response is not None and not self._closed:
            return self._response
        if self._closed:
            raise InvalidArgumentError(
                f"{self!r} is closed: open the object again with objects.get(path)"
            )
        stream = self._client.stream(
            "GET", self._path, params=self._params, headers=self._headers, follow_redirects=True
        )
        self._response = await stream.__aenter__()
        self._stream = stream
        return self._response

    def _header(self, name: str) -> str | None:
        return None if self._response is None else self._response.headers.get(name)

    @property
    def etag(self) -> str | None:
        """The object's ETag, without quotes."""
        return unquote_etag(self._header("etag"))

    @property
    def content_type(self) -> str | None:
        return self._header("content-type")

    @property
    def content_length(self) -> int | None:
        """Bytes in this response (the range's length for a ranged read)."""
        value = self._header("content-length")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def content_range(self) -> str | None:
        """``bytes start-end/total`` for a ranged read, else ``None``."""
        return self._header("content-range")

    async def _next_chunk(self) -> bytes:
        """The next piece of the body as it was received, or ``b""`` at its end."""
        chunks = self._chunks
        if chunks is None:
            if self._eof:
                return b""
            response = await self._open()
            # a small body may have been read already by the transport
            chunks = self._chunks = (
                _just(response.content) if response.is_stream_consumed else response.aiter_raw()
            )
        try:
            return await chunks.__anext__()
        except StopAsyncIteration:
            self._eof = True
            await self._release()
            return b""
        except httpx.HTTPError as exc:
            raise TransportError(
                redact(f"reading {self._params.get('path')!r} failed: {exc}")
            ) from exc

    def _take_pending(self) -> list[bytes | memoryview]:
        """What is left of the last piece received (at most one view), now consumed."""
        pending, offset = self._pending, self._offset
        self._pending, self._offset = b"", 0
        if offset == len(pending):
            return []
        return [memoryview(pending)[offset:] if offset else pending]

    async def _read_up_to(self, n: int) -> bytes:
        """``n`` bytes, fewer only at the end. Pieces are copied at most once, and a piece of
        exactly ``n`` bytes is returned as it was received."""
        pending, offset = self._pending, self._offset
        if len(pending) - offset >= n:
            self._offset = offset + n
            return pending if offset == 0 and len(pending) == n else pending[offset : offset + n]
        parts = self._take_pending()
        size = sum(len(part) for part in parts)
        try:
            while size < n:
                chunk = await self._next_chunk()
                if not chunk:
                    break
                wanted = n - size
                if len(chunk) > wanted:
                    self._pending, self._offset = chunk, wanted
                    parts.append(memoryview(chunk)[:wanted])
                    break
                parts.append(chunk)
                size += len(chunk)
        except BaseException:
            self._pending = _joined(parts)  # a failed or cancelled read loses no bytes
            raise
        return _joined(parts)

    async def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (fewer only at the end), or all that is left if ``n < 0``;
        ``b""`` at the end of the body."""
        if n >= 0:
            return await self._read_up_to(n) if n else b""
        parts = self._take_pending()
        try:
            while chunk := await self._next_chunk():
                parts.append(chunk)
        except BaseException:
            self._pending = _joined(parts)
            raise
        return _joined(parts)

    async def iter_bytes(self, chunk_size: int | None = DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Stream the rest of the body in pieces of ``chunk_size`` bytes (the last may be
        shorter); ``chunk_size=None`` yields the pieces as they arrive, without copying them."""
        if chunk_size is not None:
            if chunk_size < 1:
                raise InvalidArgumentError(
                    f"chunk_size must be a positive number of bytes (or None for the pieces "
                    f"as they arrive), got {chunk_size!r}"
                )
            while chunk := await self._read_up_to(chunk_size):
                yield chunk
            return
        for part in self._take_pending():
            yield bytes(part)
        while chunk := await self._next_chunk():
            yield chunk

    async def _release(self) -> None:
        stream, self._stream = self._stream, None
        self._chunks = None
        if stream is not None:
            await stream.__aexit__(None, None, None)

    async def close(self) -> None:
        """Release the connection (idempotent); reads after this raise
        :class:`~lamina.InvalidArgumentError` (a ``ValueError``, as for a closed file)."""
        self._closed = True
        self._pending, self._offset = b"", 0
        await self._release()

    async def __aenter__(self) -> AsyncObjectReader:
        await self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def _just(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _joined(parts: list[bytes | memoryview]) -> bytes:
    if len(parts) == 1 and isinstance(parts[0], bytes):
        return parts[0]
    return b"".join(parts)

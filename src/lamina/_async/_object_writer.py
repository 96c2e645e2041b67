"""Object uploads: one presigned PUT below the part size, concurrent multipart at or above it.

Bytes are never read whole into memory for file and ``Path`` inputs: every request body is a
re-iterable view that reads its slice of the file in ``CHUNK_SIZE`` pieces (seek and read under
a lock, so concurrent parts share one file safely). Inputs of unknown size (iterables,
non-seekable files) go multipart, one part in memory at a time.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeGuard, cast

import httpx

from lamina._concurrency import agather_bounded
from lamina._converter import structure
from lamina._errors import APIError
from lamina.models.objects import (
    FinalizedObject,
    MultipartUpload,
    PartTicket,
    PutObjectResult,
    UploadTicket,
    unquote_etag,
)

if TYPE_CHECKING:
    from lamina._async._client import AsyncClient

#: Objects of this size or more go multipart, in parts of this size (the last may be shorter).
MULTIPART_PART_SIZE = 64 * 1024 * 1024
#: Size of the pieces request bodies are read and sent in.
CHUNK_SIZE = 1024 * 1024
#: Parts of one object in flight at once (each also holds a slot of the client's limiter).
PART_CONCURRENCY = 8
#: Bodies this small are sent as one ``bytes`` object.
_SMALL_BODY = 256 * 1024

# Presigned PUTs send large bodies: no write timeout, bounded connect and read.
_UPLOAD_TIMEOUT = httpx.Timeout(connect=30.0, read=120.0, write=None, pool=30.0)
_OCTET_STREAM = "application/octet-stream"

PutData = bytes | bytearray | memoryview | IO[bytes] | Path | Iterable[bytes] | AsyncIterable[bytes]
ProgressHook = Callable[[int], None]

# Clients whose server answered 501 to a multipart initiate: single uploads from then on.
_MULTIPART_UNSUPPORTED: weakref.WeakSet[Any] = weakref.WeakSet()


class _Body:
    """A re-iterable request body over one slice of a source, reporting bytes as they go."""

    def __init__(
        self, read: Callable[[int, int], bytes], offset: int, length: int, hook: ProgressHook | None
    ) -> None:
        self._read = read
        self._offset = offset
        self.length = length
        self._hook = hook
        self._reported = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self._hook is not None and self._reported:
            self._hook(-self._reported)
            self._reported = 0
        position = self._offset
        end = self._offset + self.length
        while position < end:
            chunk = self._read(position, min(CHUNK_SIZE, end - position))
            if not chunk:
                raise OSError(f"source ended {end - position} bytes early")
            position += len(chunk)
            if self._hook is not None:
                self._reported += len(chunk)
                self._hook(len(chunk))
            yield chunk


class _Source:
    """What ``put()`` reads from: random access when ``size`` is known and slices can be read."""

    size: int | None = None

    def body(self, offset: int, length: int, hook: ProgressHook | None) -> bytes | _Body:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source opened itself."""


class _MemorySource(_Source):
    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._data = data
        self._view = memoryview(data).cast("B")
        self.size = self._view.nbytes

    def _read(self, offset: int, length: int) -> bytes:
        return bytes(self._view[offset : offset + length])

    def body(self, offset: int, length: int, hook: ProgressHook | None) -> bytes | _Body:
        if isinstance(self._data, bytes) and offset == 0 and length == self.size:
            return self._data
        if length <= _SMALL_BODY:
            return self._read(offset, length)
        return _Body(self._read, offset, length, hook)


class _SeekableSource(_Source):
    """A seekable file read by position under a lock, so parts can be read concurrently."""

    def __init__(self, file: IO[bytes], start: int, size: int, owned: bool) -> None:
        self._file = file
        self._start = start
        self.size = size
        self._owned = owned
        self._lock = threading.Lock()

    def _read(self, offset: int, length: int) -> bytes:
        with self._lock:
            self._file.seek(self._start + offset)
            return self._file.read(length)

    def body(self, offset: int, length: int, hook: ProgressHook | None) -> bytes | _Body:
        if length <= _SMALL_BODY:
            return self._read(offset, length)
        return _Body(self._read, offset, length, hook)

    def close(self) -> None:
        if self._owned:
            self._file.close()


class _StreamSource(_Source):
    """Bytes of unknown size that can only be read once, front to back."""

    def __init__(self, chunks: AsyncIterator[bytes], owned: IO[bytes] | None = None) -> None:
        self._chunks = chunks
        self._owned = owned
        self.started = False

    async def parts(self, part_size: int) -> AsyncIterator[bytes]:
        """Yield parts of ``part_size`` bytes; the last may be shorter (one empty part if no data)."""
        self.started = True
        buffer = bytearray()
        sent = False
        async for chunk in self._chunks:
            buffer += chunk
            while len(buffer) >= part_size:
                yield bytes(buffer[:part_size])
                del buffer[:part_size]
                sent = True
        if buffer or not sent:
            yield bytes(buffer)

    def stream(self) -> AsyncIterator[bytes]:
        self.started = True
        return self._chunks

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()


async def _iterate(data: object) -> AsyncIterator[bytes]:
    if isinstance(data, AsyncIterable):
        async for chunk in data:
            if chunk:
                yield bytes(chunk)
        return
    for chunk in cast("Iterable[Any]", data):
        if chunk:
            yield bytes(chunk)


async def _read_file(file: IO[bytes]) -> AsyncIterator[bytes]:
    while True:
        chunk = file.read(CHUNK_SIZE)
        if not chunk:
            return
        yield chunk


def _file_source(file: IO[bytes], owned: bool) -> _Source:
    try:
        seekable = file.seekable()
    except (OSError, ValueError):
        seekable = False
    if not seekable:
        return _StreamSource(_read_file(file), owned=file if owned else None)
    start = file.tell()
    size = file.seek(0, os.SEEK_END) - start
    file.seek(start)
    return _SeekableSource(file, start, max(size, 0), owned)


def _is_file(data: object) -> TypeGuard[IO[bytes]]:
    return hasattr(data, "read")


def open_source(data: PutData) -> _Source:
    """Wrap ``put()`` input in a source; ``Path`` inputs are opened here and closed by ``close()``."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return _MemorySource(data)
    if isinstance(data, Path):
        return _file_source(data.open("rb", buffering=0), owned=True)
    if _is_file(data):
        return _file_source(data, owned=False)
    if not isinstance(data, (AsyncIterable, Iterable)):
        raise TypeError(f"put() cannot upload {type(data).__name__}")
    return _StreamSource(_iterate(data))


class AsyncObjectWriter:
    """Uploads objects into one session of one repository."""

    def __init__(self, client: AsyncClient, repository_path: str, session_id: str) -> None:
        self._client = client
        self._base = repository_path
        self._session_id = session_id

    async def put(
        self,
        path: str,
        data: PutData,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        part_size: int | None = None,
        progress: ProgressHook | None = None,
    ) -> PutObjectResult:
        part_size = part_size or MULTIPART_PART_SIZE
        if part_size < 1:
            raise ValueError("part_size must be positive")
        source = open_source(data)
        try:
            single = (
                source.size is not None and source.size < part_size
            ) or self._client in _MULTIPART_UNSUPPORTED
            if not single:
                try:
                    return await self._put_multipart(
                        path, source, part_size, content_type, metadata, progress
                    )
                except APIError as exc:
                    restartable = not isinstance(source, _StreamSource) or not source.started
                    if exc.status_code != 501 or not restartable:
                        raise
                    _MULTIPART_UNSUPPORTED.add(self._client)
            return await self._put_single(path, source, content_type, metadata, progress)
        finally:
            source.close()

    def _params(self, path: str, **extra: Any) -> dict[str, Any]:
        return {"session_id": self._session_id, "path": path, **extra}

    async def _send(
        self,
        url: str,
        body: bytes | _Body | AsyncIterator[bytes],
        length: int | None,
        progress: ProgressHook | None,
    ) -> httpx.Response:
        """PUT a body to a presigned URL (no Authorization) under the client's limiter."""
        headers = {"Content-Type": _OCTET_STREAM}
        if length is not None:
            headers["Content-Length"] = str(length)
        async with self._client.limiter:
            response = await self._client.request(
                "PUT",
                url,
                content=body,
                headers=headers,
                timeout=_UPLOAD_TIMEOUT,
                authenticated=False,
            )
        if progress is not None and isinstance(body, bytes):
            progress(len(body))
        return response

    async def _put_single(
        self,
        path: str,
        source: _Source,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        progress: ProgressHook | None,
    ) -> PutObjectResult:
        ticket = structure(
            self._client.converter,
            await self._client.request_json(
                "PUT", f"{self._base}/object", params=self._params(path)
            ),
            UploadTicket,
        )
        size = source.size
        body: bytes | _Body | AsyncIterator[bytes]
        if isinstance(source, _StreamSource):
            body = source.stream()
        else:
            assert size is not None
            body = source.body(0, size, progress)
        response = await self._send(ticket.upload_url, body, size, progress)
        etag = unquote_etag(response.headers.get("etag")) or ""
        request: dict[str, Any] = {
            "upload_token": ticket.upload_token,
            "content_type": content_type or _OCTET_STREAM,
        }
        if etag:
            request["checksum"] = etag
        if size is not None:
            request["size_bytes"] = size
        if metadata:
            request["metadata"] = dict(metadata)
        finalized = structure(
            self._client.converter,
            await self._client.request_json(
                "POST", f"{self._base}/object/finalize", params=self._params(path), json=request
            ),
            FinalizedObject,
        )
        return PutObjectResult(path=finalized.path or path, etag=finalized.etag or etag)

    async def _put_multipart(
        self,
        path: str,
        source: _Source,
        part_size: int,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        progress: ProgressHook | None,
    ) -> PutObjectResult:
        upload = structure(
            self._client.converter,
            await self._client.request_json(
                "POST", f"{self._base}/object/multipart", params=self._params(path)
            ),
            MultipartUpload,
        )
        try:
            if isinstance(source, _StreamSource):
                etags: list[str] = []
                total = 0
                async for chunk in source.parts(part_size):
                    etags.append(
                        await self._upload_part(path, upload, len(etags) + 1, chunk, progress)
                    )
                    total += len(chunk)
            else:
                assert source.size is not None
                total = source.size
                funcs = [
                    partial(
                        self._upload_part,
                        path,
                        upload,
                        number,
                        source.body(offset, min(part_size, total - offset), progress),
                        progress,
                    )
                    for number, offset in enumerate(range(0, max(total, 1), part_size), start=1)
                ]
                etags = await agather_bounded(funcs, min(PART_CONCURRENCY, len(funcs)))
            request: dict[str, Any] = {
                "upload_id": upload.upload_id,
                "upload_token": upload.upload_token,
                "parts": [
                    {"part_number": number, "etag": etag}
                    for number, etag in enumerate(etags, start=1)
                ],
                "content_type": content_type or _OCTET_STREAM,
                "size_bytes": total,
            }
            if metadata:
                request["metadata"] = dict(metadata)
            completed = structure(
                self._client.converter,
                await self._client.request_json(
                    "POST",
                    f"{self._base}/object/multipart/complete",
                    params=self._params(path),
                    json=request,
                ),
                FinalizedObject,
            )
        except Exception:
            await self._abort(path, upload)
            raise
        return PutObjectResult(path=completed.path or path, etag=completed.etag)

    async def _upload_part(
        self,
        path: str,
        upload: MultipartUpload,
        number: int,
        body: bytes | _Body,
        progress: ProgressHook | None,
    ) -> str:
        ticket = structure(
            self._client.converter,
            await self._client.request_json(
                "GET",
                f"{self._base}/object/multipart/part",
                params=self._params(
                    path,
                    upload_id=upload.upload_id,
                    upload_token=upload.upload_token,
                    part_number=number,
                ),
            ),
            PartTicket,
        )
        length = len(body) if isinstance(body, bytes) else body.length
        response = await self._send(ticket.upload_url, body, length, progress)
        return str(response.headers.get("etag", ""))

    async def _abort(self, path: str, upload: MultipartUpload) -> None:
        """Abort a failed multipart upload, retried like any idempotent request (aborting
        twice is harmless); its own failure must not hide the upload's."""
        with contextlib.suppress(Exception):
            await self._client.request(
                "DELETE",
                f"{self._base}/object/multipart",
                params=self._params(
                    path, upload_id=upload.upload_id, upload_token=upload.upload_token
                ),
            )

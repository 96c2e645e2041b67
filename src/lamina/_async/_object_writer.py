"""Object uploads: one request for a small object where the server offers it, else one
presigned PUT below the part size, concurrent multipart at or above it.

Small puts into one session that run at the same time share requests where the server offers
batched uploads (:class:`~lamina._concurrency.AsyncBatcher`): a put that finds none of them
under way goes alone, as a one-request put; those that come while one is out wait for it, then
go together in one batched upload. A batch the server refuses (or that fails) is sent again one
object at a time, so that each put answers exactly what it would have alone.

The input is wrapped by :func:`lamina._sources.open_source`: files and ``Path`` inputs are
read in slices, never whole; inputs of unknown size (iterables, non-seekable files) go
multipart, one part in memory at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx

from lamina import _tar as tar
from lamina._async._capabilities import capabilities, forget
from lamina._concurrency import AsyncBatcher, agather_bounded, aiterate
from lamina._converter import structure
from lamina._errors import APIError, InvalidArgumentError, LaminaError
from lamina._sources import (
    MemorySource,
    ProgressHook,
    PutData,
    Slice,
    Source,
    StreamSource,
    open_source,
    put_chunk,
)
from lamina.models.objects import (
    BatchWritten,
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
#: Parts of one object in flight at once (a part read as it is sent also holds a slot of the
#: client's limiter).
PART_CONCURRENCY = 8

# Presigned PUTs send large bodies: no write timeout, bounded connect and read.
_UPLOAD_TIMEOUT = httpx.Timeout(connect=30.0, read=120.0, write=None, pool=30.0)
_OCTET_STREAM = "application/octet-stream"
T = TypeVar("T")
#: The header of a one-request put that carries the object's attributes (JSON).
ATTRIBUTES_HEADER = "X-Lamina-Attributes"
#: Concurrent puts of objects up to this size into one session share batched uploads.
SHARED_PUT_BYTES = 256 * 1024
#: Most objects of one batched upload the SDK sends (the server may take fewer).
BATCH_OBJECTS = 1000
#: A batched upload the SDK sends holds about this many bytes at most (objects and headers).
BATCH_BYTES = 4 * 1024 * 1024
_HEADER_BYTES = 1024  # what a member's headers add, about


class AsyncBody:
    """A :class:`~lamina._sources.Slice` as a request body the client can send (re-iterable)."""

    def __init__(self, part: Slice) -> None:
        self.part = part

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.part.chunks():
            yield chunk


async def _stream_chunks(source: StreamSource) -> AsyncIterator[bytes]:
    """The pieces of a stream input, as bytes (empty pieces skipped), read once."""
    source.started = True
    async for chunk in aiterate(cast("AsyncIterable[Any]", source.chunks)):
        if chunk:
            yield put_chunk(chunk)


async def _parts(source: StreamSource, part_size: int) -> AsyncIterator[bytes]:
    """A stream input in parts of ``part_size`` bytes; the last may be shorter (one empty
    part if there is no data)."""
    buffer = bytearray()
    sent = False
    async for chunk in _stream_chunks(source):
        buffer += chunk
        while len(buffer) >= part_size:
            yield bytes(buffer[:part_size])
            del buffer[:part_size]
            sent = True
    if buffer or not sent:
        yield bytes(buffer)


def _body(source: Source, offset: int, length: int, hook: ProgressHook | None) -> bytes | AsyncBody:
    body = source.body(offset, length, hook)
    return body if isinstance(body, bytes) else AsyncBody(body)


@dataclass(frozen=True)
class _SmallPut:
    """A small put waiting to share a request with others into the same session."""

    path: str
    data: bytes
    content_type: str | None
    metadata: Mapping[str, str] | None
    progress: ProgressHook | None


def batches(items: Iterable[T], size: Callable[[T], int], most: int) -> list[list[T]]:
    """``items``, in order, in batches of at most ``most`` objects and about
    :data:`BATCH_BYTES` bytes (each object with its headers)."""
    grouped: list[list[T]] = []
    held = 0
    for item in items:
        weight = size(item) + _HEADER_BYTES
        if not grouped or len(grouped[-1]) == most or held + weight > BATCH_BYTES:
            grouped.append([])
            held = 0
        grouped[-1].append(item)
        held += weight
    return grouped


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
        if part_size is None:
            part_size = MULTIPART_PART_SIZE
        if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
            raise InvalidArgumentError(
                f"part_size must be a positive number of bytes (or None for 64 MiB), "
                f"got {part_size!r}"
            )
        source = open_source(data, AsyncIterable)
        try:
            if isinstance(source, Source) and source.size < part_size:
                extensions = (await capabilities(self._client)).extensions
                batch, one = extensions.batch_upload, extensions.one_request_put
                shared = min(SHARED_PUT_BYTES, batch.max_object_bytes) if batch else -1
                if source.size <= shared and one is not None:
                    whole = source.body(0, source.size, None)
                    assert isinstance(whole, bytes)  # a body this small is read whole
                    item = _SmallPut(path, whole, content_type, metadata, progress)
                    return await self._share(item)
                if one is not None and source.size <= one.max_object_bytes:
                    put = await self._put_one_request(
                        path, source, content_type, metadata, progress
                    )
                    if put is not None:
                        return put
            single = (
                isinstance(source, Source) and source.size < part_size
            ) or not self._client._multipart_supported
            if not single:
                try:
                    return await self._put_multipart(
                        path, source, part_size, content_type, metadata, progress
                    )
                except APIError as exc:
                    restartable = not isinstance(source, StreamSource) or not source.started
                    if exc.status_code != 501 or not restartable:
                        raise
                    self._client._multipart_supported = False
            return await self._put_single(path, source, content_type, metadata, progress)
        finally:
            source.close()

    async def _share(self, item: _SmallPut) -> PutObjectResult:
        """Puts ``item`` with the other small puts into this session under way meanwhile."""
        key = (self._base, self._session_id)
        batcher = self._client._small_puts.get(key)
        if batcher is None:
            batcher = self._client._small_puts[key] = AsyncBatcher(self._send_small)
        try:
            result: PutObjectResult = await batcher.submit(item)
        finally:
            if batcher.idle and self._client._small_puts.get(key) is batcher:
                # (a put that took it meanwhile, on another thread, still sends with it)
                self._client._small_puts.pop(key, None)
        return result

    async def _send_small(self, items: list[_SmallPut]) -> list[PutObjectResult | Exception]:
        """Each item's result or error: one alone as a one-request put, several in batched
        uploads, and those of a batch that did not land one by one."""
        if len(items) == 1:
            return [await self._alone(items[0])]
        batch = (await capabilities(self._client)).extensions.batch_upload
        most = min(BATCH_OBJECTS, batch.max_objects) if batch else 1
        groups = batches(items, lambda item: len(item.data), most)
        sends = [partial(self._batched, group) for group in groups]
        sent = await agather_bounded(sends, len(sends))
        return [outcome for outcomes in sent for outcome in outcomes]

    async def _batched(self, items: list[_SmallPut]) -> list[PutObjectResult | Exception]:
        if len(items) > 1:
            members = [
                tar.member(item.path, item.data, tar.attributes(item.content_type, item.metadata))
                for item in items
            ]
            try:
                results = await self.put_batch(members)
            except LaminaError as exc:  # each is sent alone below, and answers for itself
                if isinstance(exc, APIError) and exc.status_code == 501:
                    forget(self._client)
            else:
                for item in items:
                    if item.progress is not None:
                        item.progress(len(item.data))
                return list(results)
        alone = [partial(self._alone, item) for item in items]
        return await agather_bounded(alone, len(alone))

    async def _alone(self, item: _SmallPut) -> PutObjectResult | Exception:
        """One small put by itself: its result, or its error."""
        source = MemorySource(item.data)
        described = (item.path, source, item.content_type, item.metadata, item.progress)
        try:
            return await self._put_one_request(*described) or await self._put_single(*described)
        except LaminaError as exc:
            return exc

    def _params(self, path: str, **extra: Any) -> dict[str, Any]:
        return {"session_id": self._session_id, "path": path, **extra}

    async def _send(
        self,
        url: str,
        body: bytes | AsyncBody | AsyncIterator[bytes],
        length: int | None,
        progress: ProgressHook | None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Mapping[str, str]:
        """PUT a body to a presigned URL (no Authorization), with the headers its ticket
        names; returns the response's headers. A body read as it is sent holds a slot of the
        client's limiter, which bounds the bytes in flight (one already in memory is bounded
        by the connection pool like any request)."""
        headers = {**(extra_headers or {}), "Content-Type": _OCTET_STREAM}
        if length is not None:
            headers["Content-Length"] = str(length)
        if isinstance(body, bytes):
            response_headers = await self._upload(url, body, headers)
            if progress is not None:
                progress(len(body))
            return response_headers
        async with self._client.limiter:
            return await self._upload(url, body, headers)

    async def _upload(
        self, url: str, body: bytes | AsyncBody | AsyncIterator[bytes], headers: dict[str, str]
    ) -> Mapping[str, str]:
        return await self._client.request_headers(
            "PUT", url, content=body, headers=headers, timeout=_UPLOAD_TIMEOUT, authenticated=False
        )

    async def _put_one_request(
        self,
        path: str,
        source: Source,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        progress: ProgressHook | None,
    ) -> PutObjectResult | None:
        """``POST .../object/upload`` (a Lamina extension): the bytes and their attributes in
        one request, staged when it answers. Safe to repeat, so it is retried as a PUT is.
        ``None`` when the server no longer offers it (it answers 501), after which the client
        keeps to the contract."""
        headers = {"Content-Type": _OCTET_STREAM, "Content-Length": str(source.size)}
        described = tar.attributes(content_type, metadata)
        if described is not None:
            headers[ATTRIBUTES_HEADER] = described
        body = _body(source, 0, source.size, progress)
        # A body in memory is bounded by the pool, as _send's are; one read as sent holds a slot.
        slot = contextlib.nullcontext() if isinstance(body, bytes) else self._client.limiter
        try:
            async with slot:
                data = await self._client.request_json(
                    "POST",
                    f"{self._base}/object/upload",
                    params=self._params(path),
                    content=body,
                    headers=headers,
                    timeout=_UPLOAD_TIMEOUT,
                    idempotent=True,
                )
        except APIError as exc:
            if exc.status_code != 501:
                raise
            forget(self._client)
            return None
        if progress is not None and isinstance(body, bytes):
            progress(len(body))
        written = structure(self._client.converter, data, FinalizedObject)
        return PutObjectResult(path=written.path or path, etag=written.etag)

    async def put_batch(self, members: list[bytes]) -> list[PutObjectResult]:
        """``POST .../objects/upload`` (a Lamina extension): the tar ``members``
        (:func:`lamina._tar.member`) in one archive, staged all together or not at all. A
        refused object makes it raise the :class:`~lamina.APIError` whose ``failures`` name
        every object refused. Safe to repeat, so it is retried as a PUT is."""
        members.append(tar.END)
        async with self._client.limiter:
            data = await self._client.request_json(
                "POST",
                f"{self._base}/objects/upload",
                params={"session_id": self._session_id},
                content=b"".join(members),
                headers={"Content-Type": "application/x-tar"},
                timeout=_UPLOAD_TIMEOUT,
                idempotent=True,
            )
        written = structure(self._client.converter, data, BatchWritten)
        return [PutObjectResult(path=item.path, etag=item.etag) for item in written.objects]

    async def _put_single(
        self,
        path: str,
        source: Source | StreamSource,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        progress: ProgressHook | None,
    ) -> PutObjectResult:
        ticket = structure(
            self._client.converter,
            await self._client.request_json(
                "PUT", f"{self._base}/object", params=self._params(path, in_place="true")
            ),
            UploadTicket,
        )
        size: int | None = None
        body: bytes | AsyncBody | AsyncIterator[bytes]
        if isinstance(source, StreamSource):
            body = _stream_chunks(source)
        else:
            size = source.size
            body = _body(source, 0, size, progress)
        headers = await self._send(ticket.upload_url, body, size, progress, ticket.upload_headers)
        etag = unquote_etag(headers.get("etag")) or ""
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
        source: Source | StreamSource,
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
            if isinstance(source, StreamSource):
                etags: list[str] = []
                total = 0
                async for chunk in _parts(source, part_size):
                    etags.append(
                        await self._upload_part(path, upload, len(etags) + 1, chunk, progress)
                    )
                    total += len(chunk)
            else:
                total = source.size
                funcs = [
                    partial(
                        self._upload_part,
                        path,
                        upload,
                        number,
                        _body(source, offset, min(part_size, total - offset), progress),
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
        body: bytes | AsyncBody,
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
        length = len(body) if isinstance(body, bytes) else body.part.length
        headers = await self._send(ticket.upload_url, body, length, progress)
        return str(headers.get("etag", ""))

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

"""Objects: read at HEAD, at a commit, or in a session; written only in a session."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina._async._bulk import download_dir, put_many, upload_dir
from lamina._async._object_reader import AsyncObjectReader
from lamina._async._object_writer import AsyncObjectWriter
from lamina._async._pager import AsyncPager
from lamina._converter import structure
from lamina._sources import PutData
from lamina.models.objects import (
    CopyObjectResult,
    DeletedObjects,
    ListingEntry,
    ObjectMetadata,
    PutItem,
    PutObjectResult,
    object_metadata_from_headers,
)
from lamina.models.transfers import TransferProgress

if TYPE_CHECKING:
    from lamina._async.resources.repositories import AsyncRepository

#: Most paths one ``POST .../objects/delete`` accepts; ``delete_many`` sends batches of this.
DELETE_BATCH = 1000


class AsyncReadOnlyObjects:
    """Objects at the latest commit, or at one commit (``commit.objects``): list and read."""

    def __init__(self, repository: AsyncRepository, *, ref: str | None = None) -> None:
        self._repository = repository
        self._client = repository.client
        self._scope: dict[str, str] = {"ref": ref} if ref is not None else {}
        self._object_path = f"{repository.api_path}/object"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._repository.path!r}, {self._scope})"

    def _params(self, **params: Any) -> dict[str, Any]:
        return {**self._scope, **params}

    def list(
        self,
        *,
        prefix: str | None = None,
        delimiter: str | None = None,
        after: str | None = None,
        amount: int | None = None,
        page_size: int = 100,
    ) -> AsyncPager[ListingEntry]:
        """Objects in path order; with a ``delimiter`` (``"/"``), the paths that continue past
        it under ``prefix`` are rolled up into one ``type="prefix"`` entry each."""
        params = self._params()
        if prefix is not None:
            params["prefix"] = prefix
        if delimiter is not None:
            params["delimiter"] = delimiter
        return self._client.paginate(
            f"{self._repository.api_path}/objects",
            ListingEntry,
            params=params,
            amount=amount,
            page_size=page_size,
            after=after,
        )

    def get(
        self,
        path: str,
        *,
        cache: bool = True,
        byte_range: tuple[int, int | None] | None = None,
    ) -> AsyncObjectReader:
        """A streaming reader of the object's bytes (the request goes out on first use).

        ``byte_range=(start, end)`` reads bytes ``start`` to ``end`` inclusive
        (``end=None``: to the end of the object); a start past the end raises
        :class:`~lamina.RangeNotSatisfiableError`. ``cache`` is accepted for ``tilde-sdk``
        compatibility and changes nothing: reads consume the body as a file's do (a second
        ``read()`` returns ``b""``)::

            with objects.get("logs/app.log", byte_range=(0, 1023)) as f:
                head = f.read()
        """
        return AsyncObjectReader(
            self._client,
            self._object_path,
            self._params(path=path),
            byte_range=byte_range,
        )

    async def head(self, path: str) -> ObjectMetadata:
        """The object's ETag, content type, size, modification time and user metadata."""
        headers = await self._client.request_headers(
            "HEAD", self._object_path, params=self._params(path=path)
        )
        return object_metadata_from_headers(headers)

    async def download_dir(
        self,
        prefix: str,
        local_dir: str | Path,
        *,
        concurrency: int = 8,
        progress: Callable[[TransferProgress], None] | None = None,
    ) -> builtins.list[Path]:
        """Download every object under ``prefix`` into ``local_dir`` (paths below the prefix
        become paths below the folder); returns the files written."""
        return await download_dir(
            self, prefix, Path(local_dir), concurrency=concurrency, progress=progress
        )


class AsyncSessionObjects(AsyncReadOnlyObjects):
    """Objects in a session: reads see its staged changes; writes are staged in it."""

    def __init__(self, repository: AsyncRepository, session_id: str) -> None:
        super().__init__(repository)
        self._session_id = session_id
        self._scope = {"session_id": session_id}

    async def put(
        self,
        path: str,
        data: PutData,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        part_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PutObjectResult:
        """Upload ``data`` to ``path``.

        ``data`` may be bytes-like, a binary file, a ``pathlib.Path`` or an iterable of bytes
        (also an async iterable with the async client). Objects below ``part_size`` (64 MiB)
        go in one upload; larger ones, and data of unknown size, in parts of ``part_size``
        sent concurrently. Files are streamed from disk, never read whole into memory.
        ``metadata`` is user metadata (returned by ``head()`` and in listings).
        ``progress`` is called with each count of bytes as it is sent (from several parts at
        once for a multipart upload; a part that is sent again is counted again).
        """
        return await self._writer().put(
            path,
            data,
            content_type=content_type,
            metadata=metadata,
            part_size=part_size,
            progress=progress,
        )

    async def put_many(
        self,
        items: Iterable[PutItem | tuple[str, PutData]],
        *,
        concurrency: int = 8,
        progress: Callable[[TransferProgress], None] | None = None,
    ) -> builtins.list[PutObjectResult]:
        """Upload many objects: each item a :class:`~lamina.PutItem` (path, data, and
        optionally content type and metadata) or a ``(path, data)`` pair; returns the results
        in the items' order.

        Where the server offers batched uploads (a Lamina extension), objects of known size
        (bytes-like data, a ``Path``) up to its limit go many to a request, each request
        staged all together or not at all; the others are put one by one, ``concurrency``
        requests at a time. When the server refuses objects of a batch, nothing of that batch
        is staged and the :class:`~lamina.APIError` raised names each in ``failures``
        (path, status, code, message); batches answered before stay staged, none is sent
        after. See docs/uploads.md.
        """
        return await put_many(self, items, concurrency=concurrency, progress=progress)

    def _writer(self) -> AsyncObjectWriter:
        return AsyncObjectWriter(self._client, self._repository.api_path, self._session_id)

    async def copy(self, source_path: str, destination_path: str) -> CopyObjectResult:
        """Stage a copy of ``source_path`` at ``destination_path`` (no bytes move)."""
        data = await self._client.request_json(
            "POST",
            f"{self._object_path}/copy",
            params={
                "session_id": self._session_id,
                "source_path": source_path,
                "destination_path": destination_path,
            },
        )
        return structure(self._client.converter, data, CopyObjectResult)

    async def delete(self, path: str) -> None:
        """Stage the deletion of ``path``."""
        await self._client.request("DELETE", self._object_path, params=self._params(path=path))

    async def delete_many(self, paths: Iterable[str]) -> int:
        """Stage the deletion of many paths (in batches of 1000); returns how many existed."""
        batch: list[str] = []
        deleted = 0
        for path in paths:
            batch.append(path)
            if len(batch) == DELETE_BATCH:
                deleted += await self._delete_batch(batch)
                batch = []
        if batch:
            deleted += await self._delete_batch(batch)
        return deleted

    async def _delete_batch(self, paths: list[str]) -> int:
        data = await self._client.request_json(
            "POST",
            f"{self._repository.api_path}/objects/delete",
            params={"session_id": self._session_id},
            json={"paths": paths},
        )
        return structure(self._client.converter, data, DeletedObjects).deleted

    async def upload_dir(
        self,
        local_dir: str | Path,
        prefix: str = "",
        *,
        concurrency: int = 8,
        progress: Callable[[TransferProgress], None] | None = None,
    ) -> builtins.list[PutObjectResult]:
        """Upload every file under ``local_dir`` to ``prefix`` + its relative path (with
        ``/`` separators); returns the results in path order."""
        return await upload_dir(
            self, Path(local_dir), prefix, concurrency=concurrency, progress=progress
        )

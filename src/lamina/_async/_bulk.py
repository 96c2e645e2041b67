"""Bulk transfers: ``put_many``, ``upload_dir`` and ``download_dir``, with bounded concurrency
and progress.

``put_many`` (and ``upload_dir``, which puts a folder's files through it) sends small objects
in batches where the server offers batched uploads (a Lamina extension, docs/uploads.md):
consecutive objects of known size up to the server's limit go in one tar archive of at most
:data:`~lamina._async._object_writer.BATCH_OBJECTS` objects and about
:data:`~lamina._async._object_writer.BATCH_BYTES` bytes, which the server stages
all together or not at all. Larger objects, objects of unknown size, and every object against
a server without the extension, are put one by one.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from lamina import _tar as tar
from lamina._async._capabilities import capabilities, forget
from lamina._async._object_writer import BATCH_OBJECTS, batches
from lamina._concurrency import agather_bounded
from lamina._errors import APIError, InvalidArgumentTypeError, LaminaError
from lamina.models.capabilities import BatchUpload
from lamina.models.objects import ListingEntry, PutItem, PutObjectResult
from lamina.models.transfers import TransferProgress

if TYPE_CHECKING:
    from lamina._async._object_writer import AsyncObjectWriter
    from lamina._async.resources.objects import AsyncReadOnlyObjects, AsyncSessionObjects

ProgressCallback = Callable[[TransferProgress], None]


class _Tracker:
    """Counts bytes and files across concurrent transfers and reports every change."""

    def __init__(self, bytes_total: int, files_total: int, callback: ProgressCallback | None):
        self._bytes_total = bytes_total
        self._files_total = files_total
        self._bytes_done = 0
        self._files_done = 0
        self._callback = callback
        self._lock = threading.Lock()
        self._report()

    def _report(self) -> None:
        if self._callback is not None:
            self._callback(
                TransferProgress(
                    bytes_done=self._bytes_done,
                    bytes_total=self._bytes_total,
                    files_done=self._files_done,
                    files_total=self._files_total,
                )
            )

    def add_bytes(self, count: int) -> None:
        with self._lock:
            self._bytes_done += count
            self._report()

    def file_done(self) -> None:
        with self._lock:
            self._files_done += 1
            self._report()


def put_item(item: object) -> PutItem:
    """An item of ``put_many``: a :class:`PutItem`, or a ``(path, data)`` pair."""
    if isinstance(item, PutItem):
        return item
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
        return PutItem(path=item[0], data=item[1])
    raise InvalidArgumentTypeError(
        f"put_many() takes PutItem objects or (path, data) pairs, got {type(item).__name__}"
    )


def _known_size(data: object) -> int | None:
    """The size of data that is read whole for a batch: bytes-like or a file by its path."""
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if isinstance(data, memoryview):
        return data.nbytes
    if isinstance(data, Path):
        try:
            return data.stat().st_size
        except OSError:
            return None  # put() reports it
    return None


def _read(data: object) -> bytes:
    if isinstance(data, Path):
        return data.read_bytes()
    assert isinstance(data, (bytes, bytearray, memoryview))
    return bytes(data)


async def put_many(
    objects: AsyncSessionObjects,
    items: Iterable[object],
    *,
    concurrency: int,
    progress: ProgressCallback | None,
) -> list[PutObjectResult]:
    """Put ``items`` (:func:`put_item`); the results in their order."""
    sized = [(item, _known_size(item.data)) for item in map(put_item, items)]
    tracker = _Tracker(sum(size or 0 for _, size in sized), len(sized), progress)
    return await _put_items(objects, sized, concurrency=concurrency, tracker=tracker)


async def _put_items(
    objects: AsyncSessionObjects,
    items: list[tuple[PutItem, int | None]],
    *,
    concurrency: int,
    tracker: _Tracker,
) -> list[PutObjectResult]:
    """Put ``items``, each with its size where it is known (the data is read whole for a
    batch); the results in their order. A batch the server refuses raises its
    :class:`~lamina.APIError` (``failures`` names what it refused; nothing of that batch is
    staged), after which no further batch is sent."""
    writer = objects._writer()
    batch = (await capabilities(objects._client)).extensions.batch_upload
    plan: list[PutItem | list[tuple[PutItem, int]]] = []
    run: list[tuple[PutItem, int]] = []  # consecutive objects that go in batches
    for item, size in items:
        if batch is not None and size is not None and size <= batch.max_object_bytes:
            run.append((item, size))
            continue
        plan += _batched(run, batch)
        run = []
        plan.append(item)
    plan += _batched(run, batch)
    funcs = [partial(_put_planned, writer, planned, tracker) for planned in plan]
    results = await agather_bounded(funcs, concurrency) if funcs else []
    return [result for done in results for result in done]


def _batched(
    run: list[tuple[PutItem, int]], batch: BatchUpload | None
) -> list[list[tuple[PutItem, int]]]:
    if not run or batch is None:
        return []
    return batches(run, lambda sized: sized[1], min(BATCH_OBJECTS, batch.max_objects))


async def _put_planned(
    writer: AsyncObjectWriter,
    planned: PutItem | list[tuple[PutItem, int]],
    tracker: _Tracker,
) -> list[PutObjectResult]:
    if isinstance(planned, PutItem):
        return await _put_one(writer, planned, tracker)
    return await _put_batch(writer, planned, tracker)


async def _put_one(
    writer: AsyncObjectWriter, item: PutItem, tracker: _Tracker
) -> list[PutObjectResult]:
    result = await writer.put(
        item.path,
        item.data,
        content_type=item.content_type,
        metadata=item.metadata,
        progress=tracker.add_bytes,
    )
    tracker.file_done()
    return [result]


async def _put_batch(
    writer: AsyncObjectWriter, group: list[tuple[PutItem, int]], tracker: _Tracker
) -> list[PutObjectResult]:
    members = [
        tar.member(item.path, _read(item.data), tar.attributes(item.content_type, item.metadata))
        for item, _ in group
    ]
    try:
        results = await writer.put_batch(members)
    except APIError as exc:
        if exc.status_code != 501:
            raise
        forget(writer._client)  # the server no longer offers it: one by one
        return [result for item, _ in group for result in await _put_one(writer, item, tracker)]
    for _, size in group:
        tracker.add_bytes(size)
        tracker.file_done()
    return results


def _folder_prefix(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


async def upload_dir(
    objects: AsyncSessionObjects,
    local_dir: Path,
    prefix: str,
    *,
    concurrency: int,
    progress: ProgressCallback | None,
) -> list[PutObjectResult]:
    """Upload every file under ``local_dir`` to ``prefix`` + its relative POSIX path."""
    if not local_dir.is_dir():
        raise LaminaError(f"upload_dir: {str(local_dir)!r} is not a directory")
    prefix = _folder_prefix(prefix)
    files = _files(local_dir)
    tracker = _Tracker(sum(size or 0 for _, _, size in files), len(files), progress)
    items = [(PutItem(path=prefix + name, data=Path(path)), size) for name, path, size in files]
    return await _put_items(objects, items, concurrency=concurrency, tracker=tracker)


def _files(local_dir: Path) -> list[tuple[str, str, int | None]]:
    """``(relative POSIX path, path, size)`` of each file under ``local_dir`` (a link to a
    file counts; links to folders are not followed), in path order. A file that cannot be
    looked at has no size: its ``put`` reports why."""
    found: list[tuple[str, str, int | None]] = []
    folders = [(os.fspath(local_dir), "")]
    while folders:
        folder, relative = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except PermissionError:
            continue  # as pathlib's rglob: a folder that cannot be listed is left out
        for entry in entries:
            name = relative + entry.name
            if entry.is_dir(follow_symlinks=False):
                folders.append((entry.path, name + "/"))
            elif entry.is_file():
                try:
                    size: int | None = entry.stat().st_size
                except OSError:
                    size = None
                found.append((name, entry.path, size))
    found.sort(key=lambda file: file[0].split("/"))
    return found


async def download_dir(
    objects: AsyncReadOnlyObjects,
    prefix: str,
    local_dir: Path,
    *,
    concurrency: int,
    progress: ProgressCallback | None,
) -> list[Path]:
    """Download every object under ``prefix`` to ``local_dir`` / its path below the prefix."""
    prefix = _folder_prefix(prefix)
    entries = [
        entry
        async for entry in objects.list(prefix=prefix or None, page_size=1000)
        if entry.type == "object"
    ]
    root = local_dir.resolve()
    targets = [_local_target(root, entry.path[len(prefix) :]) for entry in entries]
    tracker = _Tracker(
        sum(entry.entry.size for entry in entries if entry.entry is not None),
        len(entries),
        progress,
    )
    funcs = [
        partial(_download_one, objects, entry, target, tracker)
        for entry, target in zip(entries, targets, strict=True)
    ]
    return await agather_bounded(funcs, concurrency)


def _local_target(root: Path, relative: str) -> Path:
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise LaminaError(f"download_dir: object path {relative!r} has no safe local name")
    return root.joinpath(*parts)


async def _download_one(
    objects: AsyncReadOnlyObjects, entry: ListingEntry, target: Path, tracker: _Tracker
) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial_file = target.with_name(f".{target.name}.lamina-part")
    try:
        with partial_file.open("wb") as out:
            async with objects.get(entry.path, cache=False) as reader:
                async for chunk in reader.iter_bytes(None):
                    out.write(chunk)
                    tracker.add_bytes(len(chunk))
        os.replace(partial_file, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial_file.unlink()
        raise
    tracker.file_done()
    return target

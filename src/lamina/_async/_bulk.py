"""Folder transfers: ``upload_dir`` and ``download_dir`` with bounded concurrency and progress."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from lamina._concurrency import agather_bounded
from lamina._errors import LaminaError
from lamina.models.objects import ListingEntry, PutObjectResult
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
    files = sorted(path for path in local_dir.rglob("*") if path.is_file())
    tracker = _Tracker(sum(path.stat().st_size for path in files), len(files), progress)
    writer = objects._writer()
    funcs = [
        partial(_upload_one, writer, prefix + path.relative_to(local_dir).as_posix(), path, tracker)
        for path in files
    ]
    return await agather_bounded(funcs, concurrency)


async def _upload_one(
    writer: AsyncObjectWriter, path: str, file: Path, tracker: _Tracker
) -> PutObjectResult:
    result = await writer.put(path, file, progress=tracker.add_bytes)
    tracker.file_done()
    return result


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

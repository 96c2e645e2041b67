"""Receiving an upload's bytes into a file of the local store.

A body is read in blocks of :data:`CHUNK_SIZE` bytes or more. Each block is written and hashed
in two worker threads at once while the next block is received (not hashed when the caller
knows the MD5 already); then the file is fsynced and hard-linked into place (never replacing a
name), and its ``tmp/`` name dropped.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
from collections.abc import AsyncIterator, Callable

import anyio
from anyio import to_thread
from anyio.abc import TaskGroup

CHUNK_SIZE = 1024 * 1024  # uploads are written and hashed in blocks of this size (or more)

_temp_names = itertools.count()


class TempFile:
    """A file under ``tmp/`` that is written, hashed, fsynced and linked into place.

    :meth:`write` and :meth:`hash` of one block may run at once, in two threads.
    """

    def __init__(self, tmp_dir: str, *, hashed: bool = True) -> None:
        self.path = os.path.join(tmp_dir, f"{os.getpid()}-{next(_temp_names)}")
        self.fd = -1
        self.size = 0
        self.hashed = hashed
        self.md5 = hashlib.md5()

    def write(self, data: bytes) -> None:
        if self.fd < 0:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self.size += len(data)
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def hash(self, data: bytes) -> None:
        self.md5.update(data)

    def finish(self, data: bytes, place: Callable[[TempFile], None]) -> None:
        """Writes and hashes the last block, then ``place`` links the file into place."""
        self.write(data)
        if self.hashed:
            self.hash(data)
        place(self)

    def link(self, final: str) -> None:
        """fsync, then hard-link to ``final`` (never replacing it). The new directory entry is
        not fsynced here: claiming the blob (or completing its multipart upload) does that."""
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1
        try:
            os.link(self.path, final)
        finally:
            os.unlink(self.path)

    def remove(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


async def next_block(stream: AsyncIterator[bytes]) -> tuple[bytes, bool]:
    """The next ``CHUNK_SIZE`` or more bytes of ``stream`` and True, or the rest of it and
    False."""
    parts: list[bytes] = []
    size = 0
    async for chunk in stream:
        parts.append(chunk)
        size += len(chunk)
        if size >= CHUNK_SIZE:
            return b"".join(parts), True
    return b"".join(parts), False


class _Job:
    """A blocking call started in a worker thread now, its outcome awaited later."""

    def __init__(self, group: TaskGroup, function: Callable[[bytes], None], data: bytes) -> None:
        self._done = anyio.Event()
        self._error: Exception | None = None
        group.start_soon(self._run, function, data)

    async def _run(self, function: Callable[[bytes], None], data: bytes) -> None:
        try:
            await to_thread.run_sync(function, data)
        except Exception as exc:
            self._error = exc
        finally:
            self._done.set()

    async def result(self) -> None:
        await self._done.wait()
        if self._error is not None:
            raise self._error


async def _write_while_receiving(
    temp: TempFile, data: bytes, stream: AsyncIterator[bytes]
) -> bytes:
    """Writes and hashes ``data`` and the full blocks of ``stream`` after it, each block in two
    worker threads at once while the next one is received; returns the last, short block (not
    written yet)."""
    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        try:
            more = True
            while more:
                jobs = [_Job(group, temp.write, data)]
                if temp.hashed:
                    jobs.append(_Job(group, temp.hash, data))
                data, more = await next_block(stream)
                for job in jobs:
                    await job.result()
        except Exception as exc:  # re-raised below as itself, not inside an exception group
            failure = exc
    # Leaving the group waited for any write still running, so the file is free to remove.
    if failure is not None:
        raise failure
    return data


async def receive(
    tmp_dir: str,
    data: bytes,
    more: bool,
    stream: AsyncIterator[bytes],
    place: Callable[[TempFile], None],
    *,
    hashed: bool = True,
) -> TempFile:
    """Streams ``data`` and, if ``more``, the rest of ``stream`` into a file under ``tmp_dir``
    (hashed, unless not ``hashed``), then ``place`` links it (in a worker thread)."""
    temp = TempFile(tmp_dir, hashed=hashed)
    try:
        if more:
            data = await _write_while_receiving(temp, data, stream)
        await to_thread.run_sync(temp.finish, data, place)
    except BaseException:
        temp.remove()
        raise
    return temp

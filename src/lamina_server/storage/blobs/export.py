"""Writing claimed blobs of the local store out as plain files (blocking).

A blob that is a whole file of its own — a single upload, or a multipart blob of one part — is
hard linked: no bytes move, whatever its size. When a link is not possible (another file
system, the file's link count at its limit) and for the other blobs the bytes are copied: a
packed blob's stretch of its pack (each pack opened once per export), a multipart blob's parts
one after the other, with ``copy_file_range`` where the kernel offers it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from lamina_server.storage.blobs.base import BlobError, BlobNotFound

FILE_MODE = 0o644
_SMALL_COPY = 1024 * 1024  # up to this, a stretch is copied with one pread and one write
_BLOCK = 4 * 1024 * 1024
_NO_LINK = {errno.EXDEV, errno.EMLINK, errno.EPERM, errno.EACCES}
_NO_COPY_RANGE = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}

Segments = list[tuple[str, int, int]]  # path, offset, size


def export_blobs(
    segments_of: Callable[[str], Segments],
    is_packed: Callable[[str], bool],
    items: Sequence[tuple[str, int, Path]],
) -> None:
    """Writes each ``(address, size, destination)``; ``segments_of`` names the pieces of files
    a blob is made of, ``is_packed`` whether it shares its file with other blobs."""
    sources: dict[str, int] = {}  # packs stay open for the whole export
    try:
        for address, size, destination in items:
            segments = segments_of(address)
            total = sum(length for _, _, length in segments)
            if total != size:
                raise BlobError(f"blob {address} is {total} bytes, not the {size} recorded")
            packed = is_packed(address)
            if not packed and len(segments) == 1 and _link(segments[0][0], destination):
                continue
            _write(address, segments, destination, sources, keep_open=packed)
    finally:
        for fd in sources.values():
            os.close(fd)


def _link(source: str, destination: Path) -> bool:
    """Hard links ``destination`` to ``source``; False when the bytes must be copied instead."""
    try:
        os.link(source, destination)
    except FileNotFoundError:
        if not os.path.exists(source):
            raise BlobNotFound(f"blob file {source} is missing") from None
        raise
    except OSError as exc:
        if exc.errno in _NO_LINK:
            return False
        raise
    if os.stat(destination).st_mode & 0o7777 != FILE_MODE:
        os.chmod(destination, FILE_MODE)
    return True


def _open_source(path: str, sources: dict[str, int], keep_open: bool) -> int:
    fd = sources.get(path)
    if fd is not None:
        return fd
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BlobNotFound(f"blob file {path} is missing") from None
    if keep_open:
        sources[path] = fd
    return fd


def _write(
    address: str, segments: Segments, destination: Path, sources: dict[str, int], keep_open: bool
) -> None:
    out = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(out, FILE_MODE)  # whatever the umask
        written = 0
        for path, offset, size in segments:
            fd = _open_source(path, sources, keep_open)
            try:
                _copy_range(address, fd, offset, size, out, written)
            finally:
                if not keep_open:
                    os.close(fd)
            written += size
    finally:
        os.close(out)


def _copy_range(address: str, fd: int, offset: int, size: int, out: int, at: int) -> None:
    """Copies bytes ``[offset, offset + size)`` of ``fd`` to ``out`` at ``at``."""
    end = offset + size
    if size > _SMALL_COPY:
        try:
            while offset < end:
                moved = os.copy_file_range(fd, out, end - offset, offset, at)
                if moved == 0:
                    raise BlobError(f"blob {address} is shorter than recorded")
                offset, at = offset + moved, at + moved
            return
        except OSError as exc:
            if exc.errno not in _NO_COPY_RANGE:
                raise
    while offset < end:
        block = os.pread(fd, min(_BLOCK, end - offset), offset)
        if not block:
            raise BlobError(f"blob {address} is shorter than recorded")
        view = memoryview(block)
        while view:
            done = os.pwrite(out, view, at)
            view, at = view[done:], at + done
        offset += len(block)

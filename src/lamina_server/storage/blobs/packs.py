"""Pack files: claimed small blobs of the local store, back to back.

A small blob's address names its stretch of a pack: ``p<pack>.<offset>.<size>`` (hex). Claims
append to a pack of this run's own — one left by another run may end in a torn write — and a
pack takes no more once it holds :data:`PACK_LIMIT` bytes or :data:`PACK_LINKS` names link to
it. A crash mid-append leaves unreferenced bytes at the end of a pack, which no store appends
to again. A deleted packed blob's stretch is punched out of its pack (:func:`punch`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import threading
from collections.abc import Callable, Sequence

from lamina_server.storage.blobs.layout import fsync_dir

PACK_LIMIT = 256 * 1024 * 1024  # a pack takes no more claims once this big
PACK_LINKS = 30000  # or once this many objects/ names link to it (file systems cap links)

_PACKED = re.compile(r"p([0-9a-f]{8})\.([0-9a-f]{12})\.([0-9a-f]{8})")
_PACK_FILE = re.compile(r"([0-9a-f]{8})\.pack")


_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (Linux)


def _fallocate() -> Callable[[int, int, int, int], int] | None:
    name = ctypes.util.find_library("c")
    call = getattr(ctypes.CDLL(name, use_errno=True), "fallocate", None) if name else None
    if call is not None:
        call.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
        call.restype = ctypes.c_int
    return call


_FALLOCATE = _fallocate()


def punch(path: str, offset: int, size: int) -> bool:
    """Frees the stretch of the pack at ``path`` (it reads as zeros from then on); False where
    the file system or platform cannot punch holes, or the pack is gone (blocking)."""
    if _FALLOCATE is None or size == 0:
        return False
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return False
    try:
        return bool(_FALLOCATE(fd, _PUNCH_HOLE, offset, size) == 0)
    finally:
        os.close(fd)


def _packed_address(pack: int, offset: int, size: int) -> str:
    return f"p{pack:08x}.{offset:012x}.{size:08x}"


def packed_segment(folder: str, address: str) -> tuple[str, int, int] | None:
    """Path, offset and size of the packed blob at ``address`` (None: not a packed address)."""
    packed = _PACKED.fullmatch(address)
    if packed is None:
        return None
    pack, offset, size = (int(group, 16) for group in packed.groups())
    return os.path.join(folder, f"{pack:08x}.pack"), offset, size


class Packs:
    """The packs in ``folder``, appended to by concurrent batches of claims (blocking)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        packs = [int(m[1], 16) for m in map(_PACK_FILE.fullmatch, os.listdir(folder)) if m]
        self._pack = max(packs, default=-1)
        self._size, self._links = PACK_LIMIT, 0  # the first append starts a pack of its own
        self._lock = threading.Lock()

    def append(self, blobs: Sequence[bytes], *, links: bool) -> tuple[int, str, list[str]]:
        """Appends ``blobs`` to the current pack (a new one when it is full): a descriptor on
        the pack, to sync and close, its path, and the blobs' addresses in order. ``links``:
        the caller links a name to the pack for each blob (which :data:`PACK_LINKS` counts)."""
        linked = len(blobs) if links else 0
        with self._lock:  # batches claim concurrently; each takes its own stretch
            fd = self._open(linked)
            offset = self._size
            finals = []
            for blob in blobs:
                finals.append(_packed_address(self._pack, self._size, len(blob)))
                self._size += len(blob)
            self._links += linked
            pack = self._path()
        try:
            data = memoryview(b"".join(blobs))
            while data:
                written = os.pwrite(fd, data, offset)
                data, offset = data[written:], offset + written
        except BaseException:
            os.close(fd)
            raise
        return fd, pack, finals

    def _open(self, count: int) -> int:
        """A descriptor on the pack that takes the next ``count`` blobs."""
        if self._size < PACK_LIMIT and self._links + count <= PACK_LINKS:
            return os.open(self._path(), os.O_WRONLY)
        while True:
            self._pack += 1
            try:
                fd = os.open(self._path(), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue  # another store on this folder took the number
            self._size = self._links = 0
            fsync_dir(self.folder)
            return fd

    def _path(self) -> str:
        return os.path.join(self.folder, f"{self._pack:08x}.pack")

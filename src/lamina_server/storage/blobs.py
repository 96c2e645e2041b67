"""Blob storage: object bytes at server-chosen addresses, behind a narrow async interface.

The life of a blob: the API picks an address (:meth:`BlobStore.new_address`), a client uploads
bytes to it (:meth:`~BlobStore.write` leaves them *pending*), and finalizing the upload
*claims* them (:meth:`~BlobStore.claim`), after which they are immutable and readable. A claim
succeeds once per address, which is what makes upload tokens single use. Multipart uploads
store durable parts and :meth:`~BlobStore.complete_multipart` turns a chosen list of them into a
claimed blob in one step.

:class:`LocalBlobStore` keeps everything in a folder (``<data dir>/blobs``)::

    tmp/<pid>-<n>                     bytes being received (removed on start)
    incoming/<address>                uploaded, not yet claimed (removed on start after a week)
    objects/<aa>/<address>            claimed single-upload blob (aa = first two hex digits)
    objects/<aa>/<address>.parts/     claimed multipart blob: part files and manifest.json
    uploads/<upload id>/<n>.<md5>     parts of a multipart upload in progress (ditto)

Bytes are fsynced before they are linked into place and the directory is fsynced after, so a
blob that was acknowledged survives a crash; a crash mid-write leaves only ``tmp/`` debris. A
multipart blob is never copied: its parts are moved into place with one directory rename and
reads stream across them. Blocking file I/O runs in worker threads, in 1 MiB steps.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from anyio import to_thread

CHUNK_SIZE = 1024 * 1024
STALE_UPLOAD_SECONDS = 7 * 24 * 3600

_ADDRESS = re.compile(r"[0-9a-f]{32}")
_PART_FILE = re.compile(r"([0-9]{5})\.([0-9a-f]{32})")
_MANIFEST = "manifest.json"


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a write produced: where it is, how big it is, and its ETag (bare hex)."""

    address: str
    size: int
    etag: str


class BlobError(Exception):
    """Base of the blob store's errors; the message is fit for an API response."""


class BlobNotFound(BlobError):
    """No bytes at the address (or no such multipart upload)."""


class BlobExists(BlobError):
    """Bytes were already written to the address; blobs are never overwritten."""


class BlobClaimed(BlobError):
    """The pending upload at the address was already claimed (finalized)."""


class PartMismatch(BlobError):
    """A part named when completing a multipart upload is missing or has another ETag."""


class BlobMismatch(BlobError):
    """The assembled bytes are not what the client said (``field``: "size" or "checksum")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class BlobStore(Protocol):
    def new_address(self) -> str:
        """A fresh address for an upload."""
        ...

    async def write(self, address: str, chunks: AsyncIterable[bytes]) -> BlobInfo:
        """Stores ``chunks`` durably as the pending blob at ``address`` (:class:`BlobExists`)."""
        ...

    async def pending(self, address: str) -> BlobInfo:
        """The uploaded, not yet claimed blob at ``address``.

        :class:`BlobClaimed` if it was claimed already, :class:`BlobNotFound` if nothing was
        uploaded.
        """
        ...

    async def claim(self, address: str) -> None:
        """Makes the pending blob at ``address`` permanent and readable, exactly once.

        :class:`BlobClaimed` if it was claimed already, :class:`BlobNotFound` if nothing was
        uploaded.
        """
        ...

    async def discard(self, address: str) -> None:
        """Drops the pending blob at ``address`` (no error if there is none)."""
        ...

    def read(self, address: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of the claimed blob at ``address``, in chunks."""
        ...

    async def start_multipart(self, address: str) -> str:
        """Begins a multipart upload that will become ``address``; returns its upload id."""
        ...

    async def write_part(
        self, address: str, upload_id: str, part_number: int, chunks: AsyncIterable[bytes]
    ) -> BlobInfo:
        """Stores one part durably; its ETag is the part's MD5. Re-uploading a part is allowed."""
        ...

    async def complete_multipart(
        self,
        address: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        size: int | None = None,
        md5: str | None = None,
    ) -> BlobInfo:
        """Claims the ``(part_number, etag)`` parts, in order, as the blob at ``address``.

        The blob's ETag is S3's: MD5 of the concatenated binary part MD5s, ``-<count>``.
        :class:`PartMismatch` names a missing part; :class:`BlobNotFound` if the upload is not
        in progress; :class:`BlobClaimed` if it was completed already; :class:`BlobMismatch`
        (nothing claimed) if the total is not ``size`` bytes or the bytes' MD5 is not ``md5``.
        """
        ...

    async def abort_multipart(self, address: str, upload_id: str) -> None:
        """Removes the upload's parts; no error if it is gone already."""
        ...


def multipart_etag(part_md5s: Sequence[str]) -> str:
    digest = hashlib.md5(b"".join(bytes.fromhex(md5) for md5 in part_md5s))
    return f"{digest.hexdigest()}-{len(part_md5s)}"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_id(value: str, what: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise BlobNotFound(f"{what} {value!r} is not valid")
    return value


def _is_stale(entry: os.DirEntry[str], cutoff: float) -> bool:
    try:
        return entry.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


_temp_names = itertools.count()


class _TempFile:
    """A file under ``tmp/`` that is written, hashed, fsynced and linked into place."""

    def __init__(self, tmp_dir: str) -> None:
        self.path = os.path.join(tmp_dir, f"{os.getpid()}-{next(_temp_names)}")
        self.fd = -1
        self.size = 0
        self.md5 = hashlib.md5()

    def write(self, data: bytes) -> None:
        if self.fd < 0:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.md5.update(data)
        self.size += len(data)

    def link(self, final: str) -> None:
        """fsync, hard-link to ``final`` (never replacing it), fsync its directory."""
        if self.fd < 0:
            self.write(b"")
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1
        try:
            os.link(self.path, final)
        finally:
            os.unlink(self.path)
        _fsync_dir(os.path.dirname(final))

    def remove(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class LocalBlobStore:
    """:class:`BlobStore` on a local folder. Construct it before serving: it cleans up debris."""

    def __init__(self, root: Path, *, max_cached: int = 65536) -> None:
        self.root = root
        self._tmp = str(root / "tmp")
        self._incoming = str(root / "incoming")
        self._objects = str(root / "objects")
        self._uploads = str(root / "uploads")
        for folder in (self._tmp, self._incoming, self._uploads):
            os.makedirs(folder, exist_ok=True)
        for shard in range(256):
            os.makedirs(os.path.join(self._objects, f"{shard:02x}"), exist_ok=True)
        # Addresses only need to be unique (the signed URLs are the credential), so a PRNG
        # seeded from the OS is enough and spares the event loop a syscall per upload.
        self._random = random.Random(os.urandom(32))
        # Size and MD5 of recent uploads and manifests of read multipart blobs, so finalizing
        # and reading need not rescan bytes; a miss (e.g. after a restart) recomputes.
        self._pending_info: OrderedDict[str, BlobInfo] = OrderedDict()
        self._manifests: OrderedDict[str, list[tuple[str, int]]] = OrderedDict()
        self._max_cached = max_cached
        self._clean()

    # --- layout ---------------------------------------------------------------------------

    def _stored(self, address: str) -> str:
        """Where the claimed single-upload blob lives (``.parts`` appended: multipart)."""
        return os.path.join(self._objects, address[:2], _check_id(address, "blob address"))

    def _pending_path(self, address: str) -> str:
        return os.path.join(self._incoming, _check_id(address, "blob address"))

    def _upload_dir(self, upload_id: str) -> str:
        return os.path.join(self._uploads, _check_id(upload_id, "upload id"))

    def _clean(self) -> None:
        """Removes half-received files, and uploads nobody finished within a week."""
        for entry in os.scandir(self._tmp):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        cutoff = time.time() - STALE_UPLOAD_SECONDS
        for entry in os.scandir(self._incoming):
            if _is_stale(entry, cutoff):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        for entry in os.scandir(self._uploads):
            if _is_stale(entry, cutoff):
                shutil.rmtree(entry.path, ignore_errors=True)

    def _remember(self, cache: OrderedDict[str, Any], key: str, value: Any) -> None:
        cache[key] = value
        if len(cache) > self._max_cached:
            cache.popitem(last=False)

    # --- writing --------------------------------------------------------------------------

    def new_address(self) -> str:
        return f"{self._random.getrandbits(128):032x}"

    async def _receive(
        self, chunks: AsyncIterable[bytes], place: Callable[[_TempFile], None]
    ) -> _TempFile:
        """Streams ``chunks`` into a temp file, then ``place`` links it (in a worker thread)."""
        temp = _TempFile(self._tmp)
        buffer = bytearray()
        try:
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= CHUNK_SIZE:
                    data, buffer = bytes(buffer), bytearray()
                    await to_thread.run_sync(temp.write, data)

            def finish() -> None:
                temp.write(bytes(buffer))
                place(temp)

            await to_thread.run_sync(finish)
        except BaseException:
            temp.remove()
            raise
        return temp

    async def write(self, address: str, chunks: AsyncIterable[bytes]) -> BlobInfo:
        final = self._pending_path(address)
        stored = self._stored(address)

        def place(temp: _TempFile) -> None:
            if os.path.exists(stored):
                raise BlobExists("bytes were already uploaded to this address")
            try:
                temp.link(final)
            except FileExistsError:
                raise BlobExists("bytes were already uploaded to this address") from None

        temp = await self._receive(chunks, place)
        info = BlobInfo(address, temp.size, temp.md5.hexdigest())
        self._remember(self._pending_info, address, info)
        return info

    async def pending(self, address: str) -> BlobInfo:
        info = self._pending_info.get(address)
        if info is not None:
            return info
        path = self._pending_path(address)
        stored = self._stored(address)

        def scan() -> BlobInfo:
            md5 = hashlib.md5()
            size = 0
            try:
                with open(path, "rb") as handle:
                    while block := handle.read(CHUNK_SIZE):
                        md5.update(block)
                        size += len(block)
            except FileNotFoundError:
                if os.path.exists(stored):
                    raise BlobClaimed("this upload was already finalized") from None
                raise BlobNotFound("no bytes were uploaded for this upload") from None
            return BlobInfo(address, size, md5.hexdigest())

        return await to_thread.run_sync(scan)

    async def claim(self, address: str) -> None:
        source = self._pending_path(address)
        final = self._stored(address)

        def move() -> None:
            try:
                os.link(source, final)
            except FileNotFoundError:
                if os.path.exists(final):
                    raise BlobClaimed("this upload was already finalized") from None
                raise BlobNotFound("no bytes were uploaded for this upload") from None
            except FileExistsError:
                raise BlobClaimed("this upload was already finalized") from None
            _fsync_dir(os.path.dirname(final))
            os.unlink(source)

        await to_thread.run_sync(move)
        self._pending_info.pop(address, None)

    async def discard(self, address: str) -> None:
        self._pending_info.pop(address, None)
        path = self._pending_path(address)

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

        await to_thread.run_sync(remove)

    # --- multipart ------------------------------------------------------------------------

    async def start_multipart(self, address: str) -> str:
        _check_id(address, "blob address")
        upload_id = self.new_address()
        folder = self._upload_dir(upload_id)

        def make() -> None:
            os.mkdir(folder)
            _fsync_dir(self._uploads)

        await to_thread.run_sync(make)
        return upload_id

    async def write_part(
        self, address: str, upload_id: str, part_number: int, chunks: AsyncIterable[bytes]
    ) -> BlobInfo:
        _check_id(address, "blob address")
        folder = self._upload_dir(upload_id)
        if not 1 <= part_number <= 99999:
            raise PartMismatch(f"part number {part_number} is out of range")
        gone = f"multipart upload {upload_id} is not in progress"

        def place(temp: _TempFile) -> None:
            try:
                temp.link(os.path.join(folder, f"{part_number:05d}.{temp.md5.hexdigest()}"))
            except FileExistsError:
                pass  # the same bytes again: the part is already there
            except FileNotFoundError:
                raise BlobNotFound(gone) from None

        if not os.path.isdir(folder):  # fail before receiving the body
            raise BlobNotFound(gone)
        temp = await self._receive(chunks, place)
        return BlobInfo(address, temp.size, temp.md5.hexdigest())

    async def complete_multipart(
        self,
        address: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        size: int | None = None,
        md5: str | None = None,
    ) -> BlobInfo:
        folder = self._upload_dir(upload_id)
        final = self._stored(address) + ".parts"

        def assemble() -> BlobInfo:
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                if os.path.exists(final):
                    raise BlobClaimed("this multipart upload was already completed") from None
                raise BlobNotFound(
                    f"multipart upload {upload_id} is not in progress (aborted or unknown)"
                ) from None
            present: dict[int, set[str]] = {}
            for name in names:
                match = _PART_FILE.fullmatch(name)
                if match:
                    present.setdefault(int(match[1]), set()).add(match[2])
            files: list[tuple[str, int]] = []
            for number, etag in parts:
                if number not in present:
                    raise PartMismatch(f"part {number} was not uploaded")
                if etag not in present[number]:
                    raise PartMismatch(f"part {number} ETag {etag!r} does not match the upload")
                name = f"{number:05d}.{etag}"
                files.append((name, os.stat(os.path.join(folder, name)).st_size))
            info = BlobInfo(
                address, sum(n for _, n in files), multipart_etag([e for _, e in parts])
            )
            if size is not None and size != info.size:
                raise BlobMismatch(
                    "size", f"size_bytes is {size} but the parts hold {info.size} bytes"
                )
            if md5 is not None:
                digest = hashlib.md5()
                for name, _ in files:
                    with open(os.path.join(folder, name), "rb") as handle:
                        while block := handle.read(CHUNK_SIZE):
                            digest.update(block)
                if digest.hexdigest() != md5:
                    raise BlobMismatch(
                        "checksum",
                        f"checksum {md5} does not match the parts' bytes ({digest.hexdigest()})",
                    )
            with open(os.path.join(folder, _MANIFEST), "w", encoding="utf-8") as handle:
                json.dump({"size": info.size, "etag": info.etag, "parts": files}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            keep = {name for name, _ in files} | {_MANIFEST}
            for name in names:
                if name not in keep:
                    os.unlink(os.path.join(folder, name))
            _fsync_dir(folder)
            try:
                os.rename(folder, final)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise BlobClaimed("this multipart upload was already completed") from None
                raise
            _fsync_dir(os.path.dirname(final))
            _fsync_dir(self._uploads)
            return info

        return await to_thread.run_sync(assemble)

    async def abort_multipart(self, address: str, upload_id: str) -> None:
        _check_id(address, "blob address")
        folder = self._upload_dir(upload_id)
        await to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))

    # --- reading --------------------------------------------------------------------------

    def _segments(self, address: str) -> list[tuple[str, int]]:
        """The files making up a claimed blob, with their sizes (blocking)."""
        cached = self._manifests.get(address)
        if cached is not None:
            return cached
        plain = self._stored(address)
        try:
            return [(plain, os.stat(plain).st_size)]
        except FileNotFoundError:
            pass
        folder = plain + ".parts"
        try:
            with open(os.path.join(folder, _MANIFEST), encoding="utf-8") as handle:
                manifest = json.load(handle)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {address} not found") from None
        segments = [(os.path.join(folder, name), size) for name, size in manifest["parts"]]
        self._remember(self._manifests, address, segments)
        return segments

    async def read(self, address: str, start: int, end: int) -> AsyncIterator[bytes]:
        segments = await to_thread.run_sync(self._segments, address)
        offset = 0
        for path, size in segments:
            seg_start, seg_end = max(start - offset, 0), min(end - offset, size)
            offset += size
            if seg_start >= seg_end:
                continue
            fd = await to_thread.run_sync(os.open, path, os.O_RDONLY)
            try:
                position = seg_start
                while position < seg_end:
                    block = await to_thread.run_sync(
                        os.pread, fd, min(CHUNK_SIZE, seg_end - position), position
                    )
                    if not block:
                        raise BlobError(f"blob {address} is shorter than recorded")
                    position += len(block)
                    yield block
            finally:
                os.close(fd)

"""Blob storage: object bytes at server-chosen addresses, behind a narrow async interface.

The life of a blob: the API picks an address (:meth:`BlobStore.new_address`), a client uploads
bytes to it (:meth:`~BlobStore.write` leaves them *pending*), and finalizing the upload
*claims* them (:meth:`~BlobStore.claim`), after which they are durable, immutable and
readable at the address the claim answers. A claim succeeds once per address, which is what
makes upload tokens single use. Multipart uploads store durable parts and
:meth:`~BlobStore.complete_multipart` turns a chosen list of them into a claimed blob in one
step.

:class:`LocalBlobStore` keeps everything in a folder (``<data dir>/blobs``)::

    tmp/<pid>-<n>                     bytes being received (removed on start)
    incoming/<address>                uploaded, not yet claimed (removed on start after a week)
    objects/<aa>/<address>            claimed single-upload blob (aa = first two hex digits);
                                      for a small one, a second name of its pack
    objects/<aa>/<address>.parts/     claimed multipart blob: part files and manifest.json
    objects/packs/<n>.pack            claimed small blobs, back to back; such a blob's address
                                      is ``p<n>.<offset>.<size>`` (hex)
    uploads/<upload id>/<n>.<md5>     parts of a multipart upload in progress (ditto)

A small upload (the whole body within :data:`SMALL_BLOB` bytes) is kept in memory until it is
claimed, within a budget; past it, and for larger uploads, the bytes are written to a file and
fsynced, then linked into ``incoming/``. Claims come in batches (:meth:`~BlobStore.claim_many`:
the API claims each session's group-committed finalizes together), one worker-thread hop a
batch. It appends the small blobs to the current pack, and each claim links a name at
``objects/<aa>/<address>`` — to the pending file, or to the pack for a small blob, so that no
blob costs an inode of its own and a claim is a durable fact either way; then it fdatasyncs the
pack once and fsyncs each directory that gained a name. Addresses put consecutive uploads in
the same ``objects/`` directory (the leading byte moves on every 64 addresses), so a batch costs
a few fsyncs whatever its size. A claimed blob survives a crash. A pending upload may not (one
kept in memory is gone after any restart): finalizing it then fails, and the client sends it
again. A crash mid-write leaves only ``tmp/`` debris, or unreferenced bytes at the end of a
pack, which a restarted store never appends to. A multipart blob is never copied: its parts are
moved into place with one directory rename and reads stream across them.

Blocking file I/O runs in worker threads: a large upload is written and hashed in 1 MiB blocks,
in two threads at once, while the next block is received. Downloads are read in 4 MiB chunks.
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
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio import to_thread
from anyio.abc import TaskGroup

CHUNK_SIZE = 1024 * 1024  # uploads are written and hashed in blocks of this size (or more)
READ_SIZE = 4 * 1024 * 1024  # downloads are read in chunks of this size
SMALL_BLOB = 64 * 1024  # uploads up to this size are kept in memory until claimed, then packed
SMALL_BUDGET = 64 * 1024 * 1024  # memory for pending small uploads; past it they go to files
PACK_LIMIT = 256 * 1024 * 1024  # a pack takes no more claims once this big
PACK_LINKS = 30000  # or once this many objects/ names link to it (file systems cap links)
SHARD_RUN = 64  # consecutive addresses that share an objects/ directory
STALE_UPLOAD_SECONDS = 7 * 24 * 3600

_ADDRESS = re.compile(r"[0-9a-f]{32}")
_PACKED = re.compile(r"p([0-9a-f]{8})\.([0-9a-f]{12})\.([0-9a-f]{8})")
_PACK_FILE = re.compile(r"([0-9a-f]{8})\.pack")
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
        """Stores ``chunks`` as the pending blob at ``address`` (:class:`BlobExists`).

        The blob is durable once claimed.
        """
        ...

    async def pending(self, address: str) -> BlobInfo:
        """The uploaded, not yet claimed blob at ``address``.

        :class:`BlobClaimed` if it was claimed already, :class:`BlobNotFound` if nothing was
        uploaded.
        """
        ...

    async def claim_many(self, addresses: Sequence[str]) -> list[str | BlobError]:
        """Makes the pending blob at each address durable, permanent and readable, exactly once,
        all in one batch; per address, the address to read it at from then on, or its error:
        :class:`BlobClaimed` if it was claimed already, :class:`BlobNotFound` if nothing was
        uploaded. Batches may run concurrently.
        """
        ...

    async def claim(self, address: str) -> str:
        """:meth:`claim_many` of one address, raising its error."""
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


def _link_once(source: str, final: str) -> None:
    """Links ``final`` to ``source``; :class:`BlobClaimed` if ``final`` exists already."""
    try:
        os.link(source, final)
    except FileExistsError:
        raise BlobClaimed("this upload was already finalized") from None


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
    """A file under ``tmp/`` that is written, hashed, fsynced and linked into place.

    :meth:`write` and :meth:`hash` of one block may run at once, in two threads.
    """

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

    def hash(self, data: bytes) -> None:
        self.md5.update(data)
        self.size += len(data)

    def finish(self, data: bytes, place: Callable[[_TempFile], None]) -> None:
        """Writes and hashes the last block, then ``place`` links the file into place."""
        self.write(data)
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


async def _next_block(stream: AsyncIterator[bytes]) -> tuple[bytes, bool]:
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
    temp: _TempFile, data: bytes, stream: AsyncIterator[bytes]
) -> bytes:
    """Writes and hashes ``data`` and the full blocks of ``stream`` after it, each block in two
    worker threads at once while the next one is received; returns the last, short block (not
    written yet)."""
    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        try:
            more = True
            while more:
                jobs = [_Job(group, temp.write, data), _Job(group, temp.hash, data)]
                data, more = await _next_block(stream)
                for job in jobs:
                    await job.result()
        except Exception as exc:  # re-raised below as itself, not inside an exception group
            failure = exc
    # Leaving the group waited for any write still running, so the file is free to remove.
    if failure is not None:
        raise failure
    return data


@dataclass(frozen=True, slots=True)
class _Small:
    """A small upload held in memory until it is claimed."""

    data: bytes
    info: BlobInfo
    expires: float


def _packed_address(pack: int, offset: int, size: int) -> str:
    return f"p{pack:08x}.{offset:012x}.{size:08x}"


class LocalBlobStore:
    """:class:`BlobStore` on a local folder. Construct it before serving: it cleans up debris."""

    def __init__(
        self,
        root: Path,
        *,
        max_cached: int = 65536,
        small_budget: int = SMALL_BUDGET,
        pending_seconds: float = 3600.0,
    ) -> None:
        """``pending_seconds``: how long a small upload kept in memory may wait for its claim
        (the upload token's lifetime)."""
        self.root = root
        self._tmp = str(root / "tmp")
        self._incoming = str(root / "incoming")
        self._objects = str(root / "objects")
        self._uploads = str(root / "uploads")
        self._packs = str(root / "objects" / "packs")
        for folder in (self._tmp, self._incoming, self._uploads, self._packs):
            os.makedirs(folder, exist_ok=True)
        for shard in range(256):
            os.makedirs(os.path.join(self._objects, f"{shard:02x}"), exist_ok=True)
        # Addresses only need to be unique (the signed URLs are the credential), so a PRNG
        # seeded from the OS is enough and spares the event loop a syscall per upload.
        self._random = random.Random(os.urandom(32))
        self._issued = itertools.count(self._random.randrange(256 * SHARD_RUN))
        # Size and MD5 of recent uploads and manifests of read multipart blobs, so finalizing
        # and reading need not rescan bytes; a miss (e.g. after a restart) recomputes.
        self._pending_info: OrderedDict[str, BlobInfo] = OrderedDict()
        self._manifests: OrderedDict[str, list[tuple[str, int, int]]] = OrderedDict()
        self._max_cached = max_cached
        self._small: OrderedDict[str, _Small] = OrderedDict()  # in expiry order
        self._small_bytes = 0
        self._small_budget = small_budget
        self._pending_seconds = pending_seconds
        self._claimed: OrderedDict[str, str] = OrderedDict()  # recent claims: address -> final
        # Claims append to a pack of this run's own: one left by another run may end in a torn
        # write.
        packs = [int(m[1], 16) for m in map(_PACK_FILE.fullmatch, os.listdir(self._packs)) if m]
        self._pack = max(packs, default=-1)
        self._pack_size, self._pack_links = PACK_LIMIT, 0
        self._pack_lock = threading.Lock()
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
        # The leading byte names the objects/ directory: it stays put for a run of addresses.
        shard = next(self._issued) // SHARD_RUN % 256
        return f"{shard:02x}{self._random.getrandbits(120):030x}"

    async def _receive(
        self,
        data: bytes,
        more: bool,
        stream: AsyncIterator[bytes],
        place: Callable[[_TempFile], None],
    ) -> _TempFile:
        """Streams ``data`` and, if ``more``, the rest of ``stream`` into a temp file, then
        ``place`` links it (in a worker thread)."""
        temp = _TempFile(self._tmp)
        try:
            if more:
                data = await _write_while_receiving(temp, data, stream)
            await to_thread.run_sync(temp.finish, data, place)
        except BaseException:
            temp.remove()
            raise
        return temp

    async def write(self, address: str, chunks: AsyncIterable[bytes]) -> BlobInfo:
        final = self._pending_path(address)
        stored = self._stored(address)
        self._refuse_known(address)
        stream = chunks.__aiter__()
        data, more = await _next_block(stream)
        if not more and self._keep_small(address, data):
            return self._small[address].info

        def place(temp: _TempFile) -> None:
            if os.path.exists(stored):
                raise BlobExists("bytes were already uploaded to this address")
            try:
                temp.link(final)
            except FileExistsError:
                raise BlobExists("bytes were already uploaded to this address") from None

        temp = await self._receive(data, more, stream, place)
        info = BlobInfo(address, temp.size, temp.md5.hexdigest())
        self._remember(self._pending_info, address, info)
        return info

    def _refuse_known(self, address: str) -> None:
        """:class:`BlobExists` for an address this store has seen bytes for. No I/O: what an
        earlier run left is not looked for here, and a second claim still fails."""
        if address in self._small or address in self._claimed or address in self._pending_info:
            raise BlobExists("bytes were already uploaded to this address")

    def _keep_small(self, address: str, data: bytes) -> bool:
        """Keeps a small upload in memory, if it fits the budget."""
        now = time.monotonic()
        while self._small and next(iter(self._small.values())).expires < now:
            self._drop_small(next(iter(self._small)))
        if len(data) > SMALL_BLOB or self._small_bytes + len(data) > self._small_budget:
            return False
        self._refuse_known(address)  # another upload to this address may have just finished
        info = BlobInfo(address, len(data), hashlib.md5(data).hexdigest())
        self._small[address] = _Small(data, info, now + self._pending_seconds)
        self._small_bytes += len(data)
        return True

    def _drop_small(self, address: str) -> _Small | None:
        small = self._small.pop(address, None)
        if small is not None:
            self._small_bytes -= len(small.data)
        return small

    async def pending(self, address: str) -> BlobInfo:
        small = self._small.get(address)
        if small is not None:
            return small.info
        if address in self._claimed:
            raise BlobClaimed("this upload was already finalized")
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

    async def claim(self, address: str) -> str:
        (outcome,) = await self.claim_many([address])
        if isinstance(outcome, BlobError):
            raise outcome
        return outcome

    async def claim_many(self, addresses: Sequence[str]) -> list[str | BlobError]:
        """One worker-thread hop claims the batch (:meth:`_claim_many`); small uploads leave
        memory for the pack, and come back if the hop fails."""
        outcomes: dict[int, str | BlobError] = {}
        jobs: list[tuple[int, str, _Small | None]] = []
        for index, address in enumerate(addresses):
            kept = self._drop_small(address)
            if kept is None and address in self._claimed:
                outcomes[index] = BlobClaimed("this upload was already finalized")
            else:
                jobs.append((index, address, kept))
        try:
            done = await to_thread.run_sync(
                self._claim_many,
                [(address, None if kept is None else kept.data) for _, address, kept in jobs],
            )
        except BaseException:
            for _, address, kept in jobs:
                if kept is not None and address not in self._small:  # not claimed: pending
                    self._small[address] = kept
                    self._small_bytes += len(kept.data)
            raise
        for (index, address, _), outcome in zip(jobs, done, strict=True):
            outcomes[index] = outcome
            if not isinstance(outcome, BlobError):
                self._pending_info.pop(address, None)
                self._remember(self._claimed, address, outcome)
        return [outcomes[index] for index in range(len(addresses))]

    def _claim_many(self, jobs: Sequence[tuple[str, bytes | None]]) -> list[str | BlobError]:
        """Claims each ``(address, bytes of a small upload or None)``: the address to read it
        at, or its error (blocking).

        Small blobs are appended to the pack. Each claim links a name at the blob's
        ``objects/`` address — to its pending file, or to the pack (so that a claim is a
        durable fact either way) — and fails if there is one already (so a claim happens once,
        also for an address given twice). Then the pack is fdatasynced and each directory that
        gained a name fsynced — the links go first, so that the pack's sync commits them too
        and the directories' syncs find little left to do — and the pending names of the files
        are dropped. Nothing is answered before both syncs.
        """
        small = [data for _, data in jobs if data is not None]
        fd, pack, finals = self._append_to_pack(small) if small else (-1, "", [])
        try:
            packed = iter(finals)
            outcomes: list[str | BlobError] = []
            folders: set[str] = set()
            for address, data in jobs:
                try:
                    final = self._stored(address)
                    if data is None:
                        self._link_pending(address)
                    else:
                        _link_once(pack, final)
                except BlobError as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(address if data is None else next(packed))
                    folders.add(os.path.dirname(final))
            if fd >= 0:
                os.fdatasync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        for folder in sorted(folders):
            _fsync_dir(folder)
        for (address, data), outcome in zip(jobs, outcomes, strict=True):
            if data is None and not isinstance(outcome, BlobError):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._pending_path(address))
        return outcomes

    def _append_to_pack(self, blobs: Sequence[bytes]) -> tuple[int, str, list[str]]:
        """Appends ``blobs`` to the current pack (a new one when it is full): a descriptor on
        the pack, to sync, its path, and the blobs' addresses in order (blocking)."""
        with self._pack_lock:  # batches claim concurrently; each takes its own stretch
            fd = self._open_pack(len(blobs))
            offset = self._pack_size
            finals = []
            for blob in blobs:
                finals.append(_packed_address(self._pack, self._pack_size, len(blob)))
                self._pack_size += len(blob)
            self._pack_links += len(blobs)
            pack = self._pack_path()
        try:
            data = memoryview(b"".join(blobs))
            while data:
                written = os.pwrite(fd, data, offset)
                data, offset = data[written:], offset + written
        except BaseException:
            os.close(fd)
            raise
        return fd, pack, finals

    def _open_pack(self, count: int) -> int:
        """A descriptor on the pack that takes the next ``count`` blobs (blocking)."""
        if self._pack_size < PACK_LIMIT and self._pack_links + count <= PACK_LINKS:
            return os.open(self._pack_path(), os.O_WRONLY)
        while True:
            self._pack += 1
            try:
                fd = os.open(self._pack_path(), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue  # another store on this folder took the number
            self._pack_size = self._pack_links = 0
            _fsync_dir(self._packs)
            return fd

    def _pack_path(self) -> str:
        return os.path.join(self._packs, f"{self._pack:08x}.pack")

    def _link_pending(self, address: str) -> None:
        final = self._stored(address)
        try:
            _link_once(self._pending_path(address), final)
        except FileNotFoundError:
            if os.path.exists(final):
                raise BlobClaimed("this upload was already finalized") from None
            raise BlobNotFound("no bytes were uploaded for this upload") from None

    async def discard(self, address: str) -> None:
        self._pending_info.pop(address, None)
        if self._drop_small(address) is not None:
            return
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
        stream = chunks.__aiter__()
        data, more = await _next_block(stream)
        temp = await self._receive(data, more, stream, place)
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

    def _segments(self, address: str) -> list[tuple[str, int, int]]:
        """The pieces of files making up a claimed blob: path, offset, size (blocking)."""
        packed = _PACKED.fullmatch(address)
        if packed:
            pack, offset, size = (int(group, 16) for group in packed.groups())
            return [(os.path.join(self._packs, f"{pack:08x}.pack"), offset, size)]
        cached = self._manifests.get(address)
        if cached is not None:
            return cached
        plain = self._stored(address)
        try:
            return [(plain, 0, os.stat(plain).st_size)]
        except FileNotFoundError:
            pass
        folder = plain + ".parts"
        try:
            with open(os.path.join(folder, _MANIFEST), encoding="utf-8") as handle:
                manifest = json.load(handle)
        except FileNotFoundError:
            raise BlobNotFound(f"blob {address} not found") from None
        segments = [(os.path.join(folder, name), 0, size) for name, size in manifest["parts"]]
        self._remember(self._manifests, address, segments)
        return segments

    async def read(self, address: str, start: int, end: int) -> AsyncIterator[bytes]:
        segments = await to_thread.run_sync(self._segments, address)
        offset = 0
        for path, base, size in segments:
            seg_start, seg_end = base + max(start - offset, 0), base + min(end - offset, size)
            offset += size
            if seg_start >= seg_end:
                continue
            try:
                fd = await to_thread.run_sync(os.open, path, os.O_RDONLY)
            except FileNotFoundError:
                raise BlobNotFound(f"blob {address} not found") from None
            try:
                position = seg_start
                while position < seg_end:
                    block = await to_thread.run_sync(
                        os.pread, fd, min(READ_SIZE, seg_end - position), position
                    )
                    if not block:
                        raise BlobError(f"blob {address} is shorter than recorded")
                    position += len(block)
                    yield block
            finally:
                os.close(fd)

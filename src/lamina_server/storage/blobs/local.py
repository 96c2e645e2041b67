"""The local-folder blob store (``<data dir>/blobs``; see :mod:`.layout`).

A small upload (the whole body within :data:`SMALL_BLOB` bytes) is kept in memory until it is
claimed, within a budget; past it, and for larger uploads, the bytes are written to a file and
fsynced (:mod:`.receive`), then linked into ``incoming/``. Claims come in batches
(:meth:`~LocalBlobStore.claim_many`: the API claims each session's group-committed finalizes
together), one worker-thread hop a batch. It appends the small blobs to the current pack
(:mod:`.packs`), and each claim links a name at ``objects/<aa>/<address>`` — to the pending
file, or to the pack for a small blob, so that no blob costs an inode of its own and a claim is
a durable fact either way (a small blob claimed ``internal``, at an address no client was handed,
gets no name: nothing can claim it again); then it fdatasyncs the pack once and fsyncs each directory that
gained a name. Addresses put consecutive uploads in the same ``objects/`` directory (the leading
byte moves on every 64 addresses), so a batch costs a few fsyncs whatever its size. A claimed
blob survives a crash. A pending upload may not (one kept in memory is gone after any
restart): finalizing it then fails, and the client sends it again. A crash mid-write leaves
only ``tmp/`` debris, or unreferenced bytes at the end of a pack. Multipart uploads are
:mod:`.multipart`.

Blocking file I/O runs in worker threads: a large upload is written and hashed in 1 MiB blocks,
in two threads at once, while the next block is received. Downloads are read in 4 MiB chunks;
exports to files (sandbox checkouts) link or copy blobs (:mod:`.export`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import random
import shutil
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyio import to_thread

from lamina_server.storage.blobs import multipart
from lamina_server.storage.blobs.base import (
    BlobClaimed,
    BlobError,
    BlobExists,
    BlobInfo,
    BlobNotFound,
)
from lamina_server.storage.blobs.export import export_blobs
from lamina_server.storage.blobs.layout import Layout, fsync_dir, link_once
from lamina_server.storage.blobs.packs import Packs, packed_segment, punch
from lamina_server.storage.blobs.receive import CHUNK_SIZE, TempFile, next_block, receive

READ_SIZE = 4 * 1024 * 1024  # downloads are read in chunks of this size
SMALL_BLOB = 64 * 1024  # uploads up to this size are kept in memory until claimed, then packed
SMALL_BUDGET = 64 * 1024 * 1024  # memory for pending small uploads; past it they go to files
SHARD_RUN = 64  # consecutive addresses that share an objects/ directory


@dataclass(frozen=True, slots=True)
class _Small:
    """A small upload held in memory until it is claimed."""

    data: bytes
    info: BlobInfo
    expires: float


class LocalBlobStore:
    """:class:`~lamina_server.storage.blobs.BlobStore` on a local folder. Construct it before
    serving: it cleans up debris."""

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
        self._layout = Layout(root)
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
        self._packs = Packs(self._layout.packs)
        self._layout.clean()

    def _remember(self, cache: OrderedDict[str, Any], key: str, value: Any) -> None:
        cache[key] = value
        if len(cache) > self._max_cached:
            cache.popitem(last=False)

    # --- writing --------------------------------------------------------------------------

    def new_address(self) -> str:
        # The leading byte names the objects/ directory: it stays put for a run of addresses.
        shard = next(self._issued) // SHARD_RUN % 256
        return f"{shard:02x}{self._random.getrandbits(120):030x}"

    async def write(
        self, address: str, chunks: AsyncIterable[bytes], *, md5: str | None = None
    ) -> BlobInfo:
        final = self._layout.pending(address)
        stored = self._layout.stored(address)
        self._refuse_known(address)
        stream = chunks.__aiter__()
        data, more = await next_block(stream)
        if not more and self._keep_small(address, data, md5):
            return self._small[address].info

        def place(temp: TempFile) -> None:
            if os.path.exists(stored):
                raise BlobExists("bytes were already uploaded to this address")
            try:
                temp.link(final)
            except FileExistsError:
                raise BlobExists("bytes were already uploaded to this address") from None

        temp = await receive(self._layout.tmp, data, more, stream, place, hashed=md5 is None)
        info = BlobInfo(address, temp.size, md5 or temp.md5.hexdigest())
        self._remember(self._pending_info, address, info)
        return info

    def _refuse_known(self, address: str) -> None:
        """:class:`BlobExists` for an address this store has seen bytes for. No I/O: what an
        earlier run left is not looked for here, and a second claim still fails."""
        if address in self._small or address in self._claimed or address in self._pending_info:
            raise BlobExists("bytes were already uploaded to this address")

    def _keep_small(self, address: str, data: bytes, md5: str | None) -> bool:
        """Keeps a small upload in memory, if it fits the budget."""
        now = time.monotonic()
        while self._small and next(iter(self._small.values())).expires < now:
            self._drop_small(next(iter(self._small)))
        if len(data) > SMALL_BLOB or self._small_bytes + len(data) > self._small_budget:
            return False
        self._refuse_known(address)  # another upload to this address may have just finished
        info = BlobInfo(address, len(data), md5 or hashlib.md5(data).hexdigest())
        self._small[address] = _Small(data, info, now + self._pending_seconds)
        self._small_bytes += len(data)
        return True

    def _drop_small(self, address: str) -> _Small | None:
        small = self._small.pop(address, None)
        if small is not None:
            self._small_bytes -= len(small.data)
        return small

    async def pending(self, address: str, *, in_place: bool = False) -> BlobInfo:
        _refuse_in_place(in_place)
        small = self._small.get(address)
        if small is not None:
            return small.info
        if address in self._claimed:
            raise BlobClaimed("this upload was already finalized")
        info = self._pending_info.get(address)
        if info is not None:
            return info
        path = self._layout.pending(address)
        stored = self._layout.stored(address)

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

    async def claim_many(
        self, addresses: Sequence[str], *, in_place: bool = False, internal: bool = False
    ) -> list[str | BlobError]:
        """One worker-thread hop claims the batch (:meth:`_claim_many`); small uploads leave
        memory for the pack, and come back if the hop fails. ``internal``: a small blob gets no
        name in ``objects/`` (that name only makes its claim once-only)."""
        _refuse_in_place(in_place)
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
                internal,
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

    def _claim_many(
        self, jobs: Sequence[tuple[str, bytes | None]], internal: bool = False
    ) -> list[str | BlobError]:
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
        fd, pack, finals = self._packs.append(small, links=not internal) if small else (-1, "", [])
        try:
            packed = iter(finals)
            outcomes: list[str | BlobError] = []
            folders: set[str] = set()
            for address, data in jobs:
                if data is not None and internal:
                    outcomes.append(next(packed))  # durable with the pack's sync
                    continue
                try:
                    final = self._layout.stored(address)
                    if data is None:
                        self._link_pending(address)
                    else:
                        link_once(pack, final)
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
            fsync_dir(folder)
        for (address, data), outcome in zip(jobs, outcomes, strict=True):
            if data is None and not isinstance(outcome, BlobError):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._layout.pending(address))
        return outcomes

    def _link_pending(self, address: str) -> None:
        final = self._layout.stored(address)
        try:
            link_once(self._layout.pending(address), final)
        except FileNotFoundError:
            if os.path.exists(final):
                raise BlobClaimed("this upload was already finalized") from None
            raise BlobNotFound("no bytes were uploaded for this upload") from None

    async def discard(self, address: str, *, in_place: bool = False) -> None:
        _refuse_in_place(in_place)
        self._pending_info.pop(address, None)
        if self._drop_small(address) is not None:
            return
        path = self._layout.pending(address)

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

        await to_thread.run_sync(remove)

    # --- garbage collection ----------------------------------------------------------------

    async def sweep_uploads(self, before: float) -> int:
        singles, multipart = await to_thread.run_sync(self._layout.sweep, before)
        for address in singles:
            self._pending_info.pop(address, None)
        return len(singles) + multipart

    async def delete(self, addresses: Sequence[str]) -> None:
        """Unlinks single-upload blobs, removes multipart ones, punches packed ones out of their
        pack; one worker-thread hop."""
        for address in addresses:
            self._manifests.pop(address, None)
        await to_thread.run_sync(self._delete, addresses)

    def _delete(self, addresses: Sequence[str]) -> None:
        for address in addresses:
            packed = packed_segment(self._layout.packs, address)
            if packed is not None:
                punch(*packed)
                continue
            try:
                plain = self._layout.stored(address)
            except BlobNotFound:
                continue  # not an address of this store: nothing of it is here
            with contextlib.suppress(FileNotFoundError):
                os.unlink(plain)
            shutil.rmtree(plain + ".parts", ignore_errors=True)

    # --- multipart ------------------------------------------------------------------------

    async def start_multipart(self, address: str) -> str:
        upload_id = self.new_address()
        await multipart.start(self._layout, address, upload_id)
        return upload_id

    async def write_part(
        self, address: str, upload_id: str, part_number: int, chunks: AsyncIterable[bytes]
    ) -> BlobInfo:
        return await multipart.write_part(self._layout, address, upload_id, part_number, chunks)

    async def complete_multipart(
        self,
        address: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        size: int | None = None,
        md5: str | None = None,
    ) -> BlobInfo:
        return await to_thread.run_sync(
            multipart.complete, self._layout, address, upload_id, parts, size, md5
        )

    async def abort_multipart(self, address: str, upload_id: str) -> None:
        await multipart.abort(self._layout, address, upload_id)

    # --- reading --------------------------------------------------------------------------

    def _segments(self, address: str) -> list[tuple[str, int, int]]:
        """The pieces of files making up a claimed blob: path, offset, size (blocking)."""
        packed = packed_segment(self._layout.packs, address)
        if packed is not None:
            return [packed]
        cached = self._manifests.get(address)
        if cached is not None:
            return cached
        plain = self._layout.stored(address)
        try:
            return [(plain, 0, os.stat(plain).st_size)]
        except FileNotFoundError:
            pass
        segments = multipart.read_manifest(plain + ".parts")
        if segments is None:
            raise BlobNotFound(f"blob {address} not found")
        self._remember(self._manifests, address, segments)
        return segments

    async def export(self, items: Sequence[tuple[str, int, Path]]) -> None:
        """Writes blobs out as files, in one worker-thread hop (:mod:`.export`)."""
        packs = self._layout.packs
        await to_thread.run_sync(
            export_blobs,
            self._segments,
            lambda address: packed_segment(packs, address) is not None,
            items,
        )

    async def read(self, address: str, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
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


def _refuse_in_place(in_place: bool) -> None:
    """The local folder hands out no in-place upload URLs (it is no :class:`Presigner`)."""
    if in_place:
        raise BlobError("the local blob store has no in-place uploads")

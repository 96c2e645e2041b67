"""The S3 blob store: object bytes in a bucket of any S3-compatible store, reached through
``obstore`` (and :mod:`.s3_requests` for what obstore does not do).

Keys, under the location's prefix::

    incoming/<address>   a single upload, PUT by the client to a presigned URL; pending
    claims/<address>     empty marker: the upload at <address> was claimed (finalized)
    blobs/<address>      a claimed blob, never overwritten (no URL to write it is handed out)

A claim first creates its marker with ``If-None-Match: *``, which succeeds once per address:
that is what makes an upload token single use, across any number of API processes. Then it
copies ``incoming/<address>`` to ``blobs/<address>`` server-side (no bytes pass through this
process), on the condition that the source still has the ETag finalize verified (a client
re-sending other bytes to the still-valid upload URL meanwhile fails the claim rather than
changing the object), and drops the incoming key. S3 makes a key appear whole or not at all,
so a crash leaves no visible half object; a crash between marker and copy leaves an address
that was claimed but holds nothing, which nothing references: finalizing it again answers
:class:`BlobClaimed`, as for any used token, and the client uploads again.

An *in-place* upload (a client that sends :data:`~.base.IN_PLACE_HEADERS` with its PUT) goes
straight to ``blobs/<address>``: its presigned URL signs ``If-None-Match: *``, so the store
writes the key once and refuses every later PUT to it, and the bytes cannot change after
finalize read them. Its claim is the marker alone: no copy, no delete (three requests to the
store per object instead of five, and a large single upload is not copied again). Clients that
send no such header (the official SDKs) get the ``incoming/`` URL above.

A multipart upload is an S3 multipart upload of ``blobs/<address>``: the client sends its
parts to presigned part URLs (or the server sends a part it receives itself, the S3 gateway's:
spooled to a temporary file, which gives the part's length and MD5, then streamed to its part
URL), and completing it checks the parts S3 lists (present, ETags,
total size: nothing is claimed on a mismatch), creates the marker, then completes the upload,
which makes the blob appear at once. A whole-object MD5 given on completion cannot be read
from S3's ETag of the parts, so only then is the blob read back and hashed (and removed, on a
mismatch). Finalize reads size and ETag with a HEAD: the ETag of a single PUT is its MD5.

Reads and exports stream from S3 with ranged GETs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx
import obstore
from anyio import to_thread
from obstore.exceptions import AlreadyExistsError, BaseError, NotFoundError
from obstore.store import S3Store

from lamina_server.storage.blobs.base import (
    IN_PLACE_HEADERS,
    BlobClaimed,
    BlobError,
    BlobInfo,
    BlobMismatch,
    BlobNotFound,
    PartMismatch,
    multipart_etag,
)
from lamina_server.storage.blobs.s3_location import S3Location
from lamina_server.storage.blobs.s3_requests import S3Error, S3Requests
from lamina_server.storage.blobs.sigv4 import SigV4

if TYPE_CHECKING:
    from obstore.store import S3Config

DELETE_BATCH = 1000  # keys in one DeleteObjects request, S3's limit
READ_CHUNK = 4 * 1024 * 1024  # downloads and exports are read in chunks of this size
EXPORT_CONCURRENCY = 8  # blobs an export fetches at once
PART_URL_TTL = 3600.0  # seconds: a part the server sends itself
FILE_MODE = 0o644
_ADDRESS = re.compile(r"[0-9a-f]{32}")
_MD5 = re.compile(r"[0-9a-f]{32}")
_MAX_REMEMBERED = 65536
# obstore raises a missing key as the builtin FileNotFoundError (or its own NotFoundError), and
# other failures as its BaseError or builtin OSErrors (PermissionError, ConnectionError...).
_MISSING = (NotFoundError, FileNotFoundError)
_FAILED = (BaseError, OSError)


def _check(address: str) -> str:
    if not _ADDRESS.fullmatch(address):
        raise BlobNotFound(f"blob address {address!r} is not valid")
    return address


def _store_error(exc: Exception) -> BlobError:
    """An obstore failure as a :class:`BlobError` (its message names the store, no secret)."""
    return BlobError(f"blob store failed: {type(exc).__name__}")


class S3BlobStore:
    """:class:`~lamina_server.storage.blobs.BlobStore` and
    :class:`~lamina_server.storage.blobs.Presigner` on an S3 bucket. :meth:`close` when done."""

    def __init__(self, location: S3Location) -> None:
        self.location = location
        creds = location.credentials
        config: S3Config = {
            "endpoint": location.endpoint,
            "region": location.region,
            "access_key_id": creds.access_key_id,
            "secret_access_key": creds.secret_access_key,
            "virtual_hosted_style_request": False,
        }
        if creds.session_token:
            config["session_token"] = creds.session_token
        self._store = S3Store(
            location.bucket,
            prefix=location.prefix or None,
            config=config,
            client_options={"allow_http": location.endpoint.startswith("http://")},
        )
        self._signer = SigV4(location.endpoint, location.region, location.bucket, creds)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0))
        self.requests = S3Requests(self._signer, self._http)
        # S3 ETags of uploads this process saw (finalize's HEAD, or its own write), which the
        # claim's conditional copy names; a miss (another process saw it) HEADs again.
        self._seen: OrderedDict[str, str] = OrderedDict()

    async def close(self) -> None:
        await self._http.aclose()

    def _key(self, kind: str, address: str) -> str:
        """The key within the prefix (obstore adds the prefix itself)."""
        return f"{kind}/{_check(address)}"

    def _full(self, kind: str, address: str) -> str:
        """The bucket key (for signed requests)."""
        return f"{self.location.prefix}{self._key(kind, address)}"

    def _remember(self, address: str, etag: str) -> None:
        self._seen[address] = etag
        if len(self._seen) > _MAX_REMEMBERED:
            self._seen.popitem(last=False)

    async def _exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self._store, key)
        except _MISSING:
            return False
        except _FAILED as exc:
            raise _store_error(exc) from None
        return True

    async def _gone(self, address: str) -> BlobError:
        """The error for an upload with no incoming bytes: claimed already, or never sent."""
        if await self._exists(self._key("claims", address)):
            return BlobClaimed("this upload was already finalized")
        return BlobNotFound("no bytes were uploaded for this upload")

    # --- presigned URLs -------------------------------------------------------------------

    def upload_url(self, address: str, ttl: float, *, in_place: bool = False) -> str:
        if in_place:
            key = self._full("blobs", address)
            return self._signer.presign("PUT", key, int(ttl), headers=IN_PLACE_HEADERS)
        return obstore.sign(
            self._store, "PUT", self._key("incoming", address), timedelta(seconds=ttl)
        )

    def part_url(self, address: str, upload_id: str, part_number: int, ttl: float) -> str:
        query = {"partNumber": str(part_number), "uploadId": upload_id}
        return self._signer.presign("PUT", self._full("blobs", address), int(ttl), query)

    def download_url(self, address: str, content_type: str, ttl: float) -> str:
        query = {"response-content-type": content_type}
        return self._signer.presign("GET", self._full("blobs", address), int(ttl), query)

    # --- single uploads -------------------------------------------------------------------

    def new_address(self) -> str:
        return secrets.token_hex(16)

    async def write(
        self, address: str, chunks: AsyncIterable[bytes], *, md5: str | None = None
    ) -> BlobInfo:
        """Streams ``chunks`` to ``incoming/<address>`` (the server's own writes: sandbox
        results, imports), hashing them on the way unless ``md5`` is given."""
        key = self._key("incoming", address)
        hasher = None if md5 is not None else hashlib.md5()
        size = 0

        async def hashed() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                if hasher is not None:
                    hasher.update(chunk)
                size += len(chunk)
                yield chunk

        try:
            result = await obstore.put_async(self._store, key, hashed())
        except _FAILED as exc:
            raise _store_error(exc) from None
        self._remember(address, str(result["e_tag"]).strip('"'))
        return BlobInfo(address, size, hasher.hexdigest() if hasher is not None else md5 or "")

    async def pending(self, address: str, *, in_place: bool = False) -> BlobInfo:
        kind = "blobs" if in_place else "incoming"
        try:
            meta = await obstore.head_async(self._store, self._key(kind, address))
        except _MISSING:
            raise await self._gone(address) from None
        except _FAILED as exc:
            raise _store_error(exc) from None
        etag = str(meta["e_tag"]).strip('"').lower()
        if not _MD5.fullmatch(etag):
            raise BlobError("the uploaded object's ETag is not its MD5; upload it with one PUT")
        self._remember(address, etag)
        return BlobInfo(address, meta["size"], etag)

    async def claim(self, address: str) -> str:
        (outcome,) = await self.claim_many([address])
        if isinstance(outcome, BlobError):
            raise outcome
        return outcome

    async def claim_many(
        self, addresses: Sequence[str], *, in_place: bool = False, internal: bool = False
    ) -> list[str | BlobError]:
        outcomes: list[str | BlobError] = [BlobError("not claimed")] * len(addresses)
        claim = self._claim_in_place if in_place else self._claim

        async def one(index: int, address: str) -> None:
            try:
                outcomes[index] = await claim(address)
            except BlobError as exc:
                outcomes[index] = exc

        async with anyio.create_task_group() as group:
            for index, address in enumerate(addresses):
                group.start_soon(one, index, address)
        return outcomes

    async def _claim(self, address: str) -> str:
        etag = self._seen.pop(address, None)
        if etag is None:
            try:
                meta = await obstore.head_async(self._store, self._key("incoming", address))
            except _MISSING:
                raise await self._gone(address) from None
            except _FAILED as exc:
                raise _store_error(exc) from None
            etag = str(meta["e_tag"]).strip('"')
        marker = await self._mark_claimed(address, "this upload was already finalized")
        try:
            await self.requests.copy_if_match(
                self._full("incoming", address), self._full("blobs", address), etag
            )
        except S3Error as exc:
            await self._delete(marker)  # nothing was claimed: the token may be used again
            if exc.code in ("NoSuchKey", "HTTP 404"):
                raise BlobNotFound("no bytes were uploaded for this upload") from None
            if exc.code in ("PreconditionFailed", "HTTP 412"):
                raise BlobError(
                    "the uploaded bytes changed while the upload was finalized; finalize again"
                ) from None
            raise
        await self._delete(self._key("incoming", address))
        return address

    async def _claim_in_place(self, address: str) -> str:
        """An in-place upload is where it is read from, and can no longer change: claiming it
        is writing its marker (once)."""
        self._seen.pop(address, None)
        await self._mark_claimed(address, "this upload was already finalized")
        return address

    async def _mark_claimed(self, address: str, already: str) -> str:
        """Writes the address's claim marker, once across every replica (a create that fails
        when it exists); its key. :class:`BlobClaimed` saying ``already`` when it was there."""
        marker = self._key("claims", address)
        try:
            await obstore.put_async(self._store, marker, b"", mode="create")
        except AlreadyExistsError:
            raise BlobClaimed(already) from None
        except _FAILED as exc:
            raise _store_error(exc) from None
        return marker

    async def _delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, key)
        except _FAILED as exc:
            raise _store_error(exc) from None

    async def discard(self, address: str, *, in_place: bool = False) -> None:
        self._seen.pop(address, None)
        if not in_place:
            await self._delete(self._key("incoming", address))
            return
        # The bytes sit where a claim would leave them: take the marker first, so that an
        # upload another request claimed meanwhile stays; then free the address again.
        try:
            marker = await self._mark_claimed(address, "claimed")
        except BlobClaimed:
            return
        await self._delete(self._key("blobs", address))
        await self._delete(marker)

    async def delete(self, addresses: Sequence[str]) -> None:
        """Removes each blob and then its claim marker (a marker without its blob would
        refuse a claim of the address, which is never reused), in batched deletes."""
        for kind in ("blobs", "claims"):
            keys = [self._key(kind, address) for address in addresses]
            for start in range(0, len(keys), DELETE_BATCH):
                try:
                    await obstore.delete_async(self._store, keys[start : start + DELETE_BATCH])
                except _FAILED as exc:
                    raise _store_error(exc) from None

    async def sweep_uploads(self, before: float) -> int:
        """Deletes ``incoming/`` uploads never claimed, in-place uploads never claimed (a blob
        without a marker: every claim writes one first), and aborts unfinished multipart
        uploads, each begun before ``before``. It lists the three prefixes (the listings of
        blobs and markers side by side, both in key order): its cost follows the number of
        blobs, so it runs rarely (garbage collection's ``--sweep-uploads``)."""
        keys = [
            self._key("incoming", address)
            async for address, written in self._addresses("incoming")
            if written < before
        ]
        markers = self._addresses("claims")
        marker = await anext(markers, None)
        async for address, written in self._addresses("blobs"):
            while marker is not None and marker[0] < address:
                marker = await anext(markers, None)
            if written < before and (marker is None or marker[0] != address):
                keys.append(self._key("blobs", address))
        for start in range(0, len(keys), DELETE_BATCH):
            try:
                await obstore.delete_async(self._store, keys[start : start + DELETE_BATCH])
            except _FAILED as exc:
                raise _store_error(exc) from None
        aborted = 0
        for key, upload_id, initiated in await self.requests.multipart_uploads(
            f"{self.location.prefix}blobs/"
        ):
            if _epoch(initiated) < before:
                with contextlib.suppress(S3Error):  # completed or aborted meanwhile
                    await self.requests.abort_multipart(key, upload_id)
                    aborted += 1
        return len(keys) + aborted

    async def _addresses(self, kind: str) -> AsyncIterator[tuple[str, float]]:
        """The addresses under ``kind/`` in key order, with when each was last written."""
        try:
            async for batch in obstore.list(self._store, prefix=f"{kind}/", chunk_size=1000):
                for meta in batch:
                    address = str(meta["path"]).rsplit("/", 1)[-1]
                    if _ADDRESS.fullmatch(address):
                        yield address, meta["last_modified"].timestamp()
        except _FAILED as exc:
            raise _store_error(exc) from None

    # --- multipart ------------------------------------------------------------------------

    async def start_multipart(self, address: str) -> str:
        return await self.requests.create_multipart(self._full("blobs", address))

    async def write_part(
        self, address: str, upload_id: str, part_number: int, chunks: AsyncIterable[bytes]
    ) -> BlobInfo:
        """Spools the part to a temporary file (S3 wants its length first), hashing it, then
        streams it to the part's URL."""
        md5 = hashlib.md5()
        size = 0
        with tempfile.TemporaryFile() as spool:
            pending: list[bytes] = []
            held = 0
            async for chunk in chunks:
                md5.update(chunk)
                size += len(chunk)
                pending.append(chunk)
                held += len(chunk)
                if held >= READ_CHUNK:
                    await to_thread.run_sync(spool.write, b"".join(pending))
                    pending, held = [], 0
            await to_thread.run_sync(spool.write, b"".join(pending))
            spool.seek(0)

            async def body() -> AsyncIterator[bytes]:
                while block := await to_thread.run_sync(spool.read, READ_CHUNK):
                    yield block

            url = self.part_url(address, upload_id, part_number, PART_URL_TTL)
            try:
                response = await self._http.put(
                    url, content=body(), headers={"Content-Length": str(size)}
                )
            except httpx.HTTPError as exc:
                raise BlobError(f"blob store unreachable: {exc}") from None
        if response.status_code == 404:
            raise BlobNotFound(f"multipart upload {upload_id} is not in progress")
        if response.status_code >= 300:
            raise BlobError(f"blob store: part {part_number} refused ({response.status_code})")
        return BlobInfo(address, size, md5.hexdigest())

    async def complete_multipart(
        self,
        address: str,
        upload_id: str,
        parts: Sequence[tuple[int, str]],
        *,
        size: int | None = None,
        md5: str | None = None,
    ) -> BlobInfo:
        key = self._full("blobs", address)
        try:
            present = await self.requests.list_parts(key, upload_id)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise
            if await self._exists(self._key("claims", address)):
                raise BlobClaimed("this multipart upload was already completed") from None
            raise BlobNotFound(
                f"multipart upload {upload_id} is not in progress (aborted or unknown)"
            ) from None
        total = 0
        for number, etag in parts:
            if number not in present:
                raise PartMismatch(f"part {number} was not uploaded")
            if present[number][0] != etag:
                raise PartMismatch(f"part {number} ETag {etag!r} does not match the upload")
            total += present[number][1]
        if size is not None and size != total:
            raise BlobMismatch("size", f"size_bytes is {size} but the parts hold {total} bytes")
        marker = await self._mark_claimed(address, "this multipart upload was already completed")
        try:
            await self.requests.complete_multipart(key, upload_id, parts)
        except S3Error as exc:
            await self._delete(marker)
            if exc.code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise PartMismatch(str(exc)) from None
            raise
        if md5 is not None:
            digest = hashlib.md5()
            async for block in self.read(address, 0, total):
                digest.update(block)
            if digest.hexdigest() != md5:
                await self._delete(self._key("blobs", address))
                raise BlobMismatch(
                    "checksum",
                    f"checksum {md5} does not match the parts' bytes ({digest.hexdigest()})",
                )
        return BlobInfo(address, total, multipart_etag([etag for _, etag in parts]))

    async def abort_multipart(self, address: str, upload_id: str) -> None:
        try:
            await self.requests.abort_multipart(self._full("blobs", address), upload_id)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise

    # --- reading --------------------------------------------------------------------------

    async def read(self, address: str, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        if start >= end:
            return
        try:
            result = await obstore.get_async(
                self._store, self._key("blobs", address), options={"range": (start, end)}
            )
            async for chunk in result.stream(min_chunk_size=READ_CHUNK):
                yield memoryview(chunk)  # relayed as received, not copied
        except _MISSING:
            raise BlobNotFound(f"blob {address} not found") from None
        except _FAILED as exc:
            raise _store_error(exc) from None

    async def export(self, items: Sequence[tuple[str, int, Path]]) -> None:
        """Downloads each blob to its file, :data:`EXPORT_CONCURRENCY` at a time; the first
        failure is raised (files written before it stay)."""
        limiter = anyio.CapacityLimiter(EXPORT_CONCURRENCY)
        failures: list[BlobError] = []

        async def one(address: str, size: int, destination: Path) -> None:
            async with limiter:
                if failures:
                    return
                try:
                    await self._export_one(address, size, destination)
                except BlobError as exc:
                    failures.append(exc)

        async with anyio.create_task_group() as group:
            for address, size, destination in items:
                group.start_soon(one, address, size, destination)
        if failures:
            raise failures[0]

    async def _export_one(self, address: str, size: int, destination: Path) -> None:
        try:
            result = await obstore.get_async(self._store, self._key("blobs", address))
        except _MISSING:
            raise BlobNotFound(f"blob {address} not found") from None
        except _FAILED as exc:
            raise _store_error(exc) from None
        if result.meta["size"] != size:
            raise BlobError(
                f"blob {address} is {result.meta['size']} bytes, not the {size} recorded"
            )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = await to_thread.run_sync(os.open, destination, flags, FILE_MODE)
        try:
            await to_thread.run_sync(os.fchmod, fd, FILE_MODE)  # whatever the umask
            async for block in result.stream(min_chunk_size=READ_CHUNK):
                await to_thread.run_sync(_write_all, fd, bytes(block))
        except _FAILED as exc:
            raise _store_error(exc) from None
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of an ISO 8601 time as S3 writes it (``…Z``); an unreadable
    one is taken as the future (what is swept must be known to be old)."""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")

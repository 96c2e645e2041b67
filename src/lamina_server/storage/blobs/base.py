"""The blob store's interface: what a write produced, the errors, and :class:`BlobStore`.

The life of a blob: the API picks an address (:meth:`BlobStore.new_address`), a client uploads
bytes to it (:meth:`~BlobStore.write` leaves them *pending*), and finalizing the upload
*claims* them (:meth:`~BlobStore.claim`), after which they are durable, immutable and
readable at the address the claim answers. A claim succeeds once per address, which is what
makes upload tokens single use. Multipart uploads store durable parts and
:meth:`~BlobStore.complete_multipart` turns a chosen list of them into a claimed blob in one
step.

Errors::

    BlobError           the message is fit for an API response
    ├── BlobNotFound    no bytes at the address (or no such multipart upload)
    ├── BlobExists      bytes were already written to the address
    ├── BlobClaimed     the pending upload was already claimed (finalized)
    ├── PartMismatch    a part named on completion is missing or has another ETag
    └── BlobMismatch    the assembled bytes are not what the client said

A store that clients reach directly (S3) is also a :class:`Presigner`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


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

    async def write(
        self, address: str, chunks: AsyncIterable[bytes], *, md5: str | None = None
    ) -> BlobInfo:
        """Stores ``chunks`` as the pending blob at ``address`` (:class:`BlobExists`).

        ``md5``: the bytes' MD5 as their source vouches for it (an import's single-part S3
        ETag), taken as the blob's ETag without hashing the bytes again. The blob is durable
        once claimed.
        """
        ...

    async def pending(self, address: str, *, in_place: bool = False) -> BlobInfo:
        """The uploaded, not yet claimed blob at ``address`` (``in_place``: uploaded to its
        :meth:`Presigner.upload_url` in place).

        :class:`BlobClaimed` if it was claimed already, :class:`BlobNotFound` if nothing was
        uploaded.
        """
        ...

    async def claim_many(
        self, addresses: Sequence[str], *, in_place: bool = False, internal: bool = False
    ) -> list[str | BlobError]:
        """Makes the pending blob at each address durable, permanent and readable, exactly once,
        all in one batch; per address, the address to read it at from then on, or its error:
        :class:`BlobClaimed` if it was claimed already, :class:`BlobNotFound` if nothing was
        uploaded. Batches may run concurrently. ``internal``: the addresses were never handed
        to a client (no token can claim them again), so a store may skip what only makes a
        claim once-only.
        """
        ...

    async def claim(self, address: str) -> str:
        """:meth:`claim_many` of one address, raising its error."""
        ...

    async def discard(self, address: str, *, in_place: bool = False) -> None:
        """Drops the pending blob at ``address`` (no error if there is none; a claimed one
        stays)."""
        ...

    async def sweep_uploads(self, before: float) -> int:
        """Removes the uploads begun before ``before`` (seconds since the epoch) and never
        finalized — their bytes, unfinished multipart uploads — and counts them. Long after
        their URLs and tokens expired (:data:`STALE_UPLOAD_SECONDS`), nothing can claim them."""
        ...

    def read(self, address: str, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        """Bytes ``[start, end)`` of the claimed blob at ``address``, in chunks (a chunk may
        be a view of the buffer it was received into, not a copy)."""
        ...

    async def export(self, items: Sequence[tuple[str, int, Path]]) -> None:
        """Writes each claimed blob ``(address, size, destination)`` as a new file at
        ``destination`` (whose folder exists, and which must not), mode 0644.

        A blob that is a whole file of its own may become a hard link to it, so the files are
        to be read, never written. :class:`BlobNotFound` if a blob is missing,
        :class:`BlobError` if it is not ``size`` bytes; files written before the error stay.
        """
        ...

    async def delete(self, addresses: Sequence[str]) -> None:
        """Removes the claimed blobs at ``addresses`` for good; an address with nothing stored
        is skipped. Only the garbage collector calls it, for blobs nothing references
        (:mod:`lamina_server.garbage`)."""
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


# An upload not finalized this long after it began is abandoned (its URLs and tokens expired
# long before): :meth:`BlobStore.sweep_uploads` removes it.
STALE_UPLOAD_SECONDS = 7 * 24 * 3600

# What the PUT to an in-place upload URL must carry: the store refuses to write the key again.
IN_PLACE_HEADERS = {"If-None-Match": "*"}


class Presigner(Protocol):
    """A blob store that clients reach directly: it hands out presigned URLs of its own, so
    that upload and download bytes bypass the API process (``ttl`` in seconds)."""

    def upload_url(self, address: str, ttl: float, *, in_place: bool = False) -> str:
        """A URL to ``PUT`` the bytes of the pending upload at ``address`` to. ``in_place``:
        the bytes go straight to where the claimed blob is read from, written once (the
        request must carry :data:`IN_PLACE_HEADERS`), so a claim moves nothing."""
        ...

    def part_url(self, address: str, upload_id: str, part_number: int, ttl: float) -> str:
        """A URL to ``PUT`` one part of the multipart upload ``upload_id`` to."""
        ...

    def download_url(self, address: str, content_type: str, ttl: float) -> str:
        """A URL to ``GET`` (with a ``Range`` or not) the claimed blob at ``address``, which
        answers ``content_type``."""
        ...


def multipart_etag(part_md5s: Sequence[str]) -> str:
    digest = hashlib.md5(b"".join(bytes.fromhex(md5) for md5 in part_md5s))
    return f"{digest.hexdigest()}-{len(part_md5s)}"

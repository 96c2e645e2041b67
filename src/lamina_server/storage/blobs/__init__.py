"""Blob storage: object bytes at server-chosen addresses, behind a narrow async interface.

:mod:`.base` holds the interface (:class:`BlobStore`), what a write produced
(:class:`BlobInfo`) and the errors, rooted at :class:`BlobError`. :mod:`.local` is the store
on a local folder, built from its folder :mod:`.layout`, the receiving of uploads
(:mod:`.receive`), the packs of small blobs (:mod:`.packs`) and multipart uploads
(:mod:`.multipart`). :mod:`.s3` is the store on an S3 bucket (the ``s3`` extra), which is
also a :class:`Presigner`; :mod:`.backend` picks one of them.
"""

from __future__ import annotations

from lamina_server.storage.blobs.base import (
    IN_PLACE_HEADERS,
    STALE_UPLOAD_SECONDS,
    BlobClaimed,
    BlobError,
    BlobExists,
    BlobInfo,
    BlobMismatch,
    BlobNotFound,
    BlobStore,
    PartMismatch,
    Presigner,
    multipart_etag,
)
from lamina_server.storage.blobs.local import (
    READ_SIZE,
    SHARD_RUN,
    SMALL_BLOB,
    SMALL_BUDGET,
    LocalBlobStore,
)
from lamina_server.storage.blobs.receive import CHUNK_SIZE

__all__ = [
    "CHUNK_SIZE",
    "IN_PLACE_HEADERS",
    "READ_SIZE",
    "SHARD_RUN",
    "SMALL_BLOB",
    "SMALL_BUDGET",
    "STALE_UPLOAD_SECONDS",
    "BlobClaimed",
    "BlobError",
    "BlobExists",
    "BlobInfo",
    "BlobMismatch",
    "BlobNotFound",
    "BlobStore",
    "LocalBlobStore",
    "PartMismatch",
    "Presigner",
    "multipart_etag",
]

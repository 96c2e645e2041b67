"""Which blob store a server uses: the local folder (the embedded default) or, for an
``s3://`` URL, :class:`~lamina_server.storage.blobs.s3.S3BlobStore`, imported only then (it
needs the ``s3`` extra, ``obstore``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lamina_server.storage.blobs.base import BlobStore, Presigner
from lamina_server.storage.blobs.local import LocalBlobStore
from lamina_server.storage.blobs.s3_location import BlobStoreUrlError, S3Location, parse_s3_url


@dataclass(frozen=True)
class BlobBackend:
    """The store; its presigner when clients reach it directly; what closes it."""

    store: BlobStore
    presigner: Presigner | None
    close: Callable[[], Awaitable[None]] | None


def check_blob_store(url: str | None, environ: Mapping[str, str]) -> S3Location | None:
    """The S3 location ``url`` names (None: the local folder); :class:`BlobStoreUrlError`
    when it names no usable store."""
    if url is None:
        return None
    location = parse_s3_url(url, environ)
    try:
        import obstore  # noqa: F401
    except ImportError:
        raise BlobStoreUrlError(
            "an s3:// blob store needs obstore: pip install 'lamina[server,s3]'"
        ) from None
    return location


def open_blob_store(url: str | None, root: Path, environ: Mapping[str, str]) -> BlobBackend:
    """The store ``url`` names; the local folder ``root`` when it is None."""
    location = check_blob_store(url, environ)
    if location is None:
        return BlobBackend(LocalBlobStore(root), None, None)
    from lamina_server.storage.blobs.s3 import S3BlobStore

    store = S3BlobStore(location)
    return BlobBackend(store, store, store.close)

"""The suite's blob store: the local folder, as shipped, or with ``LAMINA_TEST_BLOB_STORE=s3``
a real SeaweedFS the session starts, every server the tests start keeping its object bytes
there (one bucket, a prefix of its own per data directory: a restart or a second process on
the same directory finds the same blobs)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lamina_server.storage.blobs.backend import BlobBackend
    from tests.server.seaweedfs import SeaweedFS

BUCKET = "lamina-suite"

STORE: SeaweedFS | None = None  # the session's SeaweedFS, on an S3 run


def enabled() -> bool:
    """Whether the suite runs with its blobs in S3 (``LAMINA_TEST_BLOB_STORE=s3``)."""
    return os.environ.get("LAMINA_TEST_BLOB_STORE", "local").lower() == "s3"


def url_for(data_dir: Path) -> str | None:
    """The ``--blob-store`` URL of the server on ``data_dir`` on an S3 run; None otherwise."""
    if STORE is None:
        return None
    prefix = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return STORE.url(BUCKET, prefix)


def args_for(data_dir: Path) -> list[str]:
    """``lamina server`` flags naming that blob store (none on a local-folder run)."""
    url = url_for(data_dir)
    return ["--blob-store", url] if url is not None else []


def backend_for(data_dir: Path) -> BlobBackend:
    """The blob store a server on ``data_dir`` opens (for tests that build the engine
    directly), as the server opens it: its store, and what closes it."""
    from lamina_server.storage.blobs.backend import open_blob_store

    return open_blob_store(url_for(data_dir), data_dir / "blobs", {})

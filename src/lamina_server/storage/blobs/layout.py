"""Where :class:`~lamina_server.storage.blobs.local.LocalBlobStore` keeps things, and the
blocking file-system steps its parts share.

The folder (``<data dir>/blobs``)::

    tmp/<pid>-<n>                     bytes being received (removed on start)
    incoming/<address>                uploaded, not yet claimed (removed on start after a week)
    objects/<aa>/<address>            claimed single-upload blob (aa = first two hex digits);
                                      for a small one, a second name of its pack
    objects/<aa>/<address>.parts/     claimed multipart blob: part files and manifest.json
    objects/packs/<n>.pack            claimed small blobs, back to back; such a blob's address
                                      is ``p<n>.<offset>.<size>`` (hex)
    uploads/<upload id>/<n>.<md5>     parts of a multipart upload in progress (ditto)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from pathlib import Path

from lamina_server.storage.blobs.base import STALE_UPLOAD_SECONDS, BlobClaimed, BlobNotFound

_ADDRESS = re.compile(r"[0-9a-f]{32}")


def check_id(value: str, what: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise BlobNotFound(f"{what} {value!r} is not valid")
    return value


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_once(source: str, final: str) -> None:
    """Links ``final`` to ``source``; :class:`BlobClaimed` if ``final`` exists already."""
    try:
        os.link(source, final)
    except FileExistsError:
        raise BlobClaimed("this upload was already finalized") from None


def _is_stale(entry: os.DirEntry[str], cutoff: float) -> bool:
    try:
        return entry.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


class Layout:
    """The paths of one store's folder. Creating it creates the folders."""

    def __init__(self, root: Path) -> None:
        self.tmp = str(root / "tmp")
        self.incoming = str(root / "incoming")
        self.objects = str(root / "objects")
        self.uploads = str(root / "uploads")
        self.packs = str(root / "objects" / "packs")
        for folder in (self.tmp, self.incoming, self.uploads, self.packs):
            os.makedirs(folder, exist_ok=True)
        for shard in range(256):
            os.makedirs(os.path.join(self.objects, f"{shard:02x}"), exist_ok=True)

    def stored(self, address: str) -> str:
        """Where the claimed single-upload blob lives (``.parts`` appended: multipart)."""
        return os.path.join(self.objects, address[:2], check_id(address, "blob address"))

    def pending(self, address: str) -> str:
        return os.path.join(self.incoming, check_id(address, "blob address"))

    def upload_dir(self, upload_id: str) -> str:
        return os.path.join(self.uploads, check_id(upload_id, "upload id"))

    def clean(self) -> None:
        """Removes half-received files, and uploads nobody finished within a week."""
        for entry in os.scandir(self.tmp):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
        self.sweep(time.time() - STALE_UPLOAD_SECONDS)

    def sweep(self, before: float) -> tuple[list[str], int]:
        """Removes single and multipart uploads last written before ``before``: the addresses
        of the single ones, and how many multipart ones."""
        singles: list[str] = []
        for entry in os.scandir(self.incoming):
            if _is_stale(entry, before):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    singles.append(entry.name)
        multipart = 0
        for entry in os.scandir(self.uploads):
            if _is_stale(entry, before):
                shutil.rmtree(entry.path, ignore_errors=True)
                multipart += 1
        return singles, multipart

"""Multipart uploads of the local store.

Parts are received into ``uploads/<upload id>/<n>.<md5>``, durably. Completing the upload
writes a manifest of the chosen parts and moves the folder to ``objects/<aa>/<address>.parts``
with one directory rename: a multipart blob is never copied, and reads stream across its parts.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterable, Sequence

from anyio import to_thread

from lamina_server.storage.blobs.base import (
    BlobClaimed,
    BlobInfo,
    BlobMismatch,
    BlobNotFound,
    PartMismatch,
    multipart_etag,
)
from lamina_server.storage.blobs.layout import Layout, check_id, fsync_dir
from lamina_server.storage.blobs.receive import CHUNK_SIZE, TempFile, next_block, receive

_PART_FILE = re.compile(r"([0-9]{5})\.([0-9a-f]{32})")
_MANIFEST = "manifest.json"


async def start(layout: Layout, address: str, upload_id: str) -> None:
    check_id(address, "blob address")
    folder = layout.upload_dir(upload_id)

    def make() -> None:
        os.mkdir(folder)
        fsync_dir(layout.uploads)

    await to_thread.run_sync(make)


async def write_part(
    layout: Layout, address: str, upload_id: str, part_number: int, chunks: AsyncIterable[bytes]
) -> BlobInfo:
    check_id(address, "blob address")
    folder = layout.upload_dir(upload_id)
    if not 1 <= part_number <= 99999:
        raise PartMismatch(f"part number {part_number} is out of range")
    gone = f"multipart upload {upload_id} is not in progress"

    def place(temp: TempFile) -> None:
        try:
            temp.link(os.path.join(folder, f"{part_number:05d}.{temp.md5.hexdigest()}"))
        except FileExistsError:
            pass  # the same bytes again: the part is already there
        except FileNotFoundError:
            raise BlobNotFound(gone) from None

    if not os.path.isdir(folder):  # fail before receiving the body
        raise BlobNotFound(gone)
    stream = chunks.__aiter__()
    data, more = await next_block(stream)
    temp = await receive(layout.tmp, data, more, stream, place)
    return BlobInfo(address, temp.size, temp.md5.hexdigest())


def complete(
    layout: Layout,
    address: str,
    upload_id: str,
    parts: Sequence[tuple[int, str]],
    size: int | None,
    md5: str | None,
) -> BlobInfo:
    """Claims the ``(part_number, etag)`` parts, in order, as the blob at ``address``
    (blocking); see :meth:`~lamina_server.storage.blobs.BlobStore.complete_multipart`."""
    folder = layout.upload_dir(upload_id)
    final = layout.stored(address) + ".parts"
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
    info = BlobInfo(address, sum(n for _, n in files), multipart_etag([e for _, e in parts]))
    if size is not None and size != info.size:
        raise BlobMismatch("size", f"size_bytes is {size} but the parts hold {info.size} bytes")
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
    fsync_dir(folder)
    try:
        os.rename(folder, final)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise BlobClaimed("this multipart upload was already completed") from None
        raise
    fsync_dir(os.path.dirname(final))
    fsync_dir(layout.uploads)
    return info


async def abort(layout: Layout, address: str, upload_id: str) -> None:
    check_id(address, "blob address")
    folder = layout.upload_dir(upload_id)
    await to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))


def read_manifest(folder: str) -> list[tuple[str, int, int]] | None:
    """The segments (path, offset, size) of the multipart blob in ``folder`` (None: there is
    none; blocking)."""
    try:
        with open(os.path.join(folder, _MANIFEST), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        return None
    return [(os.path.join(folder, name), 0, size) for name, size in manifest["parts"]]

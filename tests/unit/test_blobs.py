"""LocalBlobStore on a real folder: durable writes, single claims, reads, multipart, debris."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lamina_server.storage.blobs import (
    CHUNK_SIZE,
    BlobClaimed,
    BlobExists,
    BlobMismatch,
    BlobNotFound,
    LocalBlobStore,
    PartMismatch,
    multipart_etag,
)

pytestmark = pytest.mark.anyio


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _read(store: LocalBlobStore, address: str, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in store.read(address, start, end)])


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def _stored(store: LocalBlobStore, data: bytes) -> str:
    address = store.new_address()
    await store.write(address, _chunks(data))
    await store.claim(address)
    return address


async def test_write_reports_size_and_md5_and_claim_makes_it_readable(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(CHUNK_SIZE * 2 + 123)  # crosses the 1 MiB write buffer twice
    address = store.new_address()
    info = await store.write(address, _chunks(data))
    assert (info.address, info.size, info.etag) == (address, len(data), _md5(data))
    assert await store.pending(address) == info
    await store.claim(address)
    assert await _read(store, address, 0, len(data)) == data
    assert os.listdir(tmp_path / "tmp") == []
    assert os.listdir(tmp_path / "incoming") == []


async def test_pending_info_survives_a_restart(tmp_path: Path) -> None:
    data = b"hello world"
    address = LocalBlobStore(tmp_path).new_address()
    await LocalBlobStore(tmp_path).write(address, _chunks(data))
    info = await LocalBlobStore(tmp_path).pending(address)  # fresh store: rescans the bytes
    assert (info.size, info.etag) == (len(data), _md5(data))


async def test_empty_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    address = await _stored(store, b"")
    assert await _read(store, address, 0, 0) == b""
    assert (await store.write(store.new_address(), _chunks(b""))).etag == _md5(b"")


async def test_claims_happen_once_and_blobs_are_never_overwritten(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    address = store.new_address()
    await store.write(address, _chunks(b"first"))
    with pytest.raises(BlobExists):
        await store.write(address, _chunks(b"second"))
    await store.claim(address)
    with pytest.raises(BlobClaimed):
        await store.claim(address)
    with pytest.raises(BlobClaimed):
        await store.pending(address)
    with pytest.raises(BlobExists):
        await store.write(address, _chunks(b"overwrite"))
    assert await _read(store, address, 0, 5) == b"first"


async def test_nothing_uploaded(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    address = store.new_address()
    with pytest.raises(BlobNotFound):
        await store.pending(address)
    with pytest.raises(BlobNotFound):
        await store.claim(address)
    with pytest.raises(BlobNotFound):
        await _read(store, address, 0, 1)


async def test_discard_drops_a_pending_upload(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    address = store.new_address()
    await store.write(address, _chunks(b"bytes"))
    await store.discard(address)
    await store.discard(address)
    with pytest.raises(BlobNotFound):
        await store.pending(address)


async def test_addresses_are_checked(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(BlobNotFound, match="not valid"):
        await store.write("../../etc/passwd", _chunks(b"x"))


async def test_failed_stream_leaves_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * (CHUNK_SIZE + 1)
        raise ConnectionError("client went away")

    address = store.new_address()
    with pytest.raises(ConnectionError):
        await store.write(address, broken())
    assert os.listdir(tmp_path / "tmp") == []
    with pytest.raises(BlobNotFound):
        await store.pending(address)


async def test_ranges(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(CHUNK_SIZE + 10)
    address = await _stored(store, data)
    for start, end in [(0, 1), (5, 17), (CHUNK_SIZE - 3, CHUNK_SIZE + 10), (0, len(data))]:
        assert await _read(store, address, start, end) == data[start:end]
    chunks = [chunk async for chunk in store.read(address, 0, len(data))]
    assert [len(chunk) for chunk in chunks] == [CHUNK_SIZE, 10]


async def test_multipart_composes_without_copying(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    parts = [os.urandom(1000), os.urandom(10), os.urandom(CHUNK_SIZE + 5)]
    address = store.new_address()
    upload_id = await store.start_multipart(address)
    infos = [
        await store.write_part(address, upload_id, number, _chunks(part))
        for number, part in enumerate(parts, 1)
    ]
    assert [info.etag for info in infos] == [_md5(part) for part in parts]
    # a stray extra part that is not listed is dropped at completion
    await store.write_part(address, upload_id, 9, _chunks(b"unused"))
    listed = [(number, info.etag) for number, info in enumerate(infos, 1)]
    info = await store.complete_multipart(address, upload_id, listed)
    data = b"".join(parts)
    assert info.size == len(data)
    assert info.etag == multipart_etag([_md5(part) for part in parts])
    assert info.etag.endswith("-3")
    assert await _read(store, address, 0, len(data)) == data
    assert await _read(store, address, 995, 1015) == data[995:1015]  # spans parts 1-3
    assert await _read(LocalBlobStore(tmp_path), address, 1005, 1012) == data[1005:1012]
    assert os.listdir(tmp_path / "uploads") == []
    part_files = os.listdir(tmp_path / "objects" / address[:2] / f"{address}.parts")
    assert len(part_files) == 4  # three parts and the manifest
    with pytest.raises(BlobClaimed):
        await store.complete_multipart(address, upload_id, listed)


async def test_multipart_reuploaded_part_is_chosen_by_etag(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    address = store.new_address()
    upload_id = await store.start_multipart(address)
    old = await store.write_part(address, upload_id, 1, _chunks(b"old"))
    new = await store.write_part(address, upload_id, 1, _chunks(b"new!"))
    again = await store.write_part(address, upload_id, 1, _chunks(b"new!"))
    assert again == new
    info = await store.complete_multipart(address, upload_id, [(1, new.etag)])
    assert await _read(store, address, 0, info.size) == b"new!"
    assert old.etag != new.etag


async def test_multipart_mismatches_claim_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    address = store.new_address()
    upload_id = await store.start_multipart(address)
    part = await store.write_part(address, upload_id, 1, _chunks(b"abc"))
    with pytest.raises(PartMismatch, match="part 2 was not uploaded"):
        await store.complete_multipart(address, upload_id, [(1, part.etag), (2, part.etag)])
    with pytest.raises(PartMismatch, match="part 1 ETag"):
        await store.complete_multipart(address, upload_id, [(1, "0" * 32)])
    with pytest.raises(BlobMismatch, match="parts hold 3 bytes") as size_error:
        await store.complete_multipart(address, upload_id, [(1, part.etag)], size=4)
    assert size_error.value.field == "size"
    with pytest.raises(BlobMismatch, match="checksum"):
        await store.complete_multipart(address, upload_id, [(1, part.etag)], md5="0" * 32)
    info = await store.complete_multipart(
        address, upload_id, [(1, part.etag)], size=3, md5=_md5(b"abc")
    )
    assert await _read(store, address, 0, info.size) == b"abc"


async def test_abort_removes_parts_and_blocks_further_parts(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    address = store.new_address()
    upload_id = await store.start_multipart(address)
    part = await store.write_part(address, upload_id, 1, _chunks(b"abc"))
    await store.abort_multipart(address, upload_id)
    await store.abort_multipart(address, upload_id)
    assert os.listdir(tmp_path / "uploads") == []
    with pytest.raises(BlobNotFound):
        await store.write_part(address, upload_id, 2, _chunks(b"late"))
    with pytest.raises(BlobNotFound, match="not in progress"):
        await store.complete_multipart(address, upload_id, [(1, part.etag)])


async def test_start_cleans_debris_but_keeps_recent_uploads(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    fresh = store.new_address()
    await store.write(fresh, _chunks(b"fresh"))
    stale = store.new_address()
    await store.write(stale, _chunks(b"stale"))
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(tmp_path / "incoming" / stale, (week_ago, week_ago))
    (tmp_path / "tmp" / "half-written").write_bytes(b"partial")
    upload_id = await store.start_multipart(store.new_address())
    os.utime(tmp_path / "uploads" / upload_id, (week_ago, week_ago))

    restarted = LocalBlobStore(tmp_path)
    assert os.listdir(tmp_path / "tmp") == []
    assert os.listdir(tmp_path / "uploads") == []
    assert (await restarted.pending(fresh)).size == 5
    with pytest.raises(BlobNotFound):
        await restarted.pending(stale)

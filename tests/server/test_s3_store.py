"""The S3 blob store against a real SeaweedFS: the store's contract (pending uploads, claims
once, ranged reads, multipart, abort, export) and its presigned URLs."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import httpx
import pytest

from lamina_server.storage.blobs import (
    IN_PLACE_HEADERS,
    BlobClaimed,
    BlobError,
    BlobMismatch,
    BlobNotFound,
    PartMismatch,
    multipart_etag,
)
from lamina_server.storage.blobs.s3 import S3BlobStore
from lamina_server.storage.blobs.s3_location import parse_s3_url
from tests.server.seaweedfs import SeaweedFS

pytestmark = pytest.mark.anyio

MIB = 1024 * 1024


@pytest.fixture
async def store(
    seaweedfs: SeaweedFS, unique_name: Callable[..., str]
) -> AsyncIterator[S3BlobStore]:
    blobs = S3BlobStore(parse_s3_url(seaweedfs.url(unique_name("bucket"), "lamina/blobs"), {}))
    await blobs.requests.create_bucket()
    yield blobs
    await blobs.close()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(store: S3BlobStore, address: str, start: int, end: int) -> bytes:
    return b"".join([chunk async for chunk in store.read(address, start, end)])


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def test_presigned_upload_claim_and_ranged_reads(store: S3BlobStore) -> None:
    address = store.new_address()
    data = os.urandom(300_000)
    async with httpx.AsyncClient() as http:
        url = store.upload_url(address, 60)
        assert url.startswith(store.location.endpoint)
        put = await http.put(url, content=data, headers={"Content-Type": "x/y"})
        assert put.status_code == 200, put.text
        assert put.headers["etag"] == f'"{md5(data)}"'  # what the tilde SDK sends as checksum
        info = await store.pending(address)
        assert (info.size, info.etag) == (len(data), md5(data))
        assert await store.claim(address) == address
        assert await read_all(store, address, 0, len(data)) == data
        assert await read_all(store, address, 1000, 1010) == data[1000:1010]
        with pytest.raises(BlobClaimed):
            await store.claim(address)
        with pytest.raises(BlobClaimed):
            await store.pending(address)
        # Downloads go to the store too, with the object's content type and ranges.
        got = await http.get(
            store.download_url(address, "text/csv", 60), headers={"Range": "bytes=5-9"}
        )
        assert (got.status_code, got.content) == (206, data[5:10])
        assert got.headers["content-type"] == "text/csv"
        assert got.headers["etag"] == f'"{md5(data)}"'
        # The upload URL cannot change a claimed blob: it names the incoming key only.
        await http.put(url, content=b"changed")
        assert await read_all(store, address, 0, 7) == data[:7]


async def test_server_writes_and_missing_uploads(store: S3BlobStore) -> None:
    address = store.new_address()
    info = await store.write(address, chunks(b"hello ", b"world"))
    assert (info.size, info.etag) == (11, md5(b"hello world"))
    assert await store.claim(address) == address
    assert await read_all(store, address, 0, 11) == b"hello world"
    with pytest.raises(BlobNotFound):
        await store.pending(store.new_address())
    outcomes = await store.claim_many([store.new_address(), address])
    assert isinstance(outcomes[0], BlobNotFound) and isinstance(outcomes[1], BlobClaimed)
    with pytest.raises(BlobNotFound):
        await store.pending("../../etc/passwd")
    with pytest.raises(BlobNotFound):
        await read_all(store, store.new_address(), 0, 1)
    discarded = store.new_address()
    await store.write(discarded, chunks(b"x"))
    await store.discard(discarded)
    with pytest.raises(BlobNotFound):
        await store.pending(discarded)


async def test_the_collector_deletes_claimed_blobs(store: S3BlobStore) -> None:
    kept, gone = store.new_address(), store.new_address()
    for address in (kept, gone):
        await store.write(address, chunks(b"bytes"))
        await store.claim(address)
    await store.delete([gone, store.new_address()])  # nothing stored at the second: skipped
    with pytest.raises(BlobNotFound):
        await read_all(store, gone, 0, 5)
    assert await read_all(store, kept, 0, 5) == b"bytes"


async def test_a_claim_happens_once_among_concurrent_claims(store: S3BlobStore) -> None:
    address = store.new_address()
    await store.write(address, chunks(b"once"))
    outcomes = await store.claim_many([address] * 8)
    assert outcomes.count(address) == 1
    assert all(isinstance(o, BlobClaimed) for o in outcomes if o != address)


async def test_bytes_replaced_after_finalize_checked_them_are_not_claimed(
    store: S3BlobStore,
) -> None:
    address = store.new_address()
    async with httpx.AsyncClient() as http:
        url = store.upload_url(address, 60)
        await http.put(url, content=b"checked")
        info = await store.pending(address)
        await http.put(url, content=b"swapped!")
        with pytest.raises(BlobError, match="changed"):
            await store.claim(address)
        with pytest.raises(BlobNotFound):
            await read_all(store, address, 0, 1)
        # Nothing was claimed: finalizing again checks the bytes that are there now.
        again = await store.pending(address)
        assert (again.size, again.etag) != (info.size, info.etag)
        assert await store.claim(address) == address
        assert await read_all(store, address, 0, 8) == b"swapped!"


async def _upload_parts(store: S3BlobStore, address: str, upload_id: str, parts: list[bytes]):
    etags = []
    async with httpx.AsyncClient() as http:
        for number, part in enumerate(parts, start=1):
            url = store.part_url(address, upload_id, number, 60)
            assert url.startswith(store.location.endpoint)
            put = await http.put(url, content=part)
            assert put.status_code == 200, put.text
            etags.append((number, put.headers["etag"].strip('"')))
    return etags


async def test_multipart_through_presigned_part_urls(store: S3BlobStore) -> None:
    address = store.new_address()
    upload_id = await store.start_multipart(address)
    parts = [os.urandom(5 * MIB), os.urandom(MIB + 7)]
    etags = await _upload_parts(store, address, upload_id, parts)
    assert [etag for _, etag in etags] == [md5(part) for part in parts]
    whole = b"".join(parts)
    with pytest.raises(BlobMismatch) as mismatch:
        await store.complete_multipart(address, upload_id, etags, size=len(whole) - 1)
    assert mismatch.value.field == "size"
    with pytest.raises(PartMismatch, match="part 2 ETag"):
        await store.complete_multipart(address, upload_id, [etags[0], (2, "0" * 32)])
    with pytest.raises(PartMismatch, match="part 3 was not uploaded"):
        await store.complete_multipart(address, upload_id, [*etags, (3, "0" * 32)])
    with pytest.raises(BlobNotFound):  # nothing claimed by the failures above
        await read_all(store, address, 0, 1)
    info = await store.complete_multipart(
        address, upload_id, etags, size=len(whole), md5=md5(whole)
    )
    assert (info.size, info.etag) == (len(whole), multipart_etag([md5(p) for p in parts]))
    assert (
        await read_all(store, address, 5 * MIB - 3, 5 * MIB + 3) == whole[5 * MIB - 3 : 5 * MIB + 3]
    )
    async with httpx.AsyncClient() as http:
        got = await http.get(store.download_url(address, "application/octet-stream", 60))
    assert got.content == whole
    assert got.headers["etag"].strip('"') == info.etag  # S3's ETag of the parts is the contract's
    with pytest.raises(BlobClaimed):
        await store.complete_multipart(address, upload_id, etags)


async def test_multipart_checksum_mismatch_and_abort(store: S3BlobStore) -> None:
    address = store.new_address()
    upload_id = await store.start_multipart(address)
    etags = await _upload_parts(store, address, upload_id, [b"abc"])
    with pytest.raises(BlobMismatch) as mismatch:
        await store.complete_multipart(address, upload_id, etags, md5="0" * 32)
    assert mismatch.value.field == "checksum"
    with pytest.raises(BlobNotFound):
        await read_all(store, address, 0, 1)
    aborted = store.new_address()
    upload_id = await store.start_multipart(aborted)
    etags = await _upload_parts(store, aborted, upload_id, [b"abc"])
    await store.abort_multipart(aborted, upload_id)
    await store.abort_multipart(aborted, upload_id)  # gone already: no error
    with pytest.raises(BlobNotFound, match="not in progress"):
        await store.complete_multipart(aborted, upload_id, etags)
    with pytest.raises(BlobNotFound, match="not in progress"):
        await store.write_part(aborted, upload_id, 1, chunks(b"x"))


async def test_parts_the_server_sends_itself(store: S3BlobStore) -> None:
    """The S3 gateway's parts: streamed through the server into the S3 multipart upload."""
    address = store.new_address()
    upload_id = await store.start_multipart(address)
    parts = [os.urandom(5 * MIB + 3), os.urandom(1000)]
    written = [
        await store.write_part(address, upload_id, number, chunks(part))
        for number, part in enumerate(parts, start=1)
    ]
    assert [(info.size, info.etag) for info in written] == [(len(p), md5(p)) for p in parts]
    info = await store.complete_multipart(
        address, upload_id, [(number, part.etag) for number, part in enumerate(written, 1)]
    )
    assert await read_all(store, address, 0, info.size) == b"".join(parts)


async def test_export_downloads_blobs_to_files(store: S3BlobStore, tmp_path: Path) -> None:
    blobs = {
        b"": store.new_address(),
        b"small": store.new_address(),
        os.urandom(9 * MIB): store.new_address(),
    }
    for data, address in blobs.items():
        await store.write(address, chunks(data))
        await store.claim(address)
    items = [
        (address, len(data), tmp_path / f"f{i}") for i, (data, address) in enumerate(blobs.items())
    ]
    await store.export(items)
    for (data, _), (_, _, path) in zip(blobs.items(), items, strict=True):
        assert path.read_bytes() == data
        assert path.stat().st_mode & 0o777 == 0o644
    with pytest.raises(BlobNotFound):
        await store.export([(store.new_address(), 3, tmp_path / "missing")])
    with pytest.raises(BlobError, match="not the 4 recorded"):
        await store.export([(blobs[b"small"], 4, tmp_path / "short")])
    await anyio.sleep(0)


async def test_abandoned_uploads_are_swept_and_nothing_claimed_is(store: S3BlobStore) -> None:
    async def exists(kind: str, address: str) -> bool:
        return await store._exists(store._key(kind, address))

    claimed = store.new_address()
    await store.write(claimed, chunks(b"kept"))
    await store.claim(claimed)
    in_place_claimed, in_place_left, left = (store.new_address() for _ in range(3))
    async with httpx.AsyncClient() as http:
        for address in (in_place_claimed, in_place_left):
            url = store.upload_url(address, 60, in_place=True)
            put = await http.put(url, content=b"direct", headers=IN_PLACE_HEADERS)
            assert put.status_code == 200, put.text
    assert (await store.pending(in_place_claimed, in_place=True)).size == 6
    assert await store.claim_many([in_place_claimed], in_place=True) == [in_place_claimed]
    await store.write(left, chunks(b"never finalized"))
    multipart = store.new_address()
    unfinished = await store.start_multipart(multipart)

    assert await store.sweep_uploads(time.time() - 3600) == 0  # all of them are younger
    assert await store.sweep_uploads(time.time() + 1) == 3
    assert not await exists("incoming", left)
    assert not await exists("blobs", in_place_left)
    assert await read_all(store, claimed, 0, 4) == b"kept"
    assert await read_all(store, in_place_claimed, 0, 6) == b"direct"
    assert await store.requests.multipart_uploads(f"{store.location.prefix}blobs/") == []
    with pytest.raises(BlobNotFound):
        await store.complete_multipart(multipart, unfinished, [(1, "0" * 32)])  # aborted

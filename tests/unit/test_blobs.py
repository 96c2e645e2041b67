"""LocalBlobStore on a real folder: writes, small blobs and packs, single claims, reads,
multipart, debris."""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import pytest

from lamina_server.storage.blobs import (
    CHUNK_SIZE,
    READ_SIZE,
    SHARD_RUN,
    SMALL_BLOB,
    BlobClaimed,
    BlobError,
    BlobExists,
    BlobMismatch,
    BlobNotFound,
    LocalBlobStore,
    PartMismatch,
    multipart_etag,
    packs,
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
    """Uploads and claims ``data``; the address to read it at."""
    address = store.new_address()
    await store.write(address, _chunks(data))
    return await store.claim(address)


async def test_write_reports_size_and_md5_and_claim_makes_it_readable(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(CHUNK_SIZE * 2 + 123)  # crosses the 1 MiB write buffer twice
    address = store.new_address()
    info = await store.write(address, _chunks(data))
    assert (info.address, info.size, info.etag) == (address, len(data), _md5(data))
    assert await store.pending(address) == info
    assert await store.claim(address) == address  # a large blob is read where it was put
    assert await _read(store, address, 0, len(data)) == data
    assert os.listdir(tmp_path / "tmp") == []
    assert os.listdir(tmp_path / "incoming") == []


async def test_a_large_pending_upload_survives_a_restart(tmp_path: Path) -> None:
    data = os.urandom(SMALL_BLOB + 1)
    address = LocalBlobStore(tmp_path).new_address()
    await LocalBlobStore(tmp_path).write(address, _chunks(data))
    info = await LocalBlobStore(tmp_path).pending(address)  # fresh store: rescans the bytes
    assert (info.size, info.etag) == (len(data), _md5(data))


async def test_small_uploads_wait_in_memory_and_are_packed_when_claimed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    blobs = [os.urandom(size) for size in (0, 1, 4096, SMALL_BLOB)]
    addresses = [store.new_address() for _ in blobs]
    for address, data in zip(addresses, blobs, strict=True):
        info = await store.write(address, _chunks(data, 1000))
        assert (info.address, info.size, info.etag) == (address, len(data), _md5(data))
    assert os.listdir(tmp_path / "incoming") == os.listdir(tmp_path / "tmp") == []
    finals = [await store.claim(address) for address in addresses]
    assert all(re.fullmatch(r"p[0-9a-f]{8}\.[0-9a-f]{12}\.[0-9a-f]{8}", f) for f in finals)
    assert len(os.listdir(tmp_path / "objects" / "packs")) == 1
    for final, data in zip(finals, blobs, strict=True):
        assert await _read(store, final, 0, len(data)) == data
        assert await _read(store, final, 1, 3) == data[1:3]
    restarted = LocalBlobStore(tmp_path)  # reads the packs, and appends to a pack of its own
    assert await _read(restarted, finals[2], 0, 4096) == blobs[2]
    later = await _stored(restarted, b"after the restart")
    assert later.split(".")[0] != finals[0].split(".")[0]
    assert await _read(restarted, later, 0, 100) == b"after the restart"


async def test_a_pack_counts_only_the_names_linked_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "PACK_LINKS", 3)
    store = LocalBlobStore(tmp_path)

    async def claimed(internal: bool) -> str:
        address = store.new_address()
        await store.write(address, _chunks(b"small"))
        (final,) = await store.claim_many([address], internal=internal)
        assert isinstance(final, str)
        return final.split(".")[0]

    # Internal claims link no name: any number of them fit in one pack.
    first = {await claimed(internal=True) for _ in range(5)}
    assert len(first) == 1
    linked = [await claimed(internal=False) for _ in range(4)]
    assert linked[:3] == [*first] * 3  # three names fit
    assert linked[3] not in first  # the fourth starts a new pack


async def test_two_stores_on_one_folder_pack_into_packs_of_their_own(tmp_path: Path) -> None:
    first, second = LocalBlobStore(tmp_path), LocalBlobStore(tmp_path)
    a = await _stored(first, b"from the first")
    b = await _stored(second, b"from the second")  # the pack number it expected is taken
    assert a.split(".")[0] != b.split(".")[0]
    assert len(os.listdir(tmp_path / "objects" / "packs")) == 2
    assert await _read(second, a, 0, 100) == b"from the first"
    assert await _read(first, b, 0, 100) == b"from the second"


async def test_a_small_blob_is_claimed_once_across_restarts(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    address = store.new_address()
    await store.write(address, _chunks(b"original"))
    final = await store.claim(address)
    restarted = LocalBlobStore(tmp_path)
    with pytest.raises(BlobClaimed):
        await restarted.pending(address)
    await restarted.write(address, _chunks(b"replayed"))  # sent again to the same URL...
    with pytest.raises(BlobClaimed):
        await restarted.claim(address)  # ...it is never claimed a second time
    assert await _read(restarted, final, 0, 8) == b"original"


async def test_internal_claims_name_no_small_blob_in_objects(tmp_path: Path) -> None:
    """Addresses never handed out (a batched upload's) need no once-only name: small blobs
    are only packed, large ones still linked; both read back, also after a restart."""
    store = LocalBlobStore(tmp_path)
    blobs = [b"small one", b"small two", os.urandom(SMALL_BLOB + 1)]
    addresses = [store.new_address() for _ in blobs]
    for address, data in zip(addresses, blobs, strict=True):
        await store.write(address, _chunks(data, 1000))
    finals = await store.claim_many(addresses, internal=True)
    named = [
        name
        for folder in os.listdir(tmp_path / "objects")
        if folder != "packs"
        for name in os.listdir(tmp_path / "objects" / folder)
    ]
    assert named == [addresses[2]]  # the large blob's file only
    restarted = LocalBlobStore(tmp_path)
    for final, data in zip(finals, blobs, strict=True):
        assert isinstance(final, str)
        assert await _read(restarted, final, 0, len(data)) == data


async def test_a_small_pending_upload_is_gone_after_a_restart(tmp_path: Path) -> None:
    address = LocalBlobStore(tmp_path).new_address()
    await LocalBlobStore(tmp_path).write(address, _chunks(b"kept in memory"))
    with pytest.raises(BlobNotFound):
        await LocalBlobStore(tmp_path).pending(address)


async def test_small_uploads_past_the_memory_budget_go_to_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, small_budget=10)
    first, second = store.new_address(), store.new_address()
    await store.write(first, _chunks(b"0123456789"))  # fits the budget
    await store.write(second, _chunks(b"x"))  # does not: a file, which survives a restart
    assert os.listdir(tmp_path / "incoming") == [second]
    assert (await LocalBlobStore(tmp_path).pending(second)).size == 1
    assert await _read(store, await store.claim(second), 0, 1) == b"x"
    assert await _read(store, await store.claim(first), 0, 10) == b"0123456789"


async def test_small_uploads_nobody_claims_expire(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, pending_seconds=0.0)
    stale = store.new_address()
    await store.write(stale, _chunks(b"never finalized"))
    await anyio.sleep(0.01)
    await store.write(store.new_address(), _chunks(b"a later upload"))  # sweeps the stale one
    with pytest.raises(BlobNotFound):
        await store.pending(stale)


async def test_empty_blob(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    address = await _stored(store, b"")
    assert await _read(store, address, 0, 0) == b""
    assert (await store.write(store.new_address(), _chunks(b""))).etag == _md5(b"")


@pytest.mark.parametrize("size", [5, SMALL_BLOB + 5])
async def test_claims_happen_once_and_blobs_are_never_overwritten(
    tmp_path: Path, size: int
) -> None:
    store = LocalBlobStore(tmp_path)
    address = store.new_address()
    first = os.urandom(size)
    await store.write(address, _chunks(first))
    with pytest.raises(BlobExists):
        await store.write(address, _chunks(b"second"))
    final = await store.claim(address)
    with pytest.raises(BlobClaimed):
        await store.claim(address)
    with pytest.raises(BlobClaimed):
        await store.pending(address)
    with pytest.raises(BlobExists):
        await store.write(address, _chunks(b"overwrite"))
    assert await _read(store, final, 0, size) == first


class CountingStore(LocalBlobStore):
    """The real store, counting its batches of claims."""

    batches = 0

    def _claim_many(
        self, jobs: Sequence[tuple[str, bytes | None]], internal: bool = False
    ) -> list[str | BlobError]:
        self.batches += 1
        return super()._claim_many(jobs, internal)


def _content(index: int) -> bytes:
    """Small blobs and (every third) large ones."""
    tag = f"bytes {index}".encode()
    return tag * (SMALL_BLOB // len(tag) + 1) if index % 3 == 0 else tag


async def test_a_batch_of_claims_takes_one_hop_and_gives_each_its_own_outcome(
    tmp_path: Path,
) -> None:
    store = CountingStore(tmp_path)
    written = [store.new_address() for _ in range(30)]
    for index, address in enumerate(written):
        await store.write(address, _chunks(_content(index)))
    claimed, missing = written.pop(), store.new_address()
    await store.claim(claimed)
    batches = store.batches
    outcomes = await store.claim_many([*written, claimed, missing, written[0], "not-an-address"])
    assert store.batches == batches + 1
    finals, tail = outcomes[: len(written)], outcomes[len(written) :]
    assert [type(outcome).__name__ for outcome in tail] == [
        "BlobClaimed",
        "BlobNotFound",
        "BlobClaimed",  # an address given twice is claimed once
        "BlobNotFound",
    ]
    for index, final in enumerate(finals):
        assert isinstance(final, str)
        data = _content(index)
        assert await _read(store, final, 0, len(data)) == data
    assert os.listdir(tmp_path / "incoming") == []


async def test_concurrent_batches_each_take_their_own_stretch_of_the_pack(
    tmp_path: Path,
) -> None:
    store = LocalBlobStore(tmp_path)
    batches: list[list[tuple[str, bytes]]] = []
    for batch in range(6):
        uploads = []
        for index in range(10):
            address, data = store.new_address(), f"batch {batch} blob {index}".encode()
            await store.write(address, _chunks(data))
            uploads.append((address, data))
        batches.append(uploads)
    finals: dict[int, list[str | BlobError]] = {}

    async def claim(batch: int) -> None:
        finals[batch] = await store.claim_many([address for address, _ in batches[batch]])

    async with anyio.create_task_group() as group:
        for batch in range(len(batches)):
            group.start_soon(claim, batch)
    seen: set[str] = set()
    for batch, uploads in enumerate(batches):
        for (_, data), final in zip(uploads, finals[batch], strict=True):
            assert isinstance(final, str) and final not in seen
            seen.add(final)
            assert await _read(store, final, 0, len(data)) == data


async def test_large_writes_hash_and_write_every_block_in_order(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(CHUNK_SIZE * 5 + 777)
    for chunk_size in (4096, 300_000, CHUNK_SIZE * 2):  # blocks built from many or few chunks
        address = store.new_address()
        info = await store.write(address, _chunks(data, chunk_size))
        assert (info.size, info.etag) == (len(data), _md5(data))
        assert await _read(store, await store.claim(address), 0, len(data)) == data
    assert os.listdir(tmp_path / "tmp") == []


async def test_a_failed_write_mid_stream_surfaces_as_itself(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)

    async def chunks() -> AsyncIterator[bytes]:
        os.rmdir(tmp_path / "tmp")  # the writer thread cannot create the temp file
        for _ in range(3):
            yield os.urandom(CHUNK_SIZE)
        yield b"tail"

    address = store.new_address()
    with pytest.raises(FileNotFoundError):  # not wrapped in an exception group
        await store.write(address, chunks())
    with pytest.raises(BlobNotFound):
        await store.pending(address)


async def test_nothing_uploaded(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    address = store.new_address()
    with pytest.raises(BlobNotFound):
        await store.pending(address)
    with pytest.raises(BlobNotFound):
        await store.claim(address)
    with pytest.raises(BlobNotFound):
        await _read(store, address, 0, 1)


@pytest.mark.parametrize("size", [5, SMALL_BLOB + 5])
async def test_discard_drops_a_pending_upload(tmp_path: Path, size: int) -> None:
    store = LocalBlobStore(tmp_path)
    address = store.new_address()
    await store.write(address, _chunks(os.urandom(size)))
    await store.discard(address)
    await store.discard(address)
    with pytest.raises(BlobNotFound):
        await store.pending(address)
    with pytest.raises(BlobNotFound):
        await store.claim(address)


@pytest.mark.parametrize("size", [5, SMALL_BLOB + 5])
async def test_discard_never_removes_a_claimed_blob(tmp_path: Path, size: int) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(size)
    address = store.new_address()
    await store.write(address, _chunks(data))
    final = await store.claim(address)
    await store.discard(address)
    assert await _read(store, final, 0, size) == data


def test_addresses_are_unique_and_consecutive_ones_share_a_directory(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    addresses = [store.new_address() for _ in range(SHARD_RUN * 256)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", address) for address in addresses)
    assert len(set(addresses)) == len(addresses)
    for start in range(0, len(addresses), 17):  # any run of SHARD_RUN spans at most 2 folders
        assert len({address[:2] for address in addresses[start : start + SHARD_RUN]}) <= 2
    assert len({address[:2] for address in addresses}) == 256  # and over time all are used


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
    data = os.urandom(READ_SIZE + 10)
    address = await _stored(store, data)
    for start, end in [(0, 1), (5, 17), (READ_SIZE - 3, READ_SIZE + 10), (0, len(data))]:
        assert await _read(store, address, start, end) == data[start:end]
    chunks = [chunk async for chunk in store.read(address, 0, len(data))]
    assert [len(chunk) for chunk in chunks] == [READ_SIZE, 10]


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
    await store.write(fresh, _chunks(b"fresh" * SMALL_BLOB))  # large: pending in a file
    stale = store.new_address()
    await store.write(stale, _chunks(b"stale" * SMALL_BLOB))
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(tmp_path / "incoming" / stale, (week_ago, week_ago))
    (tmp_path / "tmp" / "half-written").write_bytes(b"partial")
    upload_id = await store.start_multipart(store.new_address())
    os.utime(tmp_path / "uploads" / upload_id, (week_ago, week_ago))

    restarted = LocalBlobStore(tmp_path)
    assert os.listdir(tmp_path / "tmp") == []
    assert os.listdir(tmp_path / "uploads") == []
    assert (await restarted.pending(fresh)).size == 5 * SMALL_BLOB
    with pytest.raises(BlobNotFound):
        await restarted.pending(stale)
    assert await _read(restarted, await restarted.claim(fresh), 0, 5) == b"fresh"

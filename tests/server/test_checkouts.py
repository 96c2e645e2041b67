"""Checkouts on a real VersionStore (SQLite file) and a real LocalBlobStore: the tree, packed,
linked and multipart blobs, sharing, skipped paths, pinning and pruning."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest

from lamina_server.sandboxes.checkouts import Checkout, CheckoutError, Checkouts, Skipped
from lamina_server.storage.blobs import BlobError, LocalBlobStore
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.storage.schema import ensure_schema
from lamina_server.versioning import Committer, Entry, VersionStore

pytestmark = pytest.mark.anyio

ALICE = Committer(type="user", id="u-1", name="alice")
REPO = "11111111-1111-1111-1111-111111111111"


@pytest.fixture
async def versions(tmp_path: Path) -> AsyncIterator[VersionStore]:
    database = Database(sqlite_url(tmp_path))
    await ensure_schema(database)
    store = VersionStore(database)
    await store.init_repository(REPO, committer=ALICE)
    yield store
    await database.dispose()


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 1 << 20):
        yield data[start : start + (1 << 20)]


async def _blob(blobs: LocalBlobStore, data: bytes) -> Entry:
    address = blobs.new_address()
    info = await blobs.write(address, _chunks(data))
    final = await blobs.claim(address)
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    return Entry(final, info.size, info.etag, "application/octet-stream", when, {})


async def _multipart(blobs: LocalBlobStore, parts: list[bytes]) -> Entry:
    address = blobs.new_address()
    upload = await blobs.start_multipart(address)
    etags = [
        (n, (await blobs.write_part(address, upload, n, _chunks(data))).etag)
        for n, data in enumerate(parts, 1)
    ]
    info = await blobs.complete_multipart(address, upload, etags)
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    return Entry(address, info.size, info.etag, "application/octet-stream", when, {})


async def _commit(versions: VersionStore, objects: dict[str, Entry]) -> str:
    session = await versions.create_session(REPO, created_by=ALICE)
    await versions.stage_put_many(REPO, session.id, list(objects.items()))
    return await versions.commit_session(
        REPO, session.id, message="m", metadata={}, committer=ALICE
    )


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


async def test_a_checkout_holds_every_object_as_a_file(
    tmp_path: Path, versions: VersionStore, blobs: LocalBlobStore
) -> None:
    big = os.urandom(3 << 20)
    objects = {
        "README.md": await _blob(blobs, b"hello\n"),
        "data/a.csv": await _blob(blobs, b"1,2\n"),
        "data/deep/er/b.bin": await _blob(blobs, b""),
        "data/big.bin": await _blob(blobs, big),
        "data/parts.bin": await _multipart(blobs, [b"x" * (5 << 20), b"tail"]),
        "data/one-part.bin": await _multipart(blobs, [b"only part"]),
    }
    commit = await _commit(versions, objects)
    checkouts = Checkouts(tmp_path / "checkouts", versions, blobs)

    whole = await checkouts.checkout(REPO, commit)
    assert _files(whole.path) == {
        "README.md": b"hello\n",
        "data/a.csv": b"1,2\n",
        "data/deep/er/b.bin": b"",
        "data/big.bin": big,
        "data/parts.bin": b"x" * (5 << 20) + b"tail",
        "data/one-part.bin": b"only part",
    }
    assert whole.skipped == ()
    for path in whole.path.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), path
    # a blob of its own is linked, not copied; packed blobs are copies
    assert (whole.path / "data/big.bin").stat().st_nlink == 2
    assert (whole.path / "data/one-part.bin").stat().st_nlink == 2
    assert (whole.path / "README.md").stat().st_nlink == 1

    data = await checkouts.checkout(REPO, commit, "data")
    assert data.prefix == "data/"
    assert sorted(_files(data.path)) == [
        "a.csv",
        "big.bin",
        "deep/er/b.bin",
        "one-part.bin",
        "parts.bin",
    ]
    assert (await checkouts.checkout(REPO, commit, "data/")).path == data.path
    assert _files((await checkouts.checkout(REPO, commit, "nothing")).path) == {}


async def test_concurrent_callers_share_one_build_and_later_calls_are_free(
    tmp_path: Path, versions: VersionStore, blobs: LocalBlobStore
) -> None:
    commit = await _commit(versions, {f"f{i}": await _blob(blobs, b"%d" % i) for i in range(50)})
    checkouts = Checkouts(tmp_path / "checkouts", versions, blobs)
    calls = 0
    list_tree = versions.list_tree

    async def counting(*args: object, **kwargs: object) -> list[tuple[str, Entry]]:
        nonlocal calls
        calls += 1
        return await list_tree(*args, **kwargs)  # type: ignore[arg-type]

    versions.list_tree = counting  # type: ignore[method-assign]
    results: list[Checkout] = []

    async def one() -> None:
        results.append(await checkouts.checkout(REPO, commit))

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(one)
    assert calls == 1 and len({r.path for r in results}) == 1
    assert checkouts.pinned(results[0]) == 8
    await checkouts.checkout(REPO, commit)
    assert calls == 1

    # another process on the same folder finds the built checkout on disk
    again = Checkouts(tmp_path / "checkouts", versions, blobs)
    assert (await again.checkout(REPO, commit)).path == results[0].path
    assert calls == 1


async def test_paths_that_cannot_be_files_are_skipped_and_reported(
    tmp_path: Path, versions: VersionStore, blobs: LocalBlobStore
) -> None:
    long = "x" * 256
    commit = await _commit(
        versions,
        {
            "a": await _blob(blobs, b"file a"),
            "a/b": await _blob(blobs, b"file a/b"),
            f"dir/{long}": await _blob(blobs, b"long"),
            "ok": await _blob(blobs, b"ok"),
        },
    )
    checkouts = Checkouts(tmp_path / "checkouts", versions, blobs)
    built = await checkouts.checkout(REPO, commit)
    assert _files(built.path) == {"a/b": b"file a/b", "ok": b"ok"}
    assert built.skipped == (
        Skipped("a", "it is also the folder of other objects"),
        Skipped(f"dir/{long}", "a path segment is longer than 255 bytes"),
    )
    reloaded = await Checkouts(tmp_path / "checkouts", versions, blobs).checkout(REPO, commit)
    assert reloaded.skipped == built.skipped


async def test_a_missing_blob_fails_the_build_and_leaves_nothing(
    tmp_path: Path, versions: VersionStore, blobs: LocalBlobStore
) -> None:
    entry = await _blob(blobs, b"z" * 200_000)
    os.unlink(blobs.root / "objects" / entry.address[:2] / entry.address)
    commit = await _commit(versions, {"gone": entry})
    checkouts = Checkouts(tmp_path / "checkouts", versions, blobs)
    with pytest.raises(BlobError):
        await checkouts.checkout(REPO, commit)
    assert list((tmp_path / "checkouts" / ".building").iterdir()) == []
    assert not (tmp_path / "checkouts" / REPO).exists()


async def test_prune_keeps_pinned_and_recent_checkouts(
    tmp_path: Path, versions: VersionStore, blobs: LocalBlobStore
) -> None:
    commits = [await _commit(versions, {f"f{i}": await _blob(blobs, b"v")}) for i in range(4)]
    checkouts = Checkouts(tmp_path / "checkouts", versions, blobs, keep=1)
    built = [await checkouts.checkout(REPO, commit) for commit in commits]
    for checkout in built[1:]:
        checkouts.release(checkout)
    removed = await checkouts.prune()  # keeps the newest (3) and the pinned (0)
    assert sorted(removed) == sorted(c.path.parent for c in built[1:3])
    assert built[0].path.exists() and built[3].path.exists()
    assert not built[1].path.exists() and not built[2].path.exists()
    again = await checkouts.checkout(REPO, commits[1])  # rebuilt on demand
    assert _files(again.path) == {"f0": b"v", "f1": b"v"}

    checkouts.release(built[0])
    with pytest.raises(CheckoutError, match="not pinned"):
        checkouts.release(built[0])
    await checkouts.prune(keep=0)
    assert not built[0].path.exists() and again.path.exists()  # `again` is still pinned


async def test_bad_prefixes_and_ids_are_refused(
    tmp_path: Path, versions: VersionStore, blobs: LocalBlobStore
) -> None:
    checkouts = Checkouts(tmp_path / "checkouts", versions, blobs)
    for prefix in ("../x", "a//b", "/abs", "a/./b"):
        with pytest.raises(CheckoutError):
            await checkouts.checkout(REPO, "c", prefix)
    with pytest.raises(CheckoutError):
        await checkouts.checkout("../etc", "c")

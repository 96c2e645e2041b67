"""Group-committed puts, coalesced session checks and the open-session cache, on a real engine
over SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest

from lamina_server.storage.blobs import BlobClaimed, BlobNotFound, LocalBlobStore
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.storage.schema import ensure_schema
from lamina_server.versioning import (
    CachingVersionStore,
    Claim,
    Committer,
    Entry,
    SessionClosed,
    SessionInfo,
    SessionNotFound,
    Staging,
    VersionStore,
)

pytestmark = pytest.mark.anyio

COMMITTER = Committer("user", "u-1", "ada")
REPO = "repo-1"


class CountingStore(VersionStore):
    """The real engine, counting the staging transactions and session reads it is asked for."""

    transactions: int = 0
    session_reads: int = 0

    async def stage_put_many(
        self, repository_id: str, session_id: str, items: Sequence[tuple[str, Entry]]
    ) -> None:
        self.transactions += 1
        await super().stage_put_many(repository_id, session_id, items)

    async def open_session(self, repository_id: str, session_id: str) -> SessionInfo:
        self.session_reads += 1
        return await super().open_session(repository_id, session_id)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    db = Database(sqlite_url(tmp_path))
    await ensure_schema(db)
    versions = CountingStore(db)
    await versions.init_repository(REPO, committer=COMMITTER)
    try:
        yield versions
    finally:
        await db.dispose()


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def entry(tag: str) -> Entry:
    return Entry(
        address=tag.ljust(32, "0"),
        size=len(tag),
        etag=tag,
        content_type="text/plain",
        last_modified=datetime.now(timezone.utc),
        metadata={},
    )


async def test_concurrent_puts_share_transactions(
    store: CountingStore, blobs: LocalBlobStore
) -> None:
    session = await store.create_session(REPO, created_by=COMMITTER)
    staging = Staging(store, blobs)
    async with anyio.create_task_group() as group:
        for index in range(40):
            group.start_soon(staging.put, REPO, session.id, f"p/{index:02d}", entry(f"{index}"))
    changes = await store.list_changes(REPO, session.id, amount=100)
    assert [change.path for change in changes.items] == [f"p/{i:02d}" for i in range(40)]
    assert all(change.entry is not None for change in changes.items)
    assert store.transactions < 10  # batched: far fewer transactions than puts


async def test_a_lone_put_is_staged_at_once(store: CountingStore, blobs: LocalBlobStore) -> None:
    session = await store.create_session(REPO, created_by=COMMITTER)
    await Staging(store, blobs).put(REPO, session.id, "only", entry("a"))
    assert (await store.get_entry(REPO, "only", session_id=session.id)).etag == "a"
    assert store.transactions == 1


async def test_the_later_put_to_a_path_wins(store: CountingStore, blobs: LocalBlobStore) -> None:
    session = await store.create_session(REPO, created_by=COMMITTER)
    staging = Staging(store, blobs)
    async with anyio.create_task_group() as group:
        group.start_soon(staging.put, REPO, session.id, "blocker", entry("x"))
        await anyio.sleep(0)
        group.start_soon(staging.put, REPO, session.id, "same", entry("first"))
        group.start_soon(staging.put, REPO, session.id, "same", entry("second"))
    assert (await store.get_entry(REPO, "same", session_id=session.id)).etag == "second"


async def test_a_failed_batch_fails_every_put_in_it(
    store: CountingStore, blobs: LocalBlobStore
) -> None:
    session = await store.create_session(REPO, created_by=COMMITTER)
    await store.rollback_session(REPO, session.id)
    staging = Staging(store, blobs)
    failures: list[Exception] = []

    async def put(index: int) -> None:
        try:
            await staging.put(REPO, session.id, f"p/{index}", entry(str(index)))
        except SessionClosed as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for index in range(10):
            group.start_soon(put, index)
    assert len(failures) == 10
    assert staging._puts == {}  # nothing left behind


async def test_uploads_are_claimed_with_their_batch_and_staged_where_claimed(
    store: CountingStore, blobs: LocalBlobStore
) -> None:
    session = await store.create_session(REPO, created_by=COMMITTER)
    uploads = {}
    for index in range(6):
        address = blobs.new_address()
        uploads[f"up/{index}"] = (await blobs.write(address, _one(f"bytes {index}"))).address
    used = uploads.pop("up/5")
    size = len("bytes 0")
    await blobs.claim(used)
    staging = Staging(store, blobs)
    outcomes: dict[str, object] = {}

    async def put(path: str, address: str) -> None:
        try:
            outcomes[path] = await staging.put(
                REPO,
                session.id,
                path,
                replace(entry(path), address=address, size=size),
                claim=Claim.PENDING,
            )
        except (BlobClaimed, BlobNotFound) as exc:
            outcomes[path] = exc

    async with anyio.create_task_group() as group:
        for path, address in [*uploads.items(), ("used", used), ("never", blobs.new_address())]:
            group.start_soon(put, path, address)
    assert isinstance(outcomes.pop("used"), BlobClaimed)
    assert isinstance(outcomes.pop("never"), BlobNotFound)
    assert store.transactions < 4  # the claims went with their batches
    for path, staged in outcomes.items():
        assert isinstance(staged, Entry) and staged.address != uploads[path]  # packed
        assert (await store.get_entry(REPO, path, session_id=session.id)) == staged
        data = b"".join([chunk async for chunk in blobs.read(staged.address, 0, staged.size)])
        assert data == f"bytes {path.removeprefix('up/')}".encode()
    changes = await store.list_changes(REPO, session.id, amount=100)
    assert sorted(change.path for change in changes.items) == sorted(outcomes)


async def _one(text: str) -> AsyncIterator[bytes]:
    yield text.encode()


async def test_session_checks_coalesce_and_report_errors(
    caching: CountingCachingStore,
) -> None:
    session = await caching.create_session(REPO, created_by=COMMITTER)
    results: list[str] = []

    async def check() -> None:
        results.append((await caching.open_session(REPO, session.id)).state)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(check)
    assert results == ["open"] * 20
    assert caching.session_reads == 1  # one read answered them all
    with pytest.raises(SessionNotFound):
        await caching.open_session(REPO, "no-such-session")
    await caching.commit_session(REPO, session.id, message="m", metadata={}, committer=COMMITTER)
    with pytest.raises(SessionClosed):
        await caching.open_session(REPO, session.id)
    assert caching._checks == {}


class CountingCachingStore(CachingVersionStore, CountingStore):
    """The caching engine, counting the session reads that reach the database."""


@pytest.fixture
async def caching(tmp_path: Path) -> AsyncIterator[CountingCachingStore]:
    db = Database(sqlite_url(tmp_path))
    await ensure_schema(db)
    versions = CountingCachingStore(db)
    await versions.init_repository(REPO, committer=COMMITTER)
    try:
        yield versions
    finally:
        await db.dispose()


async def test_open_sessions_are_remembered_until_closed_here(
    caching: CountingCachingStore,
) -> None:
    committed = await caching.create_session(REPO, created_by=COMMITTER)
    rolled_back = await caching.create_session(REPO, created_by=COMMITTER)
    for session in (committed, rolled_back):
        assert (await caching.open_session(REPO, session.id)).state == "open"
        assert (await caching.open_session(REPO, session.id)).id == session.id
    assert caching.session_reads == 2  # the second check of each came from memory
    await caching.stage_put(REPO, committed.id, "a", entry("a"))
    await caching.commit_session(REPO, committed.id, message="m", metadata={}, committer=COMMITTER)
    await caching.rollback_session(REPO, rolled_back.id)
    for session, state in ((committed, "committed"), (rolled_back, "rolled_back")):
        with pytest.raises(SessionClosed) as closed:
            await caching.open_session(REPO, session.id)
        assert closed.value.state == state
    with pytest.raises(SessionNotFound):
        await caching.open_session(REPO, "no-such-session")
    with pytest.raises(SessionNotFound):
        await caching.open_session("another-repo", committed.id)


async def test_a_failed_commit_forgets_too(caching: CountingCachingStore) -> None:
    session = await caching.create_session(REPO, created_by=COMMITTER)
    await caching.open_session(REPO, session.id)
    await caching.rollback_session(REPO, session.id)
    with pytest.raises(SessionClosed):
        await caching.commit_session(
            REPO, session.id, message="m", metadata={}, committer=COMMITTER
        )
    reads = caching.session_reads
    with pytest.raises(SessionClosed):
        await caching.open_session(REPO, session.id)
    assert caching.session_reads == reads + 1


async def test_a_session_closed_elsewhere_is_forgotten_when_staging_finds_it(
    caching: CountingCachingStore, blobs: LocalBlobStore, tmp_path: Path
) -> None:
    session = await caching.create_session(REPO, created_by=COMMITTER)
    await caching.open_session(REPO, session.id)
    # another server process on the same database rolls the session back
    other = VersionStore(Database(sqlite_url(tmp_path)))
    try:
        await other.rollback_session(REPO, session.id)
    finally:
        await other.db.dispose()
    assert (await caching.open_session(REPO, session.id)).state == "open"  # not known here yet
    with pytest.raises(SessionClosed):
        await Staging(caching, blobs).put(REPO, session.id, "late", entry("late"))
    with pytest.raises(SessionClosed):
        await caching.open_session(REPO, session.id)


class HeldReads(VersionStore):
    """Session reads that hand back their answer only once ``release`` is set."""

    release: anyio.Event | None = None

    async def open_session(self, repository_id: str, session_id: str) -> SessionInfo:
        info = await super().open_session(repository_id, session_id)
        if self.release is not None:
            await self.release.wait()
        return info


class HeldCachingStore(CachingVersionStore, HeldReads):
    pass


async def test_a_read_that_overlaps_a_close_is_not_remembered(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path))
    await ensure_schema(db)
    store = HeldCachingStore(db)
    try:
        await store.init_repository(REPO, committer=COMMITTER)
        session = await store.create_session(REPO, created_by=COMMITTER)
        store.release = anyio.Event()
        answers: list[str] = []

        async def check() -> None:
            answers.append((await store.open_session(REPO, session.id)).state)

        async with anyio.create_task_group() as group:
            group.start_soon(check)  # reads "open", then is held...
            await anyio.sleep(0.2)
            await store.rollback_session(REPO, session.id)  # ...while the session is closed
            store.release.set()
        assert answers == ["open"]  # true when it was read
        store.release = None
        with pytest.raises(SessionClosed):  # but not remembered past the close
            await store.open_session(REPO, session.id)
    finally:
        await db.dispose()

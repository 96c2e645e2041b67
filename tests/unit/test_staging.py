"""Group-committed puts and coalesced session checks, on a real engine over SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest

from lamina_server.api.staging import Staging
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.versioning import (
    Committer,
    Entry,
    SessionClosed,
    SessionInfo,
    SessionNotFound,
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
    await db.create_all()
    versions = CountingStore(db)
    await versions.init_repository(REPO, committer=COMMITTER)
    try:
        yield versions
    finally:
        await db.dispose()


def entry(tag: str) -> Entry:
    return Entry(
        address=tag.ljust(32, "0"),
        size=len(tag),
        etag=tag,
        content_type="text/plain",
        last_modified=datetime.now(timezone.utc),
        metadata={},
    )


async def test_concurrent_puts_share_transactions(store: CountingStore) -> None:
    session = await store.create_session(REPO, created_by=COMMITTER)
    staging = Staging(store)
    async with anyio.create_task_group() as group:
        for index in range(40):
            group.start_soon(staging.put, REPO, session.id, f"p/{index:02d}", entry(f"{index}"))
    changes = await store.list_changes(REPO, session.id, amount=100)
    assert [change.path for change in changes.items] == [f"p/{i:02d}" for i in range(40)]
    assert all(change.entry is not None for change in changes.items)
    assert store.transactions < 10  # batched: far fewer transactions than puts


async def test_a_lone_put_is_staged_at_once(store: CountingStore) -> None:
    session = await store.create_session(REPO, created_by=COMMITTER)
    await Staging(store).put(REPO, session.id, "only", entry("a"))
    assert (await store.get_entry(REPO, "only", session_id=session.id)).etag == "a"
    assert store.transactions == 1


async def test_the_later_put_to_a_path_wins(store: CountingStore) -> None:
    session = await store.create_session(REPO, created_by=COMMITTER)
    staging = Staging(store)
    async with anyio.create_task_group() as group:
        group.start_soon(staging.put, REPO, session.id, "blocker", entry("x"))
        await anyio.sleep(0)
        group.start_soon(staging.put, REPO, session.id, "same", entry("first"))
        group.start_soon(staging.put, REPO, session.id, "same", entry("second"))
    assert (await store.get_entry(REPO, "same", session_id=session.id)).etag == "second"


async def test_a_failed_batch_fails_every_put_in_it(store: CountingStore) -> None:
    session = await store.create_session(REPO, created_by=COMMITTER)
    await store.rollback_session(REPO, session.id)
    staging = Staging(store)
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
    assert staging._sessions == {}  # nothing left behind


async def test_session_checks_coalesce_and_report_errors(store: CountingStore) -> None:
    session = await store.create_session(REPO, created_by=COMMITTER)
    staging = Staging(store)
    results: list[str] = []

    async def check() -> None:
        results.append((await staging.open_session(REPO, session.id)).state)

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(check)
    assert results == ["open"] * 20
    assert store.session_reads < 20
    with pytest.raises(SessionNotFound):
        await staging.open_session(REPO, "no-such-session")
    await store.commit_session(REPO, session.id, message="m", metadata={}, committer=COMMITTER)
    with pytest.raises(SessionClosed):
        await staging.open_session(REPO, session.id)
    assert staging._checks == {}

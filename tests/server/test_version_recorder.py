"""The engine's recorder seam on a real SQLite file: one event per change, told inside the
change's own transaction, so that a recorder that fails makes the change not land."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from lamina_server.storage.blobs import LocalBlobStore
from lamina_server.storage.db import Database
from lamina_server.versioning import (
    ChangeEvent,
    Committer,
    Entry,
    Recorders,
    RefNotFound,
    Staging,
    VersionStore,
)
from lamina_server.versioning.tables import refs, repo_sessions, staged_changes

pytestmark = pytest.mark.anyio

ALICE = Committer(type="user", id="u-1", name="alice")
REPO = "11111111-1111-1111-1111-111111111111"
OTHER_REPO = "22222222-2222-2222-2222-222222222222"


class AuditDown(Exception):
    pass


class RecordingRecorder:
    """Keeps every event with what the transaction it came in held at that moment; raises for
    the actions in ``failing``."""

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self.failing: set[str] = set()

    def record(self, conn: sa.Connection, event: ChangeEvent) -> None:
        assert conn.in_transaction()
        assert _landed_in(conn, event), event
        if event.action in self.failing:
            raise AuditDown(event.action)
        self.events.append(event)


def _landed_in(conn: sa.Connection, event: ChangeEvent) -> bool:
    """Whether the change ``event`` describes is visible on ``conn``."""
    if event.commit_id is not None:
        head = conn.execute(
            sa.select(refs.c.head).where(refs.c.repository_id == event.repository_id)
        ).scalar_one()
        return bool(head == event.commit_id)
    state = conn.execute(
        sa.select(repo_sessions.c.state).where(repo_sessions.c.id == event.session_id)
    ).scalar_one_or_none()
    if event.action == "create_session":
        return state == "open"
    if event.action == "rollback_session":
        return state == "rolled_back"
    staged = dict(
        conn.execute(
            sa.select(staged_changes.c.path, staged_changes.c.entry).where(
                staged_changes.c.session_id == event.session_id,
                staged_changes.c.path.in_(event.paths),
            )
        ).all()
    )
    if event.action == "stage_delete":  # a tombstone, or an unstaged put
        return all(staged.get(path) is None for path in event.paths)
    return all(staged.get(path) is not None for path in event.paths)


@pytest.fixture
def recorder() -> RecordingRecorder:
    return RecordingRecorder()


@pytest.fixture
async def store(db: Database, recorder: RecordingRecorder) -> VersionStore:
    versions = VersionStore(db, recorder=recorder)
    await versions.init_repository(REPO, committer=ALICE)
    return versions


def entry(name: str) -> Entry:
    return Entry(
        address=f"blobs/{name}",
        size=len(name),
        etag=f"etag-{name}",
        content_type="text/plain",
        last_modified=datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
        metadata={},
    )


async def test_every_change_is_recorded_once_with_what_it_changed(
    store: VersionStore, recorder: RecordingRecorder
) -> None:
    (init,) = recorder.events
    assert init == ChangeEvent(
        "init_repository", REPO, commit_id=await store.head(REPO), principal=ALICE
    )
    recorder.events.clear()

    session = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, session.id, "a.txt", entry("a"))
    many = [(f"bulk/{i:03d}", entry(str(i))) for i in range(300)]
    await store.stage_put_many(REPO, session.id, many)
    assert await store.stage_delete(REPO, session.id, "bulk/000")
    assert not await store.stage_delete(REPO, session.id, "missing.txt")  # no change
    await store.stage_copy(REPO, session.id, "a.txt", "b.txt")
    commit_id = await store.commit_session(
        REPO, session.id, message="m", metadata={}, committer=ALICE
    )
    doomed = await store.create_session(REPO, created_by=ALICE)
    await store.rollback_session(REPO, doomed.id)
    revert_id = await store.revert(REPO, commit_id, committer=ALICE)

    sid = session.id
    assert recorder.events == [
        ChangeEvent("create_session", REPO, sid, principal=ALICE),
        ChangeEvent("stage_put", REPO, sid, ("a.txt",)),
        ChangeEvent("stage_put", REPO, sid, tuple(path for path, _ in many)),
        ChangeEvent("stage_delete", REPO, sid, ("bulk/000",)),
        ChangeEvent("stage_copy", REPO, sid, ("b.txt",)),
        ChangeEvent("commit", REPO, sid, commit_id=commit_id, principal=ALICE),
        ChangeEvent("create_session", REPO, doomed.id, principal=ALICE),
        ChangeEvent("rollback_session", REPO, doomed.id),
        ChangeEvent("revert", REPO, commit_id=revert_id, reverted=commit_id, principal=ALICE),
    ]


async def test_group_committed_puts_record_one_event_per_batch(
    store: VersionStore, recorder: RecordingRecorder, tmp_path: Path
) -> None:
    session = await store.create_session(REPO, created_by=ALICE)
    recorder.events.clear()
    staging = Staging(store, LocalBlobStore(tmp_path / "blobs"))
    paths = [f"up/{i:03d}" for i in range(200)]
    async with anyio.create_task_group() as group:
        for path in paths:
            group.start_soon(staging.put, REPO, session.id, path, entry(path))

    assert {event.action for event in recorder.events} == {"stage_put"}
    assert len(recorder.events) < len(paths)  # batched: one event per transaction
    recorded = [path for event in recorder.events for path in event.paths]
    assert sorted(recorded) == paths  # every put, once
    changes = await store.list_changes(REPO, session.id, amount=1000)
    assert [change.path for change in changes.items] == paths


async def _staged(store: VersionStore, session_id: str) -> list[str]:
    page = await store.list_changes(REPO, session_id, amount=1000)
    return [change.path for change in page.items]


async def test_a_failing_recorder_lands_nothing(
    store: VersionStore, recorder: RecordingRecorder, db: Database
) -> None:
    first = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, first.id, "a.txt", entry("a"))
    landed = await store.commit_session(REPO, first.id, message="m", metadata={}, committer=ALICE)
    session = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, session.id, "kept.txt", entry("kept"))
    recorder.failing = {
        "init_repository",
        "create_session",
        "stage_put",
        "stage_delete",
        "stage_copy",
        "commit",
        "rollback_session",
        "revert",
    }
    many = [(f"bulk/{i:03d}", entry(str(i))) for i in range(300)]

    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: store.init_repository(OTHER_REPO, committer=ALICE),
        lambda: store.create_session(REPO, created_by=ALICE),
        lambda: store.stage_put_many(REPO, session.id, many),
        lambda: store.stage_delete(REPO, session.id, "a.txt"),
        lambda: store.stage_copy(REPO, session.id, "a.txt", "copy.txt"),
        lambda: store.commit_session(REPO, session.id, message="m", metadata={}, committer=ALICE),
        lambda: store.rollback_session(REPO, session.id),
        lambda: store.revert(REPO, landed, committer=ALICE),
    ]
    for attempt in attempts:
        with pytest.raises(AuditDown):
            await attempt()

    with pytest.raises(RefNotFound):
        await store.head(OTHER_REPO)
    async with db.connect() as conn:
        count = await conn.scalar(sa.select(sa.func.count()).select_from(repo_sessions))
    assert count == 2
    assert await store.head(REPO) == landed
    assert (await store.open_session(REPO, session.id)).state == "open"
    assert await _staged(store, session.id) == ["kept.txt"]
    assert (await store.get_entry(REPO, "a.txt", session_id=session.id)).address == "blobs/a"
    assert recorder.events[-1].action == "stage_put"  # the last change that landed

    recorder.failing = set()  # the same changes land once the recorder works
    await store.stage_put_many(REPO, session.id, many)
    assert len(await _staged(store, session.id)) == 301


async def test_recorders_tell_each_in_order_and_the_first_failure_stops_the_change(
    db: Database,
) -> None:
    first, second = RecordingRecorder(), RecordingRecorder()
    store = VersionStore(db, recorder=Recorders(first, second))
    await store.init_repository(REPO, committer=ALICE)
    assert first.events == second.events and len(first.events) == 1

    first.failing = {"create_session"}
    with pytest.raises(AuditDown):
        await store.create_session(REPO, created_by=ALICE)
    assert len(second.events) == 1  # not told: the change did not land


async def test_on_landed_is_called_once_a_commit_or_a_revert_has_landed(
    store: VersionStore, db: Database
) -> None:
    landed: list[tuple[str, str, str]] = []

    def on_landed(repository_id: str, commit_id: str) -> None:
        # Called after the transaction: the commit is HEAD for any reader.
        landed.append((repository_id, commit_id, head_now()))

    def head_now() -> str:
        # Another connection: blocking, of its own (the URL's async driver made blocking).
        url = db.engine.url.set(
            drivername=db.engine.url.drivername.replace("aiosqlite", "pysqlite")
        )
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                return str(conn.execute(sa.select(refs.c.head)).scalar_one())
        finally:
            engine.dispose()

    store.on_landed = on_landed
    session = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, session.id, "a.txt", entry("a"))
    commit_id = await store.commit_session(
        REPO, session.id, message="m", metadata={}, committer=ALICE
    )
    revert_id = await store.revert(REPO, commit_id, committer=ALICE)
    assert landed == [(REPO, commit_id, commit_id), (REPO, revert_id, revert_id)]

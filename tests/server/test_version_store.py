"""``VersionStore`` on a real SQLite file: sessions, merge, concurrency, log, diff, revert."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

from lamina_server.storage.db import Database, sqlite_url
from lamina_server.versioning import (
    INITIAL_MESSAGE,
    Committer,
    ConcurrentUpdate,
    Entry,
    InvalidCursor,
    MergeConflict,
    ObjectNotFound,
    RefNotFound,
    RevertNotSupported,
    SessionClosed,
    SessionNotFound,
    VersioningError,
    VersionStore,
    commits,
)
from lamina_server.versioning.commits import Plan
from lamina_server.versioning.store import LAND_ATTEMPTS
from lamina_server.versioning.tables import repo_sessions, staged_changes

pytestmark = pytest.mark.anyio

ALICE = Committer(type="user", id="u-1", name="alice")
REPO = "11111111-1111-1111-1111-111111111111"
OTHER_REPO = "22222222-2222-2222-2222-222222222222"


@pytest.fixture
async def store(db: Database) -> VersionStore:
    versions = VersionStore(db)
    await versions.init_repository(REPO, committer=ALICE)
    return versions


def entry(name: str, size: int = 10, **meta: str) -> Entry:
    return Entry(
        address=f"blobs/{name}",
        size=size,
        etag=f"etag-{name}",
        content_type="application/octet-stream",
        last_modified=datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
        metadata=meta,
    )


async def put_and_commit(store: VersionStore, changes: dict[str, Entry | None], msg: str) -> str:
    session = await store.create_session(REPO, created_by=ALICE)
    for path, e in changes.items():
        if e is None:
            await store.stage_delete(REPO, session.id, path)
        else:
            await store.stage_put(REPO, session.id, path, e)
    return await store.commit_session(REPO, session.id, message=msg, metadata={}, committer=ALICE)


async def all_paths(store: VersionStore, **view: Any) -> list[str]:
    paths: list[str] = []
    after = None
    while True:
        page = await store.list_objects(REPO, after=after, amount=7, **view)
        paths.extend(item.path for item in page.items)
        if not page.has_more:
            return paths
        after = page.next_offset


# --- repositories ----------------------------------------------------------------------------


async def test_initial_commit(store: VersionStore) -> None:
    head = await store.head(REPO)
    commit = await store.get_commit(REPO, head)
    assert commit.message == INITIAL_MESSAGE
    assert commit.parents == ()
    assert commit.object_count == 0 and commit.total_size == 0
    assert commit.committer == ALICE
    assert commit.creation_date.tzinfo is not None
    assert len(head) == 64 and int(head, 16) >= 0
    with pytest.raises(VersioningError):
        await store.init_repository(REPO, committer=ALICE)
    with pytest.raises(RefNotFound):
        await store.head(OTHER_REPO)
    with pytest.raises(RefNotFound):
        await store.get_commit(REPO, "0" * 64)


# --- sessions --------------------------------------------------------------------------------


async def test_sessions_are_isolated_snapshots(store: VersionStore) -> None:
    first = await put_and_commit(store, {"keep.txt": entry("keep"), "gone.txt": entry("gone")}, "m")
    a = await store.create_session(REPO, created_by=ALICE)
    b = await store.create_session(REPO, created_by=ALICE)
    assert a.base_commit == first and a.state == "open" and a.commit_id is None
    await store.stage_put(REPO, a.id, "new.txt", entry("new"))
    assert await store.stage_delete(REPO, a.id, "gone.txt")

    assert await all_paths(store, session_id=a.id) == ["keep.txt", "new.txt"]
    assert await all_paths(store, session_id=b.id) == ["gone.txt", "keep.txt"]
    assert await all_paths(store) == ["gone.txt", "keep.txt"]
    assert (await store.get_entry(REPO, "new.txt", session_id=a.id)).address == "blobs/new"
    with pytest.raises(ObjectNotFound):
        await store.get_entry(REPO, "gone.txt", session_id=a.id)
    with pytest.raises(ObjectNotFound):
        await store.get_entry(REPO, "new.txt", session_id=b.id)
    with pytest.raises(ObjectNotFound):
        await store.get_entry(REPO, "new.txt")
    changes = await store.list_changes(REPO, a.id)
    assert [(c.path, c.entry is None) for c in changes.items] == [
        ("gone.txt", True),
        ("new.txt", False),
    ]

    commit_id = await store.commit_session(
        REPO, a.id, message="second", metadata={"k": "v"}, committer=ALICE
    )
    assert await all_paths(store) == ["keep.txt", "new.txt"]
    # b still reads its own base snapshot
    assert await all_paths(store, session_id=b.id) == ["gone.txt", "keep.txt"]
    # and a ref read sees that commit's tree
    assert await all_paths(store, ref=first) == ["gone.txt", "keep.txt"]
    info = await store.get_commit(REPO, commit_id)
    assert info.parents == (first,)
    assert info.metadata == {"k": "v"}
    assert (info.object_count, info.total_size) == (2, 20)
    session = await store.get_session(REPO, a.id)
    assert (session.state, session.commit_id) == ("committed", commit_id)
    assert (await store.list_changes(REPO, a.id)).items == []


async def test_entry_round_trips(store: VersionStore) -> None:
    original = entry("meta", size=1234, color="blue", owner="bob")
    await put_and_commit(store, {"m.bin": original}, "m")
    assert await store.get_entry(REPO, "m.bin") == original


@pytest.mark.sqlite_only("PostgreSQL's writers take their connections from the pool")
async def test_a_write_connection_that_breaks_is_replaced(
    store: VersionStore, db: Database
) -> None:
    """SQLite's writes share one open connection between transactions; one that breaks under
    a transaction fails only that transaction, and the next one writes on a fresh one."""
    session = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, session.id, "a.txt", entry("a"))
    writer = db._writer
    assert writer is not None
    writer.connection.dbapi_connection.close()  # type: ignore[union-attr]
    with pytest.raises(sa.exc.DBAPIError):
        await store.stage_put(REPO, session.id, "b.txt", entry("b"))
    await store.stage_put(REPO, session.id, "c.txt", entry("c"))
    assert db._writer is not None and db._writer is not writer
    changes = (await store.list_changes(REPO, session.id)).items
    assert [change.path for change in changes] == ["a.txt", "c.txt"]


async def test_a_lone_read_sees_what_was_committed_before_it(
    store: VersionStore, db: Database
) -> None:
    """``read_scalar``: one statement's value, as of the moment it runs; none for no row. On
    PostgreSQL the statement is its own transaction: no BEGIN went ahead of it."""
    session = await store.create_session(REPO, created_by=ALICE)
    query = sa.select(repo_sessions.c.state).where(repo_sessions.c.id == session.id)
    assert await db.read_scalar(query) == "open"
    await store.rollback_session(REPO, session.id)
    assert await db.read_scalar(query) == "rolled_back"
    missing = sa.select(repo_sessions.c.state).where(repo_sessions.c.id == "no such session")
    assert await db.read_scalar(missing) is None
    if db.is_postgresql:
        assert await db.read_scalar(sa.text("SELECT now() = statement_timestamp()")) is True


async def test_closed_and_unknown_sessions(store: VersionStore) -> None:
    s = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, s.id, "x", entry("x"))
    await store.rollback_session(REPO, s.id)
    info = await store.get_session(REPO, s.id)
    assert info.state == "rolled_back" and info.commit_id is None
    assert await all_paths(store) == []
    assert (await store.list_changes(REPO, s.id)).items == []
    for call in (
        store.stage_put(REPO, s.id, "y", entry("y")),
        store.stage_delete(REPO, s.id, "x"),
        store.stage_copy(REPO, s.id, "x", "z"),
        store.commit_session(REPO, s.id, message="m", metadata={}, committer=ALICE),
        store.rollback_session(REPO, s.id),
        store.open_session(REPO, s.id),
    ):
        with pytest.raises(SessionClosed) as caught:
            await call
        assert caught.value.state == "rolled_back"

    done = await store.create_session(REPO, created_by=ALICE)
    await store.commit_session(REPO, done.id, message="empty", metadata={}, committer=ALICE)
    with pytest.raises(SessionClosed) as closed:
        await store.stage_put(REPO, done.id, "y", entry("y"))
    assert closed.value.state == "committed"

    with pytest.raises(SessionNotFound):
        await store.get_session(REPO, "nope")
    with pytest.raises(SessionNotFound):
        await store.stage_put(REPO, "nope", "p", entry("p"))
    await store.init_repository(OTHER_REPO, committer=ALICE)
    with pytest.raises(SessionNotFound):
        await store.get_session(OTHER_REPO, done.id)
    with pytest.raises(SessionNotFound):
        await store.list_objects(OTHER_REPO, session_id=done.id)


# --- merge -----------------------------------------------------------------------------------


async def test_disjoint_changes_merge_onto_head(store: VersionStore) -> None:
    await put_and_commit(store, {"a": entry("a0"), "b": entry("b0")}, "init")
    s1 = await store.create_session(REPO, created_by=ALICE)
    s2 = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, s1.id, "a", entry("a1"))
    await store.stage_put(REPO, s2.id, "b", entry("b2"))
    await store.stage_put(REPO, s2.id, "c", entry("c2"))
    c1 = await store.commit_session(REPO, s1.id, message="one", metadata={}, committer=ALICE)
    c2 = await store.commit_session(REPO, s2.id, message="two", metadata={}, committer=ALICE)
    assert (await store.get_commit(REPO, c2)).parents == (c1,)
    assert await store.head(REPO) == c2
    got = {p: (await store.get_entry(REPO, p)).address for p in ("a", "b", "c")}
    assert got == {"a": "blobs/a1", "b": "blobs/b2", "c": "blobs/c2"}


async def test_conflict_lands_nothing(store: VersionStore) -> None:
    await put_and_commit(store, {"a": entry("a0"), "z": entry("z0")}, "init")
    s1 = await store.create_session(REPO, created_by=ALICE)
    s2 = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, s1.id, "a", entry("a1"))
    await store.stage_delete(REPO, s1.id, "z")
    await store.stage_put(REPO, s2.id, "a", entry("a2"))
    await store.stage_put(REPO, s2.id, "fresh", entry("f"))
    await store.stage_put(REPO, s2.id, "z", entry("z2"))
    winner = await store.commit_session(REPO, s1.id, message="one", metadata={}, committer=ALICE)
    with pytest.raises(MergeConflict) as caught:
        await store.commit_session(REPO, s2.id, message="two", metadata={}, committer=ALICE)
    assert caught.value.paths == ["a", "z"]
    assert await store.head(REPO) == winner
    assert await all_paths(store) == ["a"]
    assert (await store.get_session(REPO, s2.id)).state == "open"
    # the loser can still roll back
    await store.rollback_session(REPO, s2.id)


async def test_identical_changes_on_both_sides_do_not_conflict(store: VersionStore) -> None:
    await put_and_commit(store, {"a": entry("a0"), "b": entry("b0")}, "init")
    s1 = await store.create_session(REPO, created_by=ALICE)
    s2 = await store.create_session(REPO, created_by=ALICE)
    same = entry("same")
    for s in (s1, s2):
        await store.stage_delete(REPO, s.id, "a")
        await store.stage_put(REPO, s.id, "b", same)
    await store.stage_put(REPO, s2.id, "c", entry("c"))
    await store.commit_session(REPO, s1.id, message="one", metadata={}, committer=ALICE)
    await store.commit_session(REPO, s2.id, message="two", metadata={}, committer=ALICE)
    assert await all_paths(store) == ["b", "c"]


async def test_twenty_concurrent_commits(store: VersionStore) -> None:
    await put_and_commit(store, {"base": entry("base")}, "init")
    sessions = [await store.create_session(REPO, created_by=ALICE) for _ in range(20)]
    for i, s in enumerate(sessions):
        await store.stage_put_many(
            REPO, s.id, [(f"own/{i:02d}/{j}", entry(f"{i}-{j}")) for j in range(3)]
        )
        if i >= 15:  # five sessions fight over one path
            await store.stage_put(REPO, s.id, "hot", entry(f"hot-{i}"))
    landed: dict[int, str] = {}
    conflicts: dict[int, list[str]] = {}

    async def commit(i: int) -> None:
        try:
            landed[i] = await store.commit_session(
                REPO, sessions[i].id, message=f"s{i}", metadata={}, committer=ALICE
            )
        except MergeConflict as exc:
            conflicts[i] = exc.paths

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(commit, i)

    hot_winners = [i for i in landed if i >= 15]
    assert set(landed) == set(range(15)) | set(hot_winners)
    assert len(hot_winners) == 1
    assert conflicts == {i: ["hot"] for i in range(15, 20) if i not in hot_winners}
    # the history is a chain of exactly the landed commits
    log = await store.log(REPO, amount=100)
    assert [c.id for c in log.items[: len(landed)]] == sorted(
        landed.values(), key=[c.id for c in log.items].index
    )
    assert len(log.items) == len(landed) + 2
    for newer, older in zip(log.items, log.items[1:], strict=False):
        assert newer.parents == (older.id,)
    # the final tree is exactly what the landed commits imply
    expected = {"base", "hot"} | {f"own/{i:02d}/{j}" for i in landed for j in range(3)}
    assert await all_paths(store) == sorted(expected)
    assert (await store.get_entry(REPO, "hot")).address == f"blobs/hot-{hot_winners[0]}"
    head = await store.get_commit(REPO, await store.head(REPO))
    assert head.object_count == len(expected)
    for i, commit_id in landed.items():
        diff = await store.diff(
            REPO, left=(await store.get_commit(REPO, commit_id)).parents[0], right=commit_id
        )
        own = {f"own/{i:02d}/{j}" for j in range(3)} | ({"hot"} if i >= 15 else set())
        assert {d.path for d in diff.items} == own


class MovingHead:
    """A test double of HEAD movement: the first ``times`` plans are made on HEAD as it was
    before ``stale``'s successor landed, so landing them loses the compare-and-swap."""

    def __init__(self, plan: Callable[..., Plan], stale: str, times: int) -> None:
        self.plan = plan
        self.stale = stale
        self.times = times
        self.calls = 0

    def __call__(self, *args: Any) -> Plan:
        self.calls += 1
        plan = self.plan(*args)
        return replace(plan, head=self.stale) if self.calls <= self.times else plan


async def test_a_head_that_keeps_moving_fails_the_commit_after_bounded_attempts(
    store: VersionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = await store.head(REPO)
    head = await put_and_commit(store, {"a": entry("a")}, "moved on")
    session = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, session.id, "b", entry("b"))
    moving = MovingHead(commits.plan_commit, stale, times=10**6)
    monkeypatch.setattr(commits, "plan_commit", moving)

    with pytest.raises(ConcurrentUpdate) as caught:
        await store.commit_session(REPO, session.id, message="m", metadata={}, committer=ALICE)

    assert isinstance(caught.value, VersioningError)
    assert moving.calls == caught.value.attempts == 1 + LAND_ATTEMPTS
    assert await store.head(REPO) == head  # nothing landed
    assert (await store.open_session(REPO, session.id)).state == "open"
    assert [c.path for c in (await store.list_changes(REPO, session.id)).items] == ["b"]

    moving.times = moving.calls + 3  # HEAD settles after three more attempts
    landed = await store.commit_session(REPO, session.id, message="m", metadata={}, committer=ALICE)
    assert await store.head(REPO) == landed
    assert await all_paths(store) == ["a", "b"]


async def test_a_head_that_keeps_moving_fails_a_revert_too(
    store: VersionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = await store.head(REPO)
    target = await put_and_commit(store, {"a": entry("a")}, "to undo")
    monkeypatch.setattr(commits, "plan_revert", MovingHead(commits.plan_revert, stale, 10**6))
    with pytest.raises(ConcurrentUpdate):
        await store.revert(REPO, target, committer=ALICE)
    assert await store.head(REPO) == target


# --- staging operations ----------------------------------------------------------------------


async def test_copy_delete_and_delete_many(store: VersionStore) -> None:
    await put_and_commit(store, {"a": entry("a"), "b": entry("b"), "c": entry("c")}, "init")
    s = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, s.id, "staged", entry("staged"))

    copied = await store.stage_copy(REPO, s.id, "a", "a-copy")
    assert copied.address == "blobs/a" and copied.etag == "etag-a"
    assert copied.last_modified > entry("a").last_modified
    assert (await store.stage_copy(REPO, s.id, "staged", "staged-copy")).address == "blobs/staged"
    with pytest.raises(ObjectNotFound):
        await store.stage_copy(REPO, s.id, "missing", "x")

    assert await store.stage_delete(REPO, s.id, "a") is True
    assert await store.stage_delete(REPO, s.id, "a") is False  # already deleted in this view
    assert await store.stage_delete(REPO, s.id, "missing") is False
    assert await store.stage_delete(REPO, s.id, "staged") is True  # only ever staged: unstaged
    assert await store.stage_delete_many(REPO, s.id, ["b", "b", "c", "nope", "staged"]) == 2

    changes = await store.list_changes(REPO, s.id)
    assert [(c.path, None if c.entry is None else c.entry.address) for c in changes.items] == [
        ("a", None),
        ("a-copy", "blobs/a"),
        ("b", None),
        ("c", None),
        ("staged-copy", "blobs/staged"),
    ]
    assert await all_paths(store, session_id=s.id) == ["a-copy", "staged-copy"]
    await store.commit_session(REPO, s.id, message="m", metadata={}, committer=ALICE)
    assert await all_paths(store) == ["a-copy", "staged-copy"]


async def test_list_changes_pages_and_prefix(store: VersionStore) -> None:
    s = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put_many(REPO, s.id, [(f"d/{i:02d}", entry(str(i))) for i in range(25)])
    await store.stage_put(REPO, s.id, "e", entry("e"))
    seen: list[str] = []
    after = None
    while True:
        page = await store.list_changes(REPO, s.id, prefix="d/", after=after, amount=10)
        seen.extend(c.path for c in page.items)
        if not page.has_more:
            assert page.next_offset is None
            break
        after = page.next_offset
    assert seen == [f"d/{i:02d}" for i in range(25)]


async def test_listing_with_delimiter_across_pages(store: VersionStore) -> None:
    base = {f"dir{d}/f{i}": entry(f"{d}{i}") for d in range(6) for i in range(4)}
    base.update({f"top{i}": entry(f"t{i}") for i in range(5)})
    await put_and_commit(store, base, "init")
    s = await store.create_session(REPO, created_by=ALICE)
    for i in range(4):  # dir2 disappears in the session view
        await store.stage_delete(REPO, s.id, f"dir2/f{i}")
    await store.stage_put(REPO, s.id, "dir9/new", entry("n"))
    await store.stage_put(REPO, s.id, "dir0/deeper/x", entry("x"))
    await store.stage_delete(REPO, s.id, "top3")

    async def pages(**kw: Any) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        after = None
        while True:
            page = await store.list_objects(REPO, after=after, amount=2, **kw)
            assert len(page.items) <= 2
            out.extend((i.path, i.type) for i in page.items)
            if not page.has_more:
                return out
            after = page.next_offset

    dirs = [f"dir{d}/" for d in (0, 1, 3, 4, 5, 9)]
    tops = [f"top{i}" for i in (0, 1, 2, 4)]
    assert await pages(session_id=s.id, delimiter="/") == [(d, "prefix") for d in dirs] + [
        (t, "object") for t in tops
    ]
    assert await pages(delimiter="/") == [(f"dir{d}/", "prefix") for d in range(6)] + [
        (f"top{i}", "object") for i in range(5)
    ]
    assert await pages(session_id=s.id, delimiter="/", prefix="dir0/") == [
        ("dir0/deeper/", "prefix"),
        *[(f"dir0/f{i}", "object") for i in range(4)],
    ]
    with pytest.raises(InvalidCursor):
        await store.list_objects(REPO, after="bad\x00cursor")


# --- log -------------------------------------------------------------------------------------


async def test_log_pages_and_filters(store: VersionStore) -> None:
    ids = [await store.head(REPO)]
    for i in range(5):
        ids.append(await put_and_commit(store, {f"f{i % 2}/x": entry(str(i))}, f"c{i}"))
    newest_first = ids[::-1]
    seen: list[str] = []
    after = None
    while True:
        page = await store.log(REPO, after=after, amount=2)
        seen.extend(c.id for c in page.items)
        if not page.has_more:
            break
        after = page.next_offset
    assert seen == newest_first
    assert [c.message for c in (await store.log(REPO, amount=2)).items] == ["c4", "c3"]
    assert [c.id for c in (await store.log(REPO, ref=ids[2])).items] == ids[2::-1]
    assert [c.message for c in (await store.log(REPO, prefix="f1/")).items] == ["c3", "c1"]
    assert [c.message for c in (await store.log(REPO, object_path="f0/x")).items] == [
        "c4",
        "c2",
        "c0",
    ]
    page = await store.log(REPO, object_path="f0/x", amount=2)
    assert [c.message for c in page.items] == ["c4", "c2"] and page.has_more
    rest = await store.log(REPO, object_path="f0/x", after=page.next_offset, amount=2)
    assert [c.message for c in rest.items] == ["c0"] and not rest.has_more
    with pytest.raises(InvalidCursor):
        await store.log(REPO, after="not-a-commit")
    with pytest.raises(RefNotFound):
        await store.log(REPO, ref="f" * 64)


# --- diff ------------------------------------------------------------------------------------


async def test_diff_statuses_prefixes_and_pages(store: VersionStore) -> None:
    first = await put_and_commit(
        store, {"keep": entry("k"), "mod": entry("m0"), "del": entry("d"), "dir/a": entry("a")}, "1"
    )
    second = await put_and_commit(
        store,
        {"mod": entry("m1"), "del": None, "add": entry("n"), "dir/a": None, "new/b": entry("b")},
        "2",
    )
    diff = await store.diff(REPO, left=first, right=second)
    assert [(i.path, i.status, i.entry is not None) for i in diff.items] == [
        ("add", "added", True),
        ("del", "removed", False),
        ("dir/a", "removed", False),
        ("mod", "modified", True),
        ("new/b", "added", True),
    ]
    assert not diff.has_more
    grouped = await store.diff(REPO, left=first, right=second, delimiter="/")
    assert [(i.path, i.type, i.status) for i in grouped.items] == [
        ("add", "object", "added"),
        ("del", "object", "removed"),
        ("dir/", "prefix", "removed"),
        ("mod", "object", "modified"),
        ("new/", "prefix", "added"),
    ]
    page = await store.diff(REPO, left=first, right=second, amount=2)
    assert [i.path for i in page.items] == ["add", "del"] and page.has_more
    page = await store.diff(REPO, left=first, right=second, amount=2, after=page.next_offset)
    assert [i.path for i in page.items] == ["dir/a", "mod"]
    assert [i.path for i in (await store.diff(REPO, right=first)).items] == [
        "del",
        "dir/a",
        "keep",
        "mod",
    ]
    assert (await store.diff(REPO, left=first, right=first)).items == []
    with pytest.raises(RefNotFound):
        await store.diff(REPO, left="0" * 64, right=first)

    s = await store.create_session(REPO, created_by=ALICE)
    await store.stage_put(REPO, s.id, "keep", entry("k2"))
    await store.stage_put(REPO, s.id, "mod", entry("m1"))  # same as base: no change
    await store.stage_delete(REPO, s.id, "add")
    await store.stage_put(REPO, s.id, "dir/z", entry("z"))
    await store.stage_put(REPO, s.id, "new/c", entry("c"))
    changes = await store.diff(REPO, session_id=s.id, delimiter="/")
    assert [(i.path, i.status) for i in changes.items] == [
        ("add", "removed"),
        ("dir/", "added"),
        ("keep", "modified"),
        ("new/", "modified"),
    ]


# --- revert ----------------------------------------------------------------------------------


async def test_revert(store: VersionStore) -> None:
    root = await store.head(REPO)
    first = await put_and_commit(store, {"a": entry("a1"), "b": entry("b1")}, "first")
    second = await put_and_commit(store, {"a": entry("a2"), "b": None, "c": entry("c2")}, "second")
    third = await put_and_commit(store, {"d": entry("d3")}, "third")
    # `second` changed both paths `first` wrote: undoing `first` would clobber them
    with pytest.raises(MergeConflict) as caught:
        await store.revert(REPO, first, committer=ALICE)
    assert caught.value.paths == ["a", "b"]
    assert await store.head(REPO) == third

    reverted = await store.revert(REPO, second, committer=ALICE)
    info = await store.get_commit(REPO, reverted)
    assert info.message == 'Revert "second"'
    assert info.parents == (third,)
    assert await all_paths(store) == ["a", "b", "d"]
    assert (await store.get_entry(REPO, "a")).address == "blobs/a1"
    with pytest.raises(MergeConflict) as caught:
        await store.revert(REPO, second, committer=ALICE)
    assert caught.value.paths == ["a", "b", "c"]

    # now HEAD holds exactly what `first` wrote again, so it can be undone
    await store.revert(REPO, first, committer=ALICE)
    assert await all_paths(store) == ["d"]
    custom = await store.revert(
        REPO, third, message="undo d", metadata={"why": "test"}, committer=ALICE
    )
    info = await store.get_commit(REPO, custom)
    assert (info.message, info.metadata) == ("undo d", {"why": "test"})
    assert await all_paths(store) == []
    assert info.object_count == 0

    with pytest.raises(RevertNotSupported):
        await store.revert(REPO, root, committer=ALICE)
    with pytest.raises(RefNotFound):
        await store.revert(REPO, "e" * 64, committer=ALICE)


# --- crash safety ----------------------------------------------------------------------------

_CRASH_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    import anyio
    from lamina_server.storage.db import Database, sqlite_url
    from lamina_server.storage.schema import ensure_schema
    from lamina_server.versioning import Committer, Entry, VersionStore
    from pathlib import Path

    async def main():
        db = Database(sqlite_url(Path(sys.argv[1])))
        await ensure_schema(db)
        store = VersionStore(db)
        who = Committer("user", "u", "w")
        await store.init_repository("r", committer=who)
        i = 0
        while True:
            s = await store.create_session("r", created_by=who)
            items = [
                (f"batch{i}/{j:04d}", Entry(f"b/{i}/{j}", j, "e", "t", datetime.now(timezone.utc), {}))
                for j in range(300)
            ]
            await store.stage_put_many("r", s.id, items)
            if i:
                await store.stage_delete("r", s.id, f"batch{i - 1}/0000")
            await store.commit_session("r", s.id, message=str(i), metadata={}, committer=who)
            print(i, flush=True)
            i += 1

    anyio.run(main)
    """
)


@pytest.mark.slow
@pytest.mark.sqlite_only("the killed writer runs on the data directory's SQLite file")
async def test_no_partial_commit_after_sigkill(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASH_WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while int(proc.stdout.readline() or b"-1") < 4 and time.monotonic() < deadline:
        pass
    await anyio.sleep(0.05)  # land mid-way through a later commit
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    db = Database(sqlite_url(tmp_path))
    try:
        store = VersionStore(db)
        log = await store.log("r", amount=1000)
        assert len(log.items) >= 5
        for commit in log.items[:-1]:
            n = int(commit.message)
            # every commit is whole: its 300 puts and its delete, nothing of later ones
            paths: list[str] = []
            after = None
            while True:
                page = await store.list_objects("r", ref=commit.id, after=after, amount=1000)
                paths.extend(i.path for i in page.items)
                if not page.has_more:
                    break
                after = page.next_offset
            assert len(paths) == commit.object_count == 300 * (n + 1) - n
            assert f"batch{n}/0299" in paths and f"batch{n + 1}/0000" not in paths
        # every committed session's commit is in the history and its staging is gone
        landed = {c.id for c in log.items}
        for session_id, staged_rows in await _sessions_and_staged_rows(db):
            session = await store.get_session("r", session_id)
            assert session.state in {"open", "committed"}
            if session.state == "committed":
                assert session.commit_id in landed
                assert staged_rows == 0
    finally:
        await db.dispose()


async def _sessions_and_staged_rows(db: Database) -> list[tuple[str, int]]:
    query = (
        sa.select(repo_sessions.c.id, sa.func.count(staged_changes.c.path))
        .outerjoin(staged_changes, staged_changes.c.session_id == repo_sessions.c.id)
        .group_by(repo_sessions.c.id)
    )
    async with db.connect() as conn:
        return [(sid, n) for sid, n in (await conn.execute(query)).all()]

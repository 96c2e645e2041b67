"""Garbage collection on the engine and a local blob store: what goes, what stays, the books,
retention, open sessions, shared blobs, deleted repositories, dry runs, and a race against
writers."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from lamina_server.cli import main
from lamina_server.garbage import Collector, Report, collect_once
from lamina_server.garbage.collector import _walk
from lamina_server.identity.tables import organizations
from lamina_server.repositories.tables import repositories
from lamina_server.storage.blobs import SMALL_BLOB, BlobNotFound
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.storage.schema import ensure_schema
from lamina_server.versioning import (
    Claim,
    Committer,
    Entry,
    ObjectNotFound,
    SessionClosed,
    Staging,
    VersionStore,
    rows,
)
from lamina_server.versioning.tables import (
    gc_head_blobs,
    gc_head_nodes,
    gc_indexed,
    tree_nodes,
)
from tests import blob_stores, postgres

pytestmark = pytest.mark.anyio

WHO = Committer(type="user", id="u-1", name="alice")
REPO = "11111111-1111-1111-1111-111111111111"
OTHER = "22222222-2222-2222-2222-222222222222"
DAY = 86400.0


class Clock:
    """Seconds since the epoch, moved on by the tests."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


class World:
    def __init__(self, db: Database, tmp_path: Path) -> None:
        self.db = db
        self.store = VersionStore(db)
        self.backend = blob_stores.backend_for(tmp_path)
        self.blobs = self.backend.store
        self.clock = Clock()
        self.collector = Collector(db, self.blobs, clock=self.clock)

    async def upload(self, data: bytes) -> Entry:
        address = self.blobs.new_address()
        info = await self.blobs.write(address, _chunks(data))
        stored = await self.blobs.claim(address)
        return Entry(stored, info.size, info.etag, "application/octet-stream", _now(), {})

    async def commit(self, repo: str, puts: dict[str, bytes], deletes: tuple[str, ...] = ()) -> str:
        session = await self.store.create_session(repo, created_by=WHO)
        for path, data in puts.items():
            await self.store.stage_put(repo, session.id, path, await self.upload(data))
        for path in deletes:
            await self.store.stage_delete(repo, session.id, path)
        return await self.store.commit_session(
            repo, session.id, message="c", metadata={}, committer=WHO
        )

    async def read(self, repo: str, path: str, ref: str | None = None) -> bytes:
        entry = await self.store.get_entry(repo, path, ref=ref)
        return b"".join([chunk async for chunk in self.blobs.read(entry.address, 0, entry.size)])

    async def readable(self, address: str) -> bool:
        """Whether the blob's bytes are still there (a packed blob's freed stretch of its pack
        reads as zeros; the tests never write a zero byte)."""
        try:
            data = b"".join([chunk async for chunk in self.blobs.read(address, 0, 1)])
        except BlobNotFound:
            return False
        return data != b"\0"

    async def node_count(self) -> int:
        return await self.db.run_read(
            lambda conn: conn.execute(
                sa.select(sa.func.count()).select_from(tree_nodes)
            ).scalar_one()
        )

    async def collect(
        self, days: float = 0.0, *, dry_run: bool = False, sweep: bool = False
    ) -> Report:
        self.clock.offset = days * DAY
        return await self.collector.collect(dry_run=dry_run, sweep_uploads=sweep)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
async def world(db: Database, tmp_path: Path) -> AsyncIterator[World]:
    w = World(db, tmp_path)
    await w.store.init_repository(REPO, committer=WHO)
    await w.store.init_repository(OTHER, committer=WHO)
    yield w
    if w.backend.close is not None:
        await w.backend.close()


async def _books_match_head(world: World, repo: str) -> None:
    def check(conn: sa.Connection) -> None:
        nodes, values = _walk(conn, rows.root(conn, repo, rows.head(conn, repo)))
        booked = set(
            conn.execute(
                sa.select(gc_head_nodes.c.node_id).where(gc_head_nodes.c.repository_id == repo)
            ).scalars()
        )
        assert booked == set(nodes)
        b = gc_head_blobs.c
        counted = dict(
            conn.execute(sa.select(b.address, b.refs).where(b.repository_id == repo)).all()
        )
        assert counted == dict(Counter(value[0] for value in values))

    await world.db.run_read(check)


async def test_books_follow_head_through_random_commits(world: World) -> None:
    rng = random.Random(7)
    paths = [f"d{i % 7}/f{i:04d}" for i in range(400)]
    live: set[str] = set()
    for round_ in range(12):
        session = await world.store.create_session(REPO, created_by=WHO)
        for path in rng.sample(paths, 60):
            entry = Entry(f"a{rng.randrange(150)}", 5, "e", "t", _now(), {})
            await world.store.stage_put(REPO, session.id, path, entry)
            live.add(path)
        for path in rng.sample(sorted(live), min(len(live), 25)):
            await world.store.stage_delete(REPO, session.id, path)
            live.discard(path)
        if live:
            source = rng.choice(sorted(live))
            await world.store.stage_copy(REPO, session.id, source, f"copy/{round_}")
            live.add(f"copy/{round_}")
        await world.store.commit_session(REPO, session.id, message="m", metadata={}, committer=WHO)
        await _books_match_head(world, REPO)


async def test_rolled_back_session_blobs_are_removed(world: World) -> None:
    await world.commit(REPO, {"keep": b"kept"})
    session = await world.store.create_session(REPO, created_by=WHO)
    staged = [await world.upload(b"x" * n) for n in (10, 70_000)]
    for index, entry in enumerate(staged):
        await world.store.stage_put(REPO, session.id, f"tmp/{index}", entry)
    await world.store.rollback_session(REPO, session.id)

    assert await world.collect() == Report()  # within the grace period
    report = await world.collect(days=0.1)
    assert (report.blobs, report.bytes) == (2, 70_010)
    assert not await world.readable(staged[1].address)
    assert await world.read(REPO, "keep") == b"kept"


async def test_what_a_session_overwrote_or_deleted_before_committing_is_removed(
    world: World,
) -> None:
    session = await world.store.create_session(REPO, created_by=WHO)
    first, second, dropped, shared = [await world.upload(b"y" * n) for n in (11, 22, 33, 44)]
    await world.store.stage_put(REPO, session.id, "a", first)
    await world.store.stage_put(REPO, session.id, "a", second)  # overwrites the staged first
    await world.store.stage_put(REPO, session.id, "b", dropped)
    await world.store.stage_delete(REPO, session.id, "b")  # never committed
    await world.store.stage_put(REPO, session.id, "c", shared)
    await world.store.stage_copy(REPO, session.id, "c", "d")
    await world.store.stage_put(REPO, session.id, "c", second)  # "d" still holds shared
    await world.store.commit_session(REPO, session.id, message="m", metadata={}, committer=WHO)

    assert await world.collect() == Report()  # within the grace period
    report = await world.collect(days=0.1)
    assert (report.blobs, report.bytes) == (2, 44)
    assert not await world.readable(first.address)
    assert not await world.readable(dropped.address)
    assert await world.read(REPO, "a") == b"y" * 22
    assert await world.read(REPO, "c") == b"y" * 22
    assert await world.read(REPO, "d") == b"y" * 44


async def test_an_upload_claimed_for_a_session_that_closed_meanwhile_is_removed(
    world: World,
) -> None:
    session = await world.store.create_session(REPO, created_by=WHO)
    address = world.blobs.new_address()
    info = await world.blobs.write(address, _chunks(b"claimed, never staged"))
    await world.store.rollback_session(REPO, session.id)  # before the upload's finalize
    entry = Entry(address, info.size, info.etag, "application/octet-stream", _now(), {})
    with pytest.raises(SessionClosed):
        await Staging(world.store, world.blobs).put(
            REPO, session.id, "late", entry, claim=Claim.PENDING
        )

    assert await world.collect() == Report()  # within the grace period
    assert (await world.collect(days=0.1)).blobs == 1
    assert not await world.readable(address)


async def test_uploads_never_finalized_are_swept_a_week_later(world: World) -> None:
    kept = await world.upload(b"claimed")
    abandoned = world.blobs.new_address()  # large enough for a file (small ones expire)
    await world.blobs.write(abandoned, _chunks(b"never finalized".ljust(SMALL_BLOB + 1)))

    assert (await world.collect(days=6, sweep=True)).uploads == 0
    assert (await world.collect(days=8)).uploads == 0  # only when asked: it lists the store
    assert (await world.collect(days=8, sweep=True)).uploads == 1
    with pytest.raises(BlobNotFound):
        await world.blobs.pending(abandoned)
    assert await world.readable(kept.address)


async def test_old_versions_go_once_beyond_retention(world: World) -> None:
    first = await world.commit(REPO, {"a": b"a1", "b": b"b1", "c": b"c1"})
    old_a = (await world.store.get_entry(REPO, "a")).address
    old_b = (await world.store.get_entry(REPO, "b")).address
    await world.commit(REPO, {"a": b"a2"}, deletes=("b",))
    nodes = await world.node_count()

    assert await world.collect(days=13) == Report()  # retention: 14 days
    assert await world.read(REPO, "a", ref=first) == b"a1"
    report = await world.collect(days=15)
    assert (report.blobs, report.bytes) == (2, 4)
    assert report.nodes >= 1 and await world.node_count() == nodes - report.nodes
    assert not await world.readable(old_a) and not await world.readable(old_b)
    assert [await world.read(REPO, p) for p in ("a", "c")] == [b"a2", b"c1"]
    with pytest.raises(ObjectNotFound):
        await world.store.get_entry(REPO, "b")
    assert await world.collect(days=30) == Report()  # nothing twice


async def test_open_session_holds_its_base(world: World) -> None:
    await world.commit(REPO, {"a": b"a1"})
    session = await world.store.create_session(REPO, created_by=WHO)
    await world.commit(REPO, {"a": b"a2"})

    assert await world.collect(days=20) == Report()
    entry = await world.store.get_entry(REPO, "a", session_id=session.id)
    assert await world.readable(entry.address)
    await world.store.stage_copy(REPO, session.id, "a", "a-copy")
    await world.store.rollback_session(REPO, session.id)
    report = await world.collect(days=20)
    assert report.blobs == 1 and not await world.readable(entry.address)


async def test_a_blob_two_repositories_share_stays_while_one_holds_it(world: World) -> None:
    await world.commit(REPO, {"a": b"shared"})
    entry = await world.store.get_entry(REPO, "a")
    session = await world.store.create_session(OTHER, created_by=WHO)
    await world.store.stage_put(OTHER, session.id, "imported", entry)
    await world.store.commit_session(OTHER, session.id, message="m", metadata={}, committer=WHO)
    await world.commit(REPO, {}, deletes=("a",))

    assert (await world.collect(days=15)).blobs == 0
    assert await world.read(OTHER, "imported") == b"shared"
    await world.commit(OTHER, {}, deletes=("imported",))
    assert (await world.collect(days=13)).blobs == 0  # within OTHER's retention
    assert (await world.collect(days=15)).blobs == 1
    assert not await world.readable(entry.address)


async def test_a_deleted_repository_is_collected_whole(world: World) -> None:
    await world.commit(REPO, {"live": b"live"})
    await world.commit(OTHER, {f"f{i}": b"gone-%d" % i for i in range(200)})
    await world.commit(OTHER, {"f0": b"newer"})
    addresses = [
        e.address for _, e in await world.store.list_tree(OTHER, await world.store.head(OTHER))
    ]
    open_session = await world.store.create_session(OTHER, created_by=WHO)
    await world.store.stage_put(OTHER, open_session.id, "staged", await world.upload(b"staged"))
    nodes = await world.node_count()

    def delete_other(conn: sa.Connection) -> None:
        conn.execute(
            sa.insert(organizations).values(id="o", name="org", display_name="o", created_at=_now())
        )
        conn.execute(
            sa.insert(repositories).values(
                id=OTHER,
                organization_id="o",
                name="other",
                retention_days=14,
                created_by_type="user",
                created_by="u-1",
                created_at=_now(),
                deleted_at=_now(),
            )
        )

    await world.db.run_write(delete_other)
    assert (await world.collect()).blobs == 0  # within the grace period of the deletion
    report = await world.collect(days=0.1)
    assert report.purged == 0  # released on the first run, collected now
    assert report.blobs == 201 + 1  # 200 at HEAD, the overwritten f0, the staged blob
    assert not any([await world.readable(a) for a in addresses])
    assert await world.node_count() == nodes - report.nodes
    assert await world.read(REPO, "live") == b"live"


async def test_dry_run_removes_nothing(world: World) -> None:
    await world.commit(REPO, {"a": b"a1"})
    old = (await world.store.get_entry(REPO, "a")).address
    await world.commit(REPO, {"a": b"a2"})
    nodes = await world.node_count()
    dry = await world.collect(days=15, dry_run=True)
    assert dry.blobs == 1 and dry.bytes == 2 and dry.nodes >= 1
    assert await world.readable(old) and await world.node_count() == nodes
    assert await world.collect(days=15) == dry


async def test_a_repository_from_before_the_books_is_indexed_first(world: World) -> None:
    await world.commit(REPO, {"a": b"a1", "b": b"b1"})

    def forget(conn: sa.Connection) -> None:
        for table in (gc_head_nodes, gc_head_blobs, gc_indexed):
            conn.execute(sa.delete(table).where(table.c.repository_id == REPO))

    await world.db.run_write(forget)
    await world.commit(REPO, {"a": b"a2"})
    report = await world.collect(days=15)
    assert report.indexed == 1
    assert [await world.read(REPO, p) for p in ("a", "b")] == [b"a2", b"b1"]
    await _books_match_head(world, REPO)


async def test_gc_races_writers_and_loses_nothing(world: World) -> None:
    """Writers upload, copy, overwrite, delete, commit and roll back while a collector whose
    clock is a month ahead (every release is past retention) runs in a loop; afterwards every
    object at HEAD reads back as written, and the books match HEAD."""
    expected: dict[str, bytes] = {}
    done = anyio.Event()
    removed: list[Report] = []

    async def writer(n: int) -> None:
        rng = random.Random(n)
        for round_ in range(12):
            session = await world.store.create_session(REPO, created_by=WHO)
            mine: dict[str, bytes | None] = {}
            for k in range(rng.randrange(1, 6)):
                path = f"w{n}/p{rng.randrange(8)}"
                data = f"{n}-{round_}-{k}".encode() * rng.choice((1, 5000))
                await world.store.stage_put(REPO, session.id, path, await world.upload(data))
                mine[path] = data
            base = await world.store.list_objects(REPO, session_id=session.id, prefix=f"w{n}/")
            if base.items and rng.random() < 0.5:
                source = rng.choice(base.items).path
                target = f"w{n}/copy{rng.randrange(4)}"
                await world.store.stage_copy(REPO, session.id, source, target)
                mine[target] = mine.get(source) or expected[source]
            if base.items and rng.random() < 0.3:
                gone = rng.choice(base.items).path
                await world.store.stage_delete(REPO, session.id, gone)
                mine[gone] = None
            if rng.random() < 0.2:
                await world.store.rollback_session(REPO, session.id)
                continue
            await world.store.commit_session(
                REPO, session.id, message="m", metadata={}, committer=WHO
            )
            for path, data in mine.items():
                if data is None:
                    expected.pop(path, None)
                else:
                    expected[path] = data

    async def collector() -> None:
        world.clock.offset = 30 * DAY
        while not done.is_set():
            removed.append(await world.collector.collect())
            await anyio.sleep(0)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(collector)
        async with anyio.create_task_group() as writers:
            for n in range(8):
                writers.start_soon(writer, n)
        done.set()
    assert sum(r.blobs for r in removed) > 20 and sum(r.nodes for r in removed) > 20
    await world.collector.collect()
    head = await world.store.list_tree(REPO, await world.store.head(REPO))
    assert {path for path, _ in head} == set(expected)
    for path, data in expected.items():
        assert await world.read(REPO, path) == data, path
    await _books_match_head(world, REPO)


async def test_one_collector_at_a_time(world: World) -> None:
    assert await collect_once(world.collector, "a") == Report()
    from lamina_server.garbage.periodic import _take

    now = int(time.time() * 1e6)
    assert await world.db.run_write(lambda conn: _take(conn, "b", now, now + 10**9))
    assert await collect_once(world.collector, "a") is None
    assert await collect_once(world.collector, "b") == Report()


def test_cli_gc_prints_what_it_removed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def seed() -> None:
        db = Database(sqlite_url(tmp_path))
        await ensure_schema(db)
        w = World(db, tmp_path)
        await w.store.init_repository(REPO, committer=WHO)
        session = await w.store.create_session(REPO, created_by=WHO)
        await w.store.stage_put(REPO, session.id, "x", await w.upload(b"12345"))
        await w.store.rollback_session(REPO, session.id)
        if w.backend.close is not None:
            await w.backend.close()
        await db.dispose()

    anyio.run(seed)
    # The data directory's database and blobs: its SQLite file and folder, or on a second-pass
    # run the database and the bucket prefix the suite gave the directory.
    cluster = postgres.CLUSTER
    data = ["--data-dir", str(tmp_path), *blob_stores.args_for(tmp_path)]
    if cluster is not None:
        data += ["--database-url", cluster.database_for(tmp_path)]
    assert main(["gc", *data, "--dry-run"]) == 0
    assert capsys.readouterr().out == "would remove: 0 tree nodes, 0 blobs, 0 bytes\n"  # grace
    gc = ["gc", *data, "--grace", "0"]
    assert main([*gc, "--dry-run"]) == 0
    assert capsys.readouterr().out == "would remove: 0 tree nodes, 1 blobs, 5 bytes\n"
    assert main(gc) == 0
    assert capsys.readouterr().out == "removed: 0 tree nodes, 1 blobs, 5 bytes\n"
    assert main([*gc, "--sweep-uploads"]) == 0
    out = capsys.readouterr().out
    assert out == "removed: 0 tree nodes, 0 blobs, 0 bytes, 0 abandoned uploads\n"

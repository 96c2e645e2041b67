"""Garbage collection cost against repository size: 10,000 vs 1,000,000 objects.

Each repository is built through ``VersionStore`` (sessions staged in bulk and committed in
sorted batches of 100,000, as in ``commit_scaling.py``) on its own SQLite file, with a local
blob store. 10,000 of its objects, under one prefix, have real blobs; one commit deletes them
all. A collector whose clock is past the retention window then removes those 10,000 blobs and
the tree nodes only they needed: its time is timed, for both sizes, and the ratio printed. The
goal is at most 2.0: the cost follows the garbage, not the repository.

    .venv/bin/python scripts/bench/gc.py [--small 10000] [--big 1000000] [--garbage 10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import anyio

from lamina_server.garbage import Collector, Report
from lamina_server.storage.blobs import LocalBlobStore
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.storage.schema import ensure_schema
from lamina_server.versioning import Committer, Entry, VersionStore

WHO = Committer(type="user", id="bench", name="bench")
REPO = "00000000-0000-0000-0000-0000000006c0"
BATCH = 100_000
MODIFIED = datetime(2024, 1, 1, tzinfo=timezone.utc)


def entry_of(address: str, size: int) -> Entry:
    return Entry(address, size, "0" * 32, "application/octet-stream", MODIFIED, {})


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def run(folder: Path, count: int, garbage: int) -> tuple[float, float, Report]:
    db = Database(sqlite_url(folder))
    await ensure_schema(db)
    store = VersionStore(db)
    blobs = LocalBlobStore(folder / "blobs")
    started = time.perf_counter()
    await store.init_repository(REPO, committer=WHO)
    others = count - garbage
    for start in range(0, others, BATCH):
        session = await store.create_session(REPO, created_by=WHO)
        stop = min(start + BATCH, others)
        items = [(f"data/{i:08d}", entry_of(f"fake-{i:08d}", 4096)) for i in range(start, stop)]
        await store.stage_put_many(REPO, session.id, items)
        await store.commit_session(REPO, session.id, message="import", metadata={}, committer=WHO)
    session = await store.create_session(REPO, created_by=WHO)
    addresses = [blobs.new_address() for _ in range(garbage)]
    for address in addresses:
        await blobs.write(address, _chunks(b"x" * 1000))
    claimed = await blobs.claim_many(addresses)
    paths = [f"garbage/{i:08d}" for i in range(garbage)]
    await store.stage_put_many(
        REPO,
        session.id,
        [(p, entry_of(str(a), 1000)) for p, a in zip(paths, claimed, strict=True)],
    )
    await store.commit_session(REPO, session.id, message="garbage", metadata={}, committer=WHO)
    session = await store.create_session(REPO, created_by=WHO)
    await store.stage_delete_many(REPO, session.id, paths)
    await store.commit_session(REPO, session.id, message="drop", metadata={}, committer=WHO)
    built = time.perf_counter() - started
    collector = Collector(db, blobs, clock=lambda: time.time() + 30 * 86400)
    started = time.perf_counter()
    report = await collector.collect()
    elapsed = time.perf_counter() - started
    assert report.blobs == garbage, report
    await db.dispose()
    return built, elapsed, report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--garbage", type=int, default=10_000)
    args = parser.parse_args()
    results = []
    for count in (args.small, args.big):
        with tempfile.TemporaryDirectory(prefix="lamina-gc-") as folder:
            built, elapsed, report = await run(Path(folder), count, args.garbage)
        results.append(elapsed)
        print(
            f"{count:>9} objects: built in {built:6.1f} s; gc {elapsed * 1000:7.1f} ms "
            f"({report.blobs} blobs, {report.nodes} tree nodes, {report.bytes} bytes)"
        )
    print(f"ratio big/small: {results[1] / results[0]:.2f} (goal <= 2.0)")


if __name__ == "__main__":
    anyio.run(main)

"""Commit, diff and listing cost against repository size: 1,000 vs 1,000,000 objects.

Both repositories are built through ``VersionStore`` itself (sessions staged in bulk with
``stage_put_many`` and committed in sorted batches of 100,000, as an import would), each on
its own SQLite file in a temporary directory, with the recorder the server uses (the sandbox
trigger outbox, which asks each commit whether its repository has an enabled trigger). Then, alternating between the two so that
both see the same machine load, the median of several runs of:

* a commit of 10 changes (6 overwrites, 2 deletes, 2 new paths at random places), timed end
  to end (new session, 10 staging calls, commit) and for ``commit_session`` alone;
* the diff of that commit against its parent;
* a page of 100 objects under a prefix from a random ``after``, and a page of 100 common
  prefixes (delimiter ``/``; every "directory" holds 10 objects).

The goal is a big/small ratio of at most 2.0 for commit and diff: cost follows the size of
the change, not of the repository. Besides wall time the table shows the ratio of process CPU
time (steadier on a busy machine) and the round trips made to read tree nodes: the small
repository fits in the engine's node cache, the big one does not, so its operations also read
the few nodes on their paths from SQLite.

With ``--backend postgres`` the metadata lives in a PostgreSQL cluster the script starts (as
the tests do); the CPU column then counts this process only, not the database's.

    .venv/bin/python scripts/bench/commit_scaling.py [--small 1000] [--big 1000000] [--runs 7]
                                                     [--backend sqlite|postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import anyio

from lamina_server.sandboxes.dispatch import TriggerOutbox
from lamina_server.storage.db import Database, sqlite_url
from lamina_server.storage.schema import ensure_schema
from lamina_server.versioning import Committer, Entry, VersionStore

WHO = Committer(type="user", id="bench", name="bench")
REPO = "00000000-0000-0000-0000-00000000be9c"
BATCH = 100_000
PER_DIR = 10


def path_of(i: int) -> str:
    return f"data/{i // PER_DIR:06d}/part-{i:08d}.parquet"


def entry_of(i: int, generation: int = 0) -> Entry:
    return Entry(
        address=f"blobs/{generation:04d}/{i:08d}-3f2a9c1e",
        size=4096 + i % 1000,
        etag=f"{i * 2654435761 % 2**128:032x}",
        content_type="application/octet-stream",
        last_modified=datetime(2024, 1, 1, tzinfo=timezone.utc),
        metadata={},
    )


class Sample(NamedTuple):
    wall: float
    cpu: float  # CPU time of the whole process (SQLite threads included)


def clock() -> Sample:
    return Sample(time.perf_counter(), time.process_time())


def since(start: Sample) -> Sample:
    now = clock()
    return Sample(now.wall - start.wall, now.cpu - start.cpu)


class Row(NamedTuple):
    wall: list[float]  # medians: small, big
    cpu: list[float]
    fetches: list[float]


class Target:
    """One repository of ``count`` objects and the operations timed on it."""

    def __init__(self, store: VersionStore, count: int) -> None:
        self.store = store
        self.count = count
        self.rng = random.Random(count)
        self.generation = 0
        self.last_commit = ""
        self.commit_only: list[Sample] = []
        self.deleted: set[int] = set()

    async def build(self) -> float:
        store, started = self.store, time.perf_counter()
        await store.init_repository(REPO, committer=WHO)
        for start in range(0, self.count, BATCH):
            session = await store.create_session(REPO, created_by=WHO)
            stop = min(start + BATCH, self.count)
            await store.stage_put_many(
                REPO, session.id, [(path_of(i), entry_of(i)) for i in range(start, stop)]
            )
            await store.commit_session(
                REPO, session.id, message=f"import {start}..{stop}", metadata={}, committer=WHO
            )
        head = await store.get_commit(REPO, await store.head(REPO))
        assert head.object_count == self.count, head.object_count
        return time.perf_counter() - started

    async def commit_10(self) -> Sample:
        store, rng = self.store, self.rng
        self.generation += 1
        gen = self.generation
        picks = [i for i in rng.sample(range(self.count), 40) if i not in self.deleted][:8]
        self.deleted.update(picks[6:])
        started = clock()
        session = await store.create_session(REPO, created_by=WHO)
        for i in picks[:6]:
            await store.stage_put(REPO, session.id, path_of(i), entry_of(i, gen))
        for i in picks[6:]:
            assert await store.stage_delete(REPO, session.id, path_of(i))
        for n in range(2):
            i = rng.randrange(self.count)
            await store.stage_put(REPO, session.id, f"{path_of(i)}.new{gen}-{n}", entry_of(i, gen))
        committing = clock()
        self.last_commit = await store.commit_session(
            REPO, session.id, message=f"ten {gen}", metadata={}, committer=WHO
        )
        self.commit_only.append(since(committing))
        return since(started)

    async def diff(self) -> Sample:
        commit = await self.store.get_commit(REPO, self.last_commit)
        started = clock()
        page = await self.store.diff(REPO, left=commit.parents[0], right=commit.id)
        elapsed = since(started)
        assert len(page.items) == 10, len(page.items)
        return elapsed

    async def prefix_page(self) -> Sample:
        after = path_of(self.rng.randrange(self.count - 200))
        started = clock()
        page = await self.store.list_objects(REPO, prefix="data/", after=after, amount=100)
        elapsed = since(started)
        assert len(page.items) == 100
        return elapsed

    async def delimiter_page(self) -> Sample:
        dirs = self.count // PER_DIR
        after = None if dirs <= 100 else f"data/{self.rng.randrange(dirs - 100):06d}/"
        started = clock()
        page = await self.store.list_objects(
            REPO, prefix="data/", delimiter="/", after=after, amount=100
        )
        elapsed = since(started)
        assert len(page.items) == 100 and all(item.type == "prefix" for item in page.items)
        return elapsed


async def interleaved(
    runs: int, targets: list[Target], op: Callable[[Target], Awaitable[Sample]]
) -> Row:
    """Medians of wall time, CPU time and node fetches (round trips for tree nodes).

    One warm-up round, then the targets take turns, so both see the same machine load.
    """
    samples: list[list[Sample]] = [[] for _ in targets]
    fetches: list[list[int]] = [[] for _ in targets]
    for round_ in range(runs + 1):
        for target, taken, counts in zip(targets, samples, fetches, strict=True):
            before = target.store.node_cache.fetches
            sample = await op(target)
            if round_:
                taken.append(sample)
                counts.append(target.store.node_cache.fetches - before)
    return summarize(samples, fetches)


def summarize(samples: list[list[Sample]], fetches: list[list[int]]) -> Row:
    return Row(
        [statistics.median(s.wall for s in taken) for taken in samples],
        [statistics.median(s.cpu for s in taken) for taken in samples],
        [statistics.median(counts) for counts in fetches],
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the metadata database: SQLite files, or a PostgreSQL cluster started for the run "
        "(initdb/pg_ctl, as the tests start one: tests/postgres.py)",
    )
    args = parser.parse_args()

    async with AsyncExitStack() as stack:
        database_url: Callable[[Path], str] = sqlite_url
        if args.backend == "postgres":
            sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
            from tests.postgres import PostgresCluster

            cluster = PostgresCluster().start()
            stack.callback(cluster.stop)

            def fresh(_: Path) -> str:
                return cluster.database_url()  # an empty database of its own

            database_url = fresh
        targets: list[Target] = []
        for count in (args.small, args.big):
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="lamina-bench-"))
            db = Database(database_url(Path(tmp)))
            stack.push_async_callback(db.dispose)
            await ensure_schema(db)
            targets.append(Target(VersionStore(db, recorder=TriggerOutbox()), count))
        builds = [await target.build() for target in targets]
        small, big = targets
        print(f"build through VersionStore: {small.count:,} objects {builds[0]:.2f} s, ", end="")
        print(f"{big.count:,} objects {builds[1]:.1f} s")

        commit = await interleaved(args.runs, targets, Target.commit_10)
        rows = {
            "commit 10 changes (end to end)": commit,
            "  of which commit_session": summarize(
                [t.commit_only[1:] for t in targets], [[0], [0]]
            ),
            "diff of adjacent commits": await interleaved(args.runs, targets, Target.diff),
            "prefix page, 100 objects": await interleaved(args.runs, targets, Target.prefix_page),
            "delimiter page, 100 prefixes": await interleaved(
                args.runs, targets, Target.delimiter_page
            ),
        }

    print(f"metadata on {args.backend}; medians of {args.runs} runs; ms = wall time; ", end="")
    print("cpu = process CPU time ratio;")
    print("fetches = round trips to read tree nodes (small / big); goal: big/small <= 2.0")
    header = (
        f"{'operation':<32}{small.count:>9,} ms{big.count:>11,} ms{'big/small':>10}"
        f"{'cpu':>6}{'fetches':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        fetched = "" if name.startswith("  ") else "{:g} / {:g}".format(*row.fetches)
        print(
            f"{name:<32}{row.wall[0] * 1000:>12.2f}{row.wall[1] * 1000:>14.2f}"
            f"{row.wall[1] / row.wall[0]:>10.2f}{row.cpu[1] / row.cpu[0]:>6.2f}{fetched:>10}"
        )


if __name__ == "__main__":
    anyio.run(main)

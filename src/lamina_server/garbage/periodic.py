"""One collector at a time: a lease row in the database, and the server's periodic job.

Several server processes may share one database; the lease (``gc_lease``) lets one of them
collect at a time. It is taken by a compare-and-set of its row — free, expired, or already
this holder's — and lasts :data:`LEASE_SECONDS`, released when the run ends. (Two runs at once
would still be safe — every deletion is checked in its own transaction — only wasteful.)
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

import anyio
import sqlalchemy as sa

from lamina_server.garbage.collector import Collector, Report
from lamina_server.versioning.sql import dialect_insert
from lamina_server.versioning.tables import gc_lease

LEASE = "gc"
LEASE_SECONDS = 3600.0

logger = logging.getLogger("lamina_server.garbage")


def holder_name() -> str:
    """This process's name in the lease: host, pid and a random part."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _take(conn: sa.Connection, holder: str, now: int, until: int) -> bool:
    conn.execute(
        dialect_insert(conn, gc_lease)
        .values(name=LEASE, holder=holder, expires_at=0)
        .on_conflict_do_nothing()
    )
    taken = conn.execute(
        sa.update(gc_lease)
        .where(
            gc_lease.c.name == LEASE,
            sa.or_(gc_lease.c.holder == holder, gc_lease.c.expires_at < now),
        )
        .values(holder=holder, expires_at=until)
    )
    return bool(taken.rowcount == 1)


def _give_back(conn: sa.Connection, holder: str) -> None:
    conn.execute(
        sa.update(gc_lease)
        .where(gc_lease.c.name == LEASE, gc_lease.c.holder == holder)
        .values(expires_at=0)
    )


SWEEP_SECONDS = 24 * 3600.0  # how often the periodic job sweeps abandoned uploads


async def collect_once(
    collector: Collector, holder: str, *, dry_run: bool = False, sweep_uploads: bool = False
) -> Report | None:
    """A run under the lease; None when another holder has it."""
    now = int(time.time() * 1_000_000)
    until = now + int(LEASE_SECONDS * 1_000_000)
    db = collector.db
    if not await db.run_write(lambda conn: _take(conn, holder, now, until)):
        return None
    try:
        return await collector.collect(dry_run=dry_run, sweep_uploads=sweep_uploads)
    finally:
        await db.run_write(lambda conn: _give_back(conn, holder))


async def run_periodically(collector: Collector, interval: float) -> None:
    """Collects every ``interval`` seconds, while it holds the lease, sweeping abandoned
    uploads too once every :data:`SWEEP_SECONDS` (a sweep lists the store); logs what it
    removed. A failed run is logged and the next one tried at the next interval."""
    holder = holder_name()
    swept_at = time.monotonic()
    while True:
        await anyio.sleep(interval)
        sweep = time.monotonic() - swept_at >= SWEEP_SECONDS
        try:
            report = await collect_once(collector, holder, sweep_uploads=sweep)
        except Exception:
            logger.exception("garbage collection failed")
            continue
        if report is not None and sweep:
            swept_at = time.monotonic()
        if report is not None and (report.nodes or report.blobs or report.uploads):
            logger.info(
                "garbage collection removed %d tree nodes, %d blobs (%d bytes) and %d "
                "abandoned uploads",
                report.nodes,
                report.blobs,
                report.bytes,
                report.uploads,
            )

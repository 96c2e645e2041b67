"""Server replicas: which processes serve one database, and which of them are gone.

Every server process registers itself as a replica (a row: its id, host, process and when it
last beat) and beats every :attr:`Replicas.interval` seconds. Work a replica owns — a running
sandbox — names it, so that when it dies another replica can tell and take over what it left
(mark a sandbox lost, roll its session back). A replica is dead when its heartbeat is older
than :attr:`Replicas.dead_after`, or at once when it ran on this host and its process is gone
(a restart on one machine recovers without waiting).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import anyio
import anyio.abc
import sqlalchemy as sa

from lamina_server.storage.columns import UtcDateTime, utcnow
from lamina_server.storage.db import Database, metadata

server_replicas = sa.Table(
    "server_replicas",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    # "<pid>:<start time in clock ticks since boot>": a process, even once its pid is reused
    sa.Column("process", sa.String(64), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
    # Where the other replicas reach it (--advertise-url): requests for its sandboxes go there.
    sa.Column("url", sa.String(2048), nullable=True),
)


def _process_of(pid: int) -> str | None:
    """``"<pid>:<start time>"`` of a live process of this host, or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"


def _gone(process: str) -> bool:
    """Whether a process of this host (as :func:`_process_of` wrote it) has exited; False
    where processes cannot be looked at (no ``/proc``): the heartbeat then decides."""
    if not Path("/proc/self/stat").exists():
        return False
    pid = process.partition(":")[0]
    return not pid.isdigit() or _process_of(int(pid)) != process


class Replicas:
    """This process as a replica, and the judge of the others."""

    def __init__(
        self,
        db: Database,
        *,
        url: str | None = None,
        interval: float = 5.0,
        dead_after: float = 30.0,
    ) -> None:
        self._db = db
        self.url = url
        self.interval = interval
        self.dead_after = dead_after
        self.id = str(uuid.uuid4())
        self.host = socket.gethostname()
        self.process = _process_of(os.getpid()) or str(os.getpid())

    async def register(self) -> None:
        now = utcnow()
        async with self._db.begin() as conn:
            await conn.execute(
                sa.insert(server_replicas).values(
                    id=self.id,
                    host=self.host,
                    process=self.process,
                    started_at=now,
                    heartbeat_at=now,
                    url=self.url,
                )
            )

    async def beat(self) -> None:
        """Says this replica lives; one that stalled so long that the others forgot it
        registers again (what it ran was taken over meanwhile)."""
        async with self._db.begin() as conn:
            beaten = await conn.execute(
                sa.update(server_replicas)
                .where(server_replicas.c.id == self.id)
                .values(heartbeat_at=utcnow())
            )
        if beaten.rowcount == 0:
            await self.register()

    async def alive(self) -> set[str]:
        """The ids of the replicas that are not dead (this one among them)."""
        cutoff = utcnow() - timedelta(seconds=self.dead_after)
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(server_replicas).where(server_replicas.c.heartbeat_at >= cutoff)
                )
            ).all()
        return {
            row.id
            for row in rows
            if row.id == self.id or row.host != self.host or not _gone(row.process)
        }

    async def url_of(self, replica_id: str) -> str | None:
        """Where another replica that is alive is reached; None when it is dead, this one, or
        advertised no URL."""
        if replica_id == self.id:
            return None
        cutoff = utcnow() - timedelta(seconds=self.dead_after)
        async with self._db.connect() as conn:
            url: str | None = await conn.scalar(
                sa.select(server_replicas.c.url).where(
                    server_replicas.c.id == replica_id, server_replicas.c.heartbeat_at >= cutoff
                )
            )
        return url

    async def forget(self, keep: set[str]) -> None:
        """Drops the rows of replicas not in ``keep`` (dead, and what they left taken over)."""
        async with self._db.begin() as conn:
            await conn.execute(sa.delete(server_replicas).where(server_replicas.c.id.not_in(keep)))

    async def run(
        self,
        take_over: Callable[[set[str]], Awaitable[None]],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Registers, then beats until cancelled; after each beat ``take_over(alive)`` ends
        what dead replicas left. The first take-over is done before this reports started."""
        await self.register()
        while True:
            alive = await self.alive()
            await take_over(alive)
            await self.forget(alive)
            task_status.started()
            task_status = anyio.TASK_STATUS_IGNORED
            await anyio.sleep(self.interval)
            await self.beat()

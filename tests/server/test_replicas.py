"""Server replicas on one database: each beats; one whose heartbeat stopped, or whose process
on this host is gone, is dead, and what it ran is taken over by a live one."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest
import sqlalchemy as sa

from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database
from lamina_server.storage.replicas import Replicas, server_replicas

pytestmark = pytest.mark.anyio


async def _row(db: Database, replica_id: str, host: str, process: str, age: float) -> None:
    at = utcnow() - timedelta(seconds=age)
    async with db.begin() as conn:
        await conn.execute(
            sa.insert(server_replicas).values(
                id=replica_id, host=host, process=process, started_at=at, heartbeat_at=at
            )
        )


async def test_dead_replicas_are_told_apart_and_taken_over(db: Database) -> None:
    me = Replicas(db, interval=0.05, dead_after=30)
    await _row(db, "elsewhere-live", "other-host", "1:1", age=1)
    await _row(db, "elsewhere-silent", "other-host", "1:1", age=60)
    await _row(db, "here-exited", me.host, "999999999:1", age=1)  # no such process
    await _row(db, "here-running", me.host, me.process, age=1)  # this very process
    taken: list[set[str]] = []

    async def take_over(alive: set[str]) -> None:
        taken.append(alive)

    async with anyio.create_task_group() as tasks:
        await tasks.start(lambda task_status: me.run(take_over, task_status=task_status))
        # Taken over before it said it started: a restart recovers at once.
        assert taken[0] == {me.id, "elsewhere-live", "here-running"}
        await anyio.sleep(0.2)  # it beats on
        tasks.cancel_scope.cancel()
    assert len(taken) >= 2
    async with db.connect() as conn:
        left = set((await conn.execute(sa.select(server_replicas.c.id))).scalars())
    assert left == {me.id, "elsewhere-live", "here-running"}  # the dead are forgotten


async def test_a_replica_forgotten_while_it_stalled_registers_again(db: Database) -> None:
    me = Replicas(db)
    await me.register()
    await me.forget(set())  # the others declared it dead
    await me.beat()
    assert me.id in await me.alive()

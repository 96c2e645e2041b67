"""Sandbox rows: insert, read, list, and move along the status machine."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa

from lamina_server.sandboxes.errors import SandboxNotFound
from lamina_server.sandboxes.models import (
    ACTIVE,
    AWAITING_APPROVAL,
    DONE,
    Outcome,
    RunAs,
    SandboxRecord,
    SandboxRequest,
)
from lamina_server.sandboxes.tables import sandboxes
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database


def _record(row: sa.Row[Any]) -> SandboxRecord:
    run_as = RunAs(**row.run_as) if row.run_as else None
    return SandboxRecord(
        id=row.id,
        repository_id=row.repository_id,
        request=SandboxRequest(
            image=row.image,
            command=tuple(row.command),
            mountpoint=row.mountpoint,
            path_prefix=row.path_prefix,
            timeout_seconds=row.timeout_seconds,
            env_vars=dict(row.env_vars),
            mode=row.mode,
            run_as=run_as,
            require_approval=row.require_approval,
        ),
        outcome=Outcome(
            status=row.status,
            status_reason=row.status_reason,
            exit_code=row.exit_code,
            commit_id=row.commit_id,
            web_url=row.web_url,
            error_message=row.error_message,
        ),
        session_id=row.session_id,
        created_by_type=row.created_by_type,
        created_by=row.created_by,
        created_by_name=row.created_by_name,
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        trigger_id=row.trigger_id,
        trigger_depth=row.trigger_depth,
        decisions=tuple(row.decisions),
    )


class SandboxRecords:
    """The table's reads and writes; every status change goes through :meth:`move`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, record: SandboxRecord, replica_id: str) -> None:
        request, outcome = record.request, record.outcome
        async with self._db.begin() as conn:
            await conn.execute(
                sandboxes.insert().values(
                    id=record.id,
                    repository_id=record.repository_id,
                    image=request.image,
                    command=list(request.command),
                    mountpoint=request.mountpoint,
                    path_prefix=request.path_prefix,
                    timeout_seconds=request.timeout_seconds,
                    env_vars=dict(request.env_vars),
                    mode=request.mode,
                    run_as=asdict(request.run_as) if request.run_as else None,
                    require_approval=request.require_approval,
                    decisions=[],
                    session_id=record.session_id,
                    replica_id=replica_id,
                    trigger_id=record.trigger_id,
                    trigger_depth=record.trigger_depth,
                    created_by_type=record.created_by_type,
                    created_by=record.created_by,
                    created_by_name=record.created_by_name,
                    created_at=record.created_at,
                    updated_at=record.updated_at,
                    finished_at=None,
                    **asdict(outcome),
                )
            )

    async def replica_of(self, sandbox_id: str) -> str | None:
        """The replica that runs (or ran) the sandbox."""
        async with self._db.connect() as conn:
            owner: str | None = await conn.scalar(
                sa.select(sandboxes.c.replica_id).where(sandboxes.c.id == sandbox_id)
            )
        return owner

    async def get(self, repository_id: str, sandbox_id: str) -> SandboxRecord:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(sandboxes).where(
                        sandboxes.c.id == sandbox_id, sandboxes.c.repository_id == repository_id
                    )
                )
            ).first()
        if row is None:
            raise SandboxNotFound(sandbox_id)
        return _record(row)

    async def page(
        self, repository_id: str, *, after: str | None, amount: int
    ) -> tuple[list[SandboxRecord], bool]:
        """Newest first; ``after`` is the last id of the previous page."""
        query = sa.select(sandboxes).where(sandboxes.c.repository_id == repository_id)
        if after:
            # Keyset: rows after the cursor's row in (created_at, id) descending order.
            cursor = (
                sa.select(sandboxes.c.created_at)
                .where(sandboxes.c.id == after, sandboxes.c.repository_id == repository_id)
                .scalar_subquery()
            )
            query = query.where(
                sa.or_(
                    sandboxes.c.created_at < cursor,
                    sa.and_(sandboxes.c.created_at == cursor, sandboxes.c.id < after),
                )
            )
        query = query.order_by(sandboxes.c.created_at.desc(), sandboxes.c.id.desc())
        async with self._db.connect() as conn:
            rows = (await conn.execute(query.limit(amount + 1))).all()
        return [_record(row) for row in rows[:amount]], len(rows) > amount

    async def move(
        self,
        sandbox_id: str,
        outcome: Outcome,
        decisions: Sequence[Mapping[str, Any]] | None = None,
    ) -> bool:
        """Sets the status (and the decisions its run took), unless the sandbox is terminal
        already; True if it moved."""
        now = utcnow()
        values: dict[str, Any] = {**asdict(outcome), "updated_at": now}
        if not outcome.active:
            values["finished_at"] = now
        if decisions is not None:
            values["decisions"] = [dict(decision) for decision in decisions]
        async with self._db.begin() as conn:
            result = await conn.execute(
                sandboxes.update()
                .where(sandboxes.c.id == sandbox_id, sandboxes.c.status.in_(ACTIVE))
                .values(**values)
            )
        return bool(result.rowcount)

    async def conclude(self, sandbox_id: str, outcome: Outcome) -> SandboxRecord | None:
        """Moves a sandbox that waited for approval to how the decision ended it; the record,
        or None if it was not waiting."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                sandboxes.update()
                .where(
                    sandboxes.c.id == sandbox_id,
                    sandboxes.c.status == DONE,
                    sandboxes.c.status_reason == AWAITING_APPROVAL,
                )
                .values(**asdict(outcome), updated_at=utcnow())
            )
            if not result.rowcount:
                return None
            row = (
                await conn.execute(sa.select(sandboxes).where(sandboxes.c.id == sandbox_id))
            ).one()
        return _record(row)

    async def orphaned(self, alive: Collection[str]) -> list[SandboxRecord]:
        """Every sandbox starting or running under a replica not in ``alive`` (what a dead
        server left)."""
        owner = sandboxes.c.replica_id
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(sandboxes).where(
                        sandboxes.c.status.in_(ACTIVE),
                        sa.or_(owner.is_(None), owner.not_in(list(alive))),
                    )
                )
            ).all()
        return [_record(row) for row in rows]

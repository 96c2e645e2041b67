"""Import jobs as the database keeps them: their record, and the writes of their life.

A job is ``pending`` when created, ``running`` once its replica starts it, and ends
``completed`` (``commit_id`` set, or none when nothing had changed) or ``failed`` (``error``
says why, ``error_code`` what kind: ``source_changed``, ``source_unreachable``,
``invalid_source``, ``forbidden``, ``conflict``, ``connector_unusable``). ``replica_id``
names the replica that runs it: every write of a running job is conditional on it, so a
replica that was taken for dead and took over never lands a job twice
(:mod:`lamina_server.imports.runner`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from lamina_server.imports.errors import ImportNotFound
from lamina_server.imports.tables import import_jobs
from lamina_server.principals import Principal
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database

PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
ACTIVE = (PENDING, RUNNING)


@dataclass(frozen=True, slots=True)
class ImportJobRecord:
    id: str
    repository_id: str
    organization_id: str
    connector_id: str | None
    source_repository_id: str | None
    source_organization: str
    source_repository: str
    source_commit_id: str | None
    source_prefix: str
    destination_path: str
    commit_message: str
    status: str
    error: str | None
    error_code: str | None
    objects_imported: int
    objects_unchanged: int
    commit_id: str | None
    session_id: str | None
    created_by_type: str
    created_by: str
    created_by_name: str
    principal_organization_id: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def principal(self) -> Principal:
        return Principal(
            self.created_by_type,
            self.created_by,
            self.created_by_name,
            self.principal_organization_id,
        )

    @property
    def ended(self) -> bool:
        return self.status not in ACTIVE


_FIELDS = tuple(field.name for field in fields(ImportJobRecord))


def _record(row: Any) -> ImportJobRecord:
    return ImportJobRecord(**{name: getattr(row, name) for name in _FIELDS})


class ImportJobs:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, record: ImportJobRecord, replica_id: str) -> None:
        values = {name: getattr(record, name) for name in _FIELDS}
        async with self.db.begin() as conn:
            await conn.execute(sa.insert(import_jobs).values(**values, replica_id=replica_id))

    async def get(self, repository_id: str, job_id: str) -> ImportJobRecord:
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(import_jobs).where(
                        import_jobs.c.id == job_id, import_jobs.c.repository_id == repository_id
                    )
                )
            ).first()
        if row is None:
            raise ImportNotFound(job_id)
        return _record(row)

    async def update(self, job_id: str, replica_id: str, **values: Any) -> bool:
        """Writes ``values`` if the job is still active and run by ``replica_id``."""
        async with self.db.begin() as conn:
            result = await conn.execute(
                sa.update(import_jobs)
                .where(
                    import_jobs.c.id == job_id,
                    import_jobs.c.replica_id == replica_id,
                    import_jobs.c.status.in_(ACTIVE),
                )
                .values(**values, updated_at=utcnow())
            )
        return result.rowcount == 1

    async def orphaned(self, alive: Collection[str]) -> list[tuple[ImportJobRecord, str | None]]:
        """Every active job whose replica is not in ``alive`` (what a dead server left), with
        that replica's id."""
        owner = import_jobs.c.replica_id
        async with self.db.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(import_jobs).where(
                        import_jobs.c.status.in_(ACTIVE),
                        sa.or_(owner.is_(None), owner.not_in(list(alive))),
                    )
                )
            ).all()
        return [(_record(row), row.replica_id) for row in rows]

    async def claim(
        self, record: ImportJobRecord, dead_replica: str | None, replica_id: str
    ) -> bool:
        """Takes an orphaned job over for ``replica_id``, once across replicas (the first
        replica whose compare-and-swap of the owner succeeds): it starts again as pending."""
        owner = import_jobs.c.replica_id
        async with self.db.begin() as conn:
            result = await conn.execute(
                sa.update(import_jobs)
                .where(
                    import_jobs.c.id == record.id,
                    import_jobs.c.status.in_(ACTIVE),
                    owner.is_(None) if dead_replica is None else owner == dead_replica,
                )
                .values(
                    replica_id=replica_id,
                    status=PENDING,
                    session_id=None,
                    objects_imported=0,
                    objects_unchanged=0,
                    updated_at=utcnow(),
                )
            )
        return result.rowcount == 1


def finish_in(conn: sa.Connection, job_id: str, replica_id: str, **values: Any) -> bool:
    """Ends a running job in a transaction of its own (the commit's): True when it was still
    this replica's to end."""
    result = conn.execute(
        sa.update(import_jobs)
        .where(
            import_jobs.c.id == job_id,
            import_jobs.c.replica_id == replica_id,
            import_jobs.c.status == RUNNING,
        )
        .values(**values, updated_at=utcnow())
    )
    return result.rowcount == 1

"""The repository directory: records of an organization's repositories, and their settings.

A deleted repository keeps its row (``deleted_at`` set) and frees its name for reuse.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from lamina_server.cache import TtlCache
from lamina_server.identity import OrganizationRecord
from lamina_server.identity.tables import organizations
from lamina_server.principals import Principal
from lamina_server.repositories.errors import RepositoryExists, RepositoryNotFound
from lamina_server.repositories.tables import repositories
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database

DEFAULT_RETENTION_DAYS = 14
SETTINGS = (
    "description",
    "visibility",
    "retention_days",
    "session_max_duration_days",
    "approval_required_for",
    "approval_paths",
)
APPROVAL_REQUIRED_FOR = ("none", "agents", "all")


def _column_values(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Column values of a record's fields (the path prefixes are stored as JSON)."""
    values = dict(settings)
    if "approval_paths" in values:
        values["approval_paths"] = json.dumps(list(values["approval_paths"]))
    return values


@dataclass(frozen=True, slots=True)
class RepositoryRecord:
    id: str
    organization_id: str
    name: str
    org_name: str
    description: str
    visibility: str
    retention_days: int
    session_max_duration_days: int | None
    created_by_type: str
    created_by: str
    created_at: datetime
    approval_required_for: str = "none"
    approval_paths: tuple[str, ...] = ()

    def needs_approval(self, committer_type: str) -> bool:
        """Whether a commit by a principal of ``committer_type`` may need approval (then
        :attr:`approval_paths`, if any, narrow it to changes under them)."""
        rule = self.approval_required_for
        return rule == "all" or (rule == "agents" and committer_type == "agent")


def _record(row: sa.Row[Any], org_name: str) -> RepositoryRecord:
    return RepositoryRecord(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        org_name=org_name,
        description=row.description,
        visibility=row.visibility,
        retention_days=row.retention_days,
        session_max_duration_days=row.session_max_duration_days,
        created_by_type=row.created_by_type,
        created_by=row.created_by,
        created_at=row.created_at,
        approval_required_for=row.approval_required_for,
        approval_paths=tuple(json.loads(row.approval_paths)),
    )


def _live(org: OrganizationRecord) -> sa.ColumnElement[bool]:
    return sa.and_(repositories.c.organization_id == org.id, repositories.c.deleted_at.is_(None))


class Repositories:
    def __init__(self, db: Database, *, cache_ttl: float = 10.0) -> None:
        self._db = db
        # (organization id, name) -> record; every write here drops the entry it changes.
        self._cache: TtlCache[tuple[str, str], RepositoryRecord] = TtlCache(cache_ttl)

    async def create(
        self,
        org: OrganizationRecord,
        name: str,
        *,
        creator: Principal,
        description: str = "",
        visibility: str = "private",
        retention_days: int = DEFAULT_RETENTION_DAYS,
        session_max_duration_days: int | None = None,
        approval_required_for: str = "none",
        approval_paths: Sequence[str] = (),
    ) -> RepositoryRecord:
        record = RepositoryRecord(
            id=str(uuid.uuid4()),
            organization_id=org.id,
            name=name,
            org_name=org.name,
            description=description,
            visibility=visibility,
            retention_days=retention_days,
            session_max_duration_days=session_max_duration_days,
            created_by_type=creator.type,
            created_by=creator.id,
            created_at=utcnow(),
            approval_required_for=approval_required_for,
            approval_paths=tuple(approval_paths),
        )
        values = _column_values(
            {
                field: getattr(record, field)
                for field in (
                    "id",
                    "organization_id",
                    "name",
                    *SETTINGS,
                    "created_by_type",
                    "created_by",
                    "created_at",
                )
            }
        )
        try:
            async with self._db.begin() as conn:
                await conn.execute(repositories.insert().values(**values))
        except IntegrityError:
            raise RepositoryExists(org.name, name) from None
        return record

    async def get(self, org: OrganizationRecord, name: str) -> RepositoryRecord:
        cached = self._cache.get((org.id, name))
        if cached is not None:
            return cached
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(repositories).where(_live(org), repositories.c.name == name)
                )
            ).first()
        if row is None:
            raise RepositoryNotFound(org.name, name)
        record = _record(row, org.name)
        self._cache.put((org.id, name), record)
        return record

    async def by_id(self, repository_id: str) -> RepositoryRecord:
        """A live repository by id, with its organization's name (for work that knows only
        the id, like a sandbox's landing)."""
        query = (
            sa.select(repositories, organizations.c.name.label("org_name"))
            .join(organizations, organizations.c.id == repositories.c.organization_id)
            .where(repositories.c.id == repository_id, repositories.c.deleted_at.is_(None))
        )
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise RepositoryNotFound("id", repository_id)
        return _record(row, row.org_name)

    async def list(
        self, org: OrganizationRecord, *, after: str | None, amount: int
    ) -> tuple[list[RepositoryRecord], bool]:
        """One page ordered by name; ``after`` is the last name of the previous page."""
        query = sa.select(repositories).where(_live(org))
        if after:
            query = query.where(repositories.c.name > after)
        query = query.order_by(repositories.c.name).limit(amount + 1)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_record(row, org.name) for row in rows[:amount]], len(rows) > amount

    async def update(
        self, record: RepositoryRecord, changes: Mapping[str, Any]
    ) -> RepositoryRecord:
        settings = {key: value for key, value in changes.items() if key in SETTINGS}
        if "approval_paths" in settings:
            settings["approval_paths"] = tuple(settings["approval_paths"])
        values = _column_values(settings)
        self._cache.discard((record.organization_id, record.name))
        if not values:
            return record
        async with self._db.begin() as conn:
            result = await conn.execute(
                repositories.update()
                .where(repositories.c.id == record.id, repositories.c.deleted_at.is_(None))
                .values(**values)
            )
        self._cache.discard((record.organization_id, record.name))
        if result.rowcount == 0:
            raise RepositoryNotFound(record.org_name, record.name)
        return replace(record, **settings)

    async def delete(self, record: RepositoryRecord) -> None:
        self._cache.discard((record.organization_id, record.name))
        async with self._db.begin() as conn:
            result = await conn.execute(
                repositories.update()
                .where(repositories.c.id == record.id, repositories.c.deleted_at.is_(None))
                .values(deleted_at=utcnow())
            )
        self._cache.discard((record.organization_id, record.name))
        if result.rowcount == 0:
            raise RepositoryNotFound(record.org_name, record.name)

    async def purge(self, record: RepositoryRecord) -> None:
        """Remove a record whose creation could not be completed (no soft-delete trail)."""
        self._cache.discard((record.organization_id, record.name))
        async with self._db.begin() as conn:
            await conn.execute(repositories.delete().where(repositories.c.id == record.id))

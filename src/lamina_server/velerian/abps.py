"""ABPs: named run definitions in a repository (image, command, environment, the part of the
repository mounted, a timeout, and whether its changes wait for a human's approval).

An ABP is created ``draft``; ``deployed`` it can be invoked (:mod:`.runs`), ``undeployed`` it
no longer can (until deployed again). The repository is resolved when the ABP is created and
kept by id: a repository deleted later takes its ABPs with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from lamina_server.principals import Principal
from lamina_server.repositories import RepositoryRecord
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database
from lamina_server.velerian.errors import NotFound
from lamina_server.velerian.tables import abps

DRAFT, DEPLOYED, UNDEPLOYED = "draft", "deployed", "undeployed"


@dataclass(frozen=True, slots=True)
class AbpSpec:
    """What a client asks for, validated."""

    name: str
    image: str
    command: Sequence[str]
    requires_approval: bool
    description: str
    env: Mapping[str, str]
    timeout_seconds: int
    path_prefix: str


@dataclass(frozen=True, slots=True)
class AbpRecord:
    id: str
    organization_id: str
    repository_id: str
    repository: str  # "org/repo"
    spec: AbpSpec
    status: str
    created_by: str
    created_by_name: str
    created_at: datetime
    updated_at: datetime

    @property
    def repository_name(self) -> str:
        return self.repository.partition("/")[2]


def _record(row: Any) -> AbpRecord:
    return AbpRecord(
        id=row.id,
        organization_id=row.organization_id,
        repository_id=row.repository_id,
        repository=row.repository,
        spec=AbpSpec(
            name=row.name,
            image=row.image,
            command=tuple(row.command),
            requires_approval=row.requires_approval,
            description=row.description,
            env=dict(row.env),
            timeout_seconds=row.timeout_seconds,
            path_prefix=row.path_prefix,
        ),
        status=row.status,
        created_by=row.created_by,
        created_by_name=row.created_by_name,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Abps:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    async def create(
        self, abp_id: str, repo: RepositoryRecord, spec: AbpSpec, creator: Principal
    ) -> AbpRecord:
        now = utcnow()
        values = {
            "id": abp_id,
            "organization_id": repo.organization_id,
            "repository_id": repo.id,
            "repository": f"{repo.org_name}/{repo.name}",
            "name": spec.name,
            "description": spec.description,
            "image": spec.image,
            "command": list(spec.command),
            "env": dict(spec.env),
            "path_prefix": spec.path_prefix,
            "timeout_seconds": spec.timeout_seconds,
            "requires_approval": spec.requires_approval,
            "status": DRAFT,
            "created_by": creator.id,
            "created_by_name": creator.name,
            "created_at": now,
            "updated_at": now,
        }
        await self._db.run_write(lambda conn: conn.execute(sa.insert(abps).values(values)))
        return await self.get(repo.organization_id, abp_id)

    async def get(self, organization_id: str, abp_id: str) -> AbpRecord:
        """The organization's ABP; :class:`NotFound` otherwise (another's is not shown)."""
        query = sa.select(abps).where(
            abps.c.id == abp_id, abps.c.organization_id == organization_id
        )
        row = await self._db.run_read(lambda conn: conn.execute(query).one_or_none())
        if row is None:
            raise NotFound(f"ABP {abp_id!r} not found")
        return _record(row)

    async def page(
        self, organization_id: str, *, limit: int, offset: int
    ) -> tuple[list[AbpRecord], int]:
        """The organization's ABPs, oldest first, and how many there are."""
        where = abps.c.organization_id == organization_id

        def run(conn: sa.Connection) -> tuple[list[AbpRecord], int]:
            total = conn.execute(sa.select(sa.func.count()).select_from(abps).where(where))
            rows = conn.execute(
                sa.select(abps)
                .where(where)
                .order_by(abps.c.created_at, abps.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return [_record(row) for row in rows], int(total.scalar_one())

        return await self._db.run_read(run)

    async def move(self, record: AbpRecord, status: str) -> AbpRecord:
        """Deploys or undeploys (the same status again changes nothing)."""
        if record.status != status:
            await self._db.run_write(
                lambda conn: conn.execute(
                    sa.update(abps)
                    .where(abps.c.id == record.id)
                    .values(status=status, updated_at=utcnow())
                )
            )
        return await self.get(record.organization_id, record.id)

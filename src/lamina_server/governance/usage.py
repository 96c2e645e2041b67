"""Usage of an organization, read from the records that already exist: what its repositories
store (the object count and bytes of each live repository's HEAD commit), their commits, the
sandboxes run on them and their wall-clock seconds, governed runs by outcome (from a
:class:`GovernedRuns` source: the Velerian facade's invocations), and its evidence packs —
counted by kind, and listed a page at a time (``evidence_limit``/``evidence_offset``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import sqlalchemy as sa

from lamina_server.governance.evidence_tables import evidence_packs
from lamina_server.repositories.tables import repositories
from lamina_server.sandboxes.tables import sandboxes
from lamina_server.storage.db import Database
from lamina_server.versioning.tables import commits, refs


class GovernedRuns(Protocol):
    """Counts an organization's governed runs by outcome."""

    async def by_outcome(self, organization_id: str) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class EvidencePage:
    limit: int
    offset: int


def _seconds(dialect: str) -> sa.ColumnElement[Any]:
    """A finished sandbox's wall-clock seconds, in the database's own date arithmetic."""
    finished, created = sandboxes.c.finished_at, sandboxes.c.created_at
    if dialect == "sqlite":
        return (sa.func.julianday(finished) - sa.func.julianday(created)) * 86400.0
    return sa.func.extract("epoch", finished - created)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class Usage:
    def __init__(self, db: Database, governed: GovernedRuns) -> None:
        self._db = db
        self._governed = governed

    async def summary(
        self, organization_id: str, organization: str, evidence: EvidencePage
    ) -> dict[str, Any]:
        """The summary (see the module docstring; ``docs/governance.md`` shows the shape)."""
        live = sa.select(repositories.c.id).where(
            repositories.c.organization_id == organization_id,
            repositories.c.deleted_at.is_(None),
        )

        def run(conn: sa.Connection) -> dict[str, Any]:
            repository_count = conn.execute(
                sa.select(sa.func.count()).select_from(live.subquery())
            ).scalar_one()
            stored = conn.execute(
                sa.select(
                    sa.func.coalesce(sa.func.sum(commits.c.object_count), 0),
                    sa.func.coalesce(sa.func.sum(commits.c.total_size), 0),
                )
                .select_from(refs)
                .join(
                    commits,
                    sa.and_(
                        commits.c.repository_id == refs.c.repository_id,
                        commits.c.id == refs.c.head,
                    ),
                )
                .where(refs.c.repository_id.in_(live))
            ).one()
            commit_count = conn.execute(
                sa.select(sa.func.count())
                .select_from(commits)
                .where(commits.c.repository_id.in_(live))
            ).scalar_one()
            runs = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(_seconds(conn.dialect.name)), 0),
                ).where(sandboxes.c.repository_id.in_(live))
            ).one()
            packs = evidence_packs.c
            by_kind = {
                row.kind: int(row.n)
                for row in conn.execute(
                    sa.select(packs.kind, sa.func.count().label("n"))
                    .where(packs.organization_id == organization_id)
                    .group_by(packs.kind)
                )
            }
            rows = conn.execute(
                sa.select(
                    packs.id,
                    packs.kind,
                    packs.subject_id,
                    packs.commit_id,
                    packs.created_at,
                    packs.chain_hash,
                    repositories.c.name.label("repository"),
                )
                .join(repositories, repositories.c.id == packs.repository_id)
                .where(packs.organization_id == organization_id)
                .order_by(packs.created_at, packs.id)
                .limit(evidence.limit)
                .offset(evidence.offset)
            ).all()
            return {
                "repositories": int(repository_count),
                "objects": {"count": int(stored[0]), "bytes": int(stored[1])},
                "commits": int(commit_count),
                "sandbox_runs": int(runs[0]),
                "sandbox_seconds": round(float(runs[1]), 3),
                "evidence_packs": [
                    {
                        "id": row.id,
                        "kind": row.kind,
                        "repository": f"{organization}/{row.repository}",
                        "subject_id": row.subject_id,
                        "commit_id": row.commit_id,
                        "created_at": _iso(row.created_at),
                        "chain_hash": row.chain_hash,
                    }
                    for row in rows
                ],
                "evidence_packs_page": {
                    "limit": evidence.limit,
                    "offset": evidence.offset,
                    "total": sum(by_kind.values()),
                    "by_kind": by_kind,
                },
            }

        counted = await self._db.run_read(run)
        by_outcome = await self._governed.by_outcome(organization_id)
        return {
            "tenant_id": organization_id,
            "organization": organization,
            "as_of": _iso(datetime.now(timezone.utc)),
            **counted,
            "governed_runs": {"total": sum(by_outcome.values()), "by_outcome": by_outcome},
        }

"""Approvals: commits that wait for a human's decision.

A repository says which commits need approval (:meth:`RepositoryRecord.needs_approval`: none,
an agent's, or every commit; optionally only those changing a path under given prefixes). Such
a commit does not land: :meth:`Approvals.request` holds its session (nothing more can be staged
in it) and records the request, in one transaction. :meth:`Approvals.approve` lands it, as the
principal who asked for it, with the approver named in the commit's metadata; :meth:`reject`
rolls it back, and so does a rollback of the session (``withdrawn``). Each decision is written in the transaction of its commit or rollback, and
whoever asked for a change cannot decide on it (four eyes).

A decision is announced to the ``on_decided`` listeners (the sandbox whose landing waited for
it, evidence) once it is written.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from lamina_server.config import API_PREFIX
from lamina_server.governance.approvals_tables import approvals
from lamina_server.governance.audit import note_commit
from lamina_server.governance.errors import ApprovalDecided, ApprovalNotFound, SelfApproval
from lamina_server.principals import Committer, Principal
from lamina_server.repositories import RepositoryRecord
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database
from lamina_server.versioning import VersionStore

PENDING, APPROVED, REJECTED, WITHDRAWN = "pending", "approved", "rejected", "withdrawn"
STATES = (PENDING, APPROVED, REJECTED, WITHDRAWN)
APPROVED_BY = "lamina.approved_by"  # commit metadata: who approved the change


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    session_id: str
    repository_id: str
    organization_id: str
    state: str
    message: str
    metadata: Mapping[str, str]
    requested_by: Committer
    requested_at: datetime
    sandbox_id: str | None
    decided_by: Committer | None
    decided_at: datetime | None
    reason: str
    commit_id: str | None


def _record(row: Any) -> ApprovalRecord:
    decided = (
        Committer(row.decided_by_type, row.decided_by_id, row.decided_by_name)
        if row.decided_by_type
        else None
    )
    return ApprovalRecord(
        session_id=row.session_id,
        repository_id=row.repository_id,
        organization_id=row.organization_id,
        state=row.state,
        message=row.message,
        metadata=json.loads(row.metadata),
        requested_by=Committer(row.requested_by_type, row.requested_by_id, row.requested_by_name),
        requested_at=row.requested_at,
        sandbox_id=row.sandbox_id,
        decided_by=decided,
        decided_at=row.decided_at,
        reason=row.reason,
        commit_id=row.commit_id,
    )


@dataclass(frozen=True, slots=True)
class ApprovalLinks:
    api_url: str
    web_url: str


def approval_links(base: str, repo: RepositoryRecord, session_id: str) -> ApprovalLinks:
    """Where a held session is reviewed, under ``base`` (the server's public URL, or where the
    request that asks was sent): its API route and its page."""
    root = base.rstrip("/")
    return ApprovalLinks(
        api_url=f"{root}{API_PREFIX}/organizations/{repo.org_name}/repositories/{repo.name}"
        f"/sessions/{session_id}/approve",
        web_url=f"{root}/approvals/{quote(repo.org_name)}/{quote(repo.name)}/{session_id}",
    )


def approval_document(record: ApprovalRecord) -> dict[str, Any]:
    """The approval as plain data (what an evidence pack records)."""

    def who(committer: Committer | None) -> dict[str, str] | None:
        if committer is None:
            return None
        return {"type": committer.type, "id": committer.id, "name": committer.name}

    return {
        "session_id": record.session_id,
        "state": record.state,
        "message": record.message,
        "metadata": dict(record.metadata),
        "requested_by": who(record.requested_by),
        "requested_at": record.requested_at.isoformat(),
        "sandbox_id": record.sandbox_id,
        "decided_by": who(record.decided_by),
        "decided_at": record.decided_at.isoformat() if record.decided_at else None,
        "reason": record.reason,
        "commit_id": record.commit_id,
    }


Listener = Callable[[ApprovalRecord], Awaitable[None]]


class Approvals:
    def __init__(self, db: Database, versions: VersionStore) -> None:
        self._db = db
        self._versions = versions
        self.on_decided: list[Listener] = []

    async def needed(self, repo: RepositoryRecord, session_id: str, committer_type: str) -> bool:
        """Whether committing the session, by a principal of ``committer_type``, needs
        approval under the repository's rule."""
        if not repo.needs_approval(committer_type):
            return False
        if not repo.approval_paths:
            return True
        for prefix in repo.approval_paths:
            page = await self._versions.list_changes(repo.id, session_id, prefix=prefix, amount=1)
            if page.items:
                return True
        return False

    async def request(
        self,
        repo: RepositoryRecord,
        session_id: str,
        *,
        message: str,
        metadata: Mapping[str, str],
        requester: Committer,
        sandbox_id: str | None = None,
    ) -> ApprovalRecord:
        """Holds the session for approval and records the request, in one transaction."""
        now = utcnow()
        values = {
            "session_id": session_id,
            "repository_id": repo.id,
            "organization_id": repo.organization_id,
            "state": PENDING,
            "message": message,
            "metadata": json.dumps(dict(metadata)),
            "requested_by_type": requester.type,
            "requested_by_id": requester.id,
            "requested_by_name": requester.name,
            "requested_at": now,
            "sandbox_id": sandbox_id,
            "reason": "",
        }

        def record(conn: sa.Connection) -> None:
            conn.execute(sa.insert(approvals).values(values))

        await self._versions.hold_session(repo.id, session_id, also=record)
        return await self.get(repo.id, session_id)

    async def get(self, repository_id: str, session_id: str) -> ApprovalRecord:
        def run(conn: sa.Connection) -> ApprovalRecord:
            row = conn.execute(
                sa.select(approvals).where(
                    approvals.c.session_id == session_id,
                    approvals.c.repository_id == repository_id,
                )
            ).one_or_none()
            if row is None:
                raise ApprovalNotFound(session_id)
            return _record(row)

        return await self._db.run_read(run)

    async def is_pending(self, repository_id: str, session_id: str) -> bool:
        try:
            return (await self.get(repository_id, session_id)).state == PENDING
        except ApprovalNotFound:
            return False

    async def page(
        self,
        *,
        organization_id: str,
        repository_id: str | None = None,
        state: str | None = None,
        limit: int,
        offset: int,
    ) -> tuple[list[ApprovalRecord], int]:
        """Approval requests, newest first, and how many match in all."""
        clauses = [approvals.c.organization_id == organization_id]
        if repository_id is not None:
            clauses.append(approvals.c.repository_id == repository_id)
        if state is not None:
            clauses.append(approvals.c.state == state)

        def run(conn: sa.Connection) -> tuple[list[ApprovalRecord], int]:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(approvals).where(*clauses)
            ).scalar_one()
            rows = conn.execute(
                sa.select(approvals)
                .where(*clauses)
                .order_by(approvals.c.requested_at.desc(), approvals.c.session_id)
                .limit(limit)
                .offset(offset)
            ).all()
            return [_record(row) for row in rows], int(total)

        return await self._db.run_read(run)

    async def _pending(
        self, repository_id: str, session_id: str, decider: Principal
    ) -> ApprovalRecord:
        record = await self.get(repository_id, session_id)
        if record.state != PENDING:
            raise ApprovalDecided(session_id, record.state)
        if (record.requested_by.type, record.requested_by.id) == (decider.type, decider.id):
            raise SelfApproval(session_id)
        return record

    def _decide(
        self, session_id: str, state: str, decider: Principal, reason: str = ""
    ) -> Callable[[sa.Connection, str | None], None]:
        def write(conn: sa.Connection, commit_id: str | None) -> None:
            if commit_id is not None:
                note_commit(conn, commit_id)
            decided = conn.execute(
                sa.update(approvals)
                .where(approvals.c.session_id == session_id, approvals.c.state == PENDING)
                .values(
                    state=state,
                    decided_by_type=decider.type,
                    decided_by_id=decider.id,
                    decided_by_name=decider.name,
                    decided_at=utcnow(),
                    reason=reason,
                    commit_id=commit_id,
                )
            )
            if decided.rowcount != 1:
                raise ApprovalDecided(session_id, "decided")

        return write

    async def approve(
        self,
        repository_id: str,
        session_id: str,
        approver: Principal,
        *,
        message: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ApprovalRecord:
        """Lands the held change as its requester, naming the approver in the commit's
        metadata; the decision is written in the commit's transaction."""
        record = await self._pending(repository_id, session_id, approver)
        decide = self._decide(session_id, APPROVED, approver)
        await self._versions.commit_session(
            repository_id,
            session_id,
            message=record.message if message is None else message,
            metadata={
                **record.metadata,
                **(metadata or {}),
                APPROVED_BY: f"{approver.type}:{approver.name}",
            },
            committer=record.requested_by,
            held=True,
            also=decide,
        )
        return await self._decided(repository_id, session_id)

    async def reject(
        self, repository_id: str, session_id: str, approver: Principal, *, reason: str = ""
    ) -> ApprovalRecord:
        """Rolls the held change back; the decision is written in the rollback's
        transaction."""
        await self._pending(repository_id, session_id, approver)
        decide = self._decide(session_id, REJECTED, approver, reason)
        await self._versions.rollback_session(
            repository_id, session_id, also=lambda conn: decide(conn, None)
        )
        return await self._decided(repository_id, session_id)

    async def withdraw(self, repository_id: str, session_id: str, by: Principal) -> None:
        """Rolls back a held session on its own request (a rollback of the session): the
        request ends ``withdrawn``, in the rollback's transaction."""
        decide = self._decide(session_id, WITHDRAWN, by)
        await self._versions.rollback_session(
            repository_id, session_id, also=lambda conn: decide(conn, None)
        )
        await self._decided(repository_id, session_id)

    async def _decided(self, repository_id: str, session_id: str) -> ApprovalRecord:
        record = await self.get(repository_id, session_id)
        for listener in self.on_decided:
            await listener(record)
        return record

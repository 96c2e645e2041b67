"""Evidence packs: what a sandbox run or an approved commit did, assembled from records that
already exist (the sandbox's record and log, the session, the commit and its diff, the policy
decisions, the approval, the audit entries), hashed into a chain and signed with the server's
Ed25519 key (:mod:`.signing_key`). The format is :mod:`.evidence_format`; bundles for export
are :mod:`.evidence_bundle`.

Packs are produced by :meth:`EvidenceService.after_sandbox` (the sandbox service's
``on_ended`` hook: every terminal outcome) and :meth:`EvidenceService.for_approved_commit`
(approvals). Producing a pack never fails what it records: :meth:`after_sandbox` logs its
failures.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import anyio
import sqlalchemy as sa

from lamina_server.governance import evidence_format as fmt
from lamina_server.governance.approvals import (
    APPROVED,
    ApprovalRecord,
    Approvals,
    approval_document,
)
from lamina_server.governance.errors import ApprovalNotFound
from lamina_server.governance.evidence_bundle import DEFAULT_OBJECT_CAP, BundleWriter
from lamina_server.governance.evidence_tables import evidence_packs
from lamina_server.governance.signing_key import SigningKey
from lamina_server.identity.tables import organizations
from lamina_server.repositories.tables import repositories
from lamina_server.sandboxes.models import SandboxRecord
from lamina_server.storage.blobs import BlobStore
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database
from lamina_server.versioning import CommitInfo, Committer, VersionStore
from lamina_server.versioning.codec import to_micros

log = logging.getLogger("lamina.evidence")

DIFF_PAGE = 1000
HASH_CHUNK_THREAD = 1024 * 1024  # hash chunks at least this big off the event loop


class AuditSource(Protocol):
    """Where a pack's audit entries come from: the audit log's entries that name any of
    ``resource_ids`` (the sandbox, its session, its commit), oldest first. Each entry keeps
    its ``prev_hash`` and ``hash``; ``hash`` is the SHA-256 hex digest of the canonical JSON
    of the entry's other fields (``id`` and ``prev_hash`` among them)."""

    async def entries_for(
        self, organization_id: str, resource_ids: Sequence[str]
    ) -> list[dict[str, Any]]: ...


class SandboxSource(Protocol):
    """What a sandbox's pack is read from (the sandbox service): its record, and its log
    (``None`` when gone)."""

    async def get(self, repository_id: str, sandbox_id: str) -> SandboxRecord: ...

    async def logs(self, repository_id: str, sandbox_id: str) -> AsyncIterator[bytes] | None: ...


class NoAuditSource:
    """No audit log: the ``audit`` part of every pack is empty."""

    async def entries_for(
        self, organization_id: str, resource_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        return []


@dataclass(frozen=True, slots=True)
class EvidencePack:
    id: str
    organization_id: str
    repository_id: str
    kind: str
    subject_id: str
    commit_id: str | None
    created_at: datetime
    chain_hash: str
    key_id: str
    document: str  # canonical JSON, as signed
    signature: str  # base64

    def summary_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject_id": self.subject_id,
            "commit_id": self.commit_id,
            "created_at": self.created_at.isoformat(),
            "chain_hash": self.chain_hash,
            "key_id": self.key_id,
        }


def _pack(row: Any) -> EvidencePack:
    return EvidencePack(
        id=row.id,
        organization_id=row.organization_id,
        repository_id=row.repository_id,
        kind=row.kind,
        subject_id=row.subject_id,
        commit_id=row.commit_id,
        created_at=row.created_at,
        chain_hash=row.chain_hash,
        key_id=row.key_id,
        document=row.document,
        signature=row.signature,
    )


def _committer(who: Committer) -> dict[str, str]:
    return {"type": who.type, "id": who.id, "name": who.name}


def decision_json(decision: Any) -> dict[str, Any]:
    """A policy decision as the ``policy_decisions`` part records it: ``action``,
    ``resource``, ``allowed``, ``reason`` (a mapping, or an object with those attributes)."""
    get = decision.get if isinstance(decision, Mapping) else lambda name: getattr(decision, name)
    return {
        "action": str(get("action")),
        "resource": str(get("resource")),
        "allowed": bool(get("allowed")),
        "reason": str(get("reason") or ""),
    }


class EvidenceService:
    """Builds, signs, stores and finds evidence packs; :attr:`bundles` writes their exports
    (with at most ``object_cap`` bytes of objects per bundle)."""

    def __init__(
        self,
        *,
        db: Database,
        versions: VersionStore,
        blobs: BlobStore,
        sandboxes: SandboxSource,
        key: SigningKey,
        audit: AuditSource | None = None,
        approvals: Approvals | None = None,
        object_cap: int = DEFAULT_OBJECT_CAP,
    ) -> None:
        self._db = db
        self._versions = versions
        self._blobs = blobs
        self._sandboxes = sandboxes
        self.key = key
        self.audit: AuditSource = audit or NoAuditSource()
        self._approvals = approvals
        self.bundles = BundleWriter(versions=versions, blobs=blobs, key=key, object_cap=object_cap)

    # --- producing --------------------------------------------------------------------------

    async def after_sandbox(self, repository_id: str, sandbox_id: str) -> None:
        """The sandbox service's ``on_ended`` hook: the pack of a sandbox that just ended.
        A failure is logged, never raised: evidence never fails the run it records."""
        try:
            record = await self._sandboxes.get(repository_id, sandbox_id)
            approval = None
            if self._approvals is not None and record.session_id:
                with contextlib.suppress(ApprovalNotFound):
                    held = await self._approvals.get(repository_id, record.session_id)
                    approval = approval_document(held)
            await self.for_sandbox(record, approval=approval)
        except Exception:
            log.exception("evidence pack of sandbox %s failed", sandbox_id)

    async def after_approval(self, approval: ApprovalRecord) -> None:
        """An approvals listener: the pack of a commit that landed once approved (a sandbox's
        is made when the sandbox ends). Logged, never raised, like :meth:`after_sandbox`."""
        if approval.sandbox_id is not None or approval.state != APPROVED:
            return
        assert approval.commit_id is not None
        try:
            await self.for_approved_commit(
                repository_id=approval.repository_id,
                session_id=approval.session_id,
                commit_id=approval.commit_id,
                approval=approval_document(approval),
            )
        except Exception:
            log.exception("evidence pack of approved session %s failed", approval.session_id)

    async def for_sandbox(
        self, record: SandboxRecord, *, approval: Mapping[str, Any] | None = None
    ) -> EvidencePack:
        """The pack of a sandbox run (normally once it has ended). Its policy decisions are
        ``record.decisions`` when the record carries them; ``approval`` is the approval record
        when its changes needed one."""
        request = record.request
        base_commit: str | None = None
        if record.session_id:
            session = await self._versions.get_session(record.repository_id, record.session_id)
            base_commit = session.base_commit
        outcome = record.outcome
        commit_id = outcome.commit_id or None
        inputs = {
            "sandbox_id": record.id,
            "session_id": record.session_id,
            "base_commit": base_commit,
            "image": request.image,
            "command": list(request.command),
            "env_names": sorted(request.env_vars),
            "run_as": (
                {"type": request.run_as.type, "id": request.run_as.id, "name": request.run_as.name}
                if request.run_as
                else None
            ),
            "mode": request.mode,
            "mountpoint": request.mountpoint,
            "path_prefix": request.path_prefix,
            "timeout_seconds": request.timeout_seconds,
            "created_by": {
                "type": record.created_by_type,
                "id": record.created_by,
                "name": record.created_by_name,
            },
            "created_at": record.created_at.isoformat(),
            "trigger_id": record.trigger_id,
        }
        outputs = {
            "status": outcome.status,
            "status_reason": outcome.status_reason,
            "exit_code": outcome.exit_code,
            "error_message": outcome.error_message,
            "finished_at": record.finished_at.isoformat() if record.finished_at else None,
            "log": await self._log_digest(record),
            **await self._commit_outputs(record.repository_id, commit_id),
        }
        resources = [record.id, *(item for item in (record.session_id, commit_id) if item)]
        return await self._create(
            kind=fmt.SANDBOX_RUN,
            repository_id=record.repository_id,
            subject={"type": "sandbox", "id": record.id},
            commit_id=commit_id,
            bodies={
                "inputs": inputs,
                "policy_decisions": {
                    "decisions": [decision_json(d) for d in getattr(record, "decisions", ())]
                },
                "approval": {"record": dict(approval) if approval is not None else None},
                "outputs": outputs,
            },
            resources=resources,
        )

    async def for_approved_commit(
        self,
        *,
        repository_id: str,
        session_id: str,
        commit_id: str,
        approval: Mapping[str, Any],
        decisions: Sequence[Any] = (),
    ) -> EvidencePack:
        """The pack of a commit that landed once approved: the session it came from, the
        decisions taken on it, the approval record, the commit and its diff."""
        session = await self._versions.get_session(repository_id, session_id)
        inputs = {
            "session_id": session_id,
            "base_commit": session.base_commit,
            "created_by": _committer(session.created_by),
            "created_at": session.created_at.isoformat(),
        }
        return await self._create(
            kind=fmt.APPROVED_COMMIT,
            repository_id=repository_id,
            subject={"type": "session", "id": session_id},
            commit_id=commit_id,
            bodies={
                "inputs": inputs,
                "policy_decisions": {"decisions": [decision_json(d) for d in decisions]},
                "approval": {"record": dict(approval)},
                "outputs": await self._commit_outputs(repository_id, commit_id),
            },
            resources=[session_id, commit_id],
        )

    async def _create(
        self,
        *,
        kind: str,
        repository_id: str,
        subject: dict[str, str],
        commit_id: str | None,
        bodies: dict[str, Any],
        resources: Sequence[str],
    ) -> EvidencePack:
        async with self._db.connect() as conn:
            owner = (
                await conn.execute(
                    sa.select(
                        repositories.c.name,
                        organizations.c.id.label("organization_id"),
                        organizations.c.name.label("organization_name"),
                    )
                    .join(organizations, organizations.c.id == repositories.c.organization_id)
                    .where(repositories.c.id == repository_id)
                )
            ).one()
        bodies["audit"] = {
            "entries": await self.audit.entries_for(owner.organization_id, list(resources))
        }
        pack_id = str(uuid.uuid4())
        created_at = utcnow()
        document = fmt.document(
            pack_id=pack_id,
            kind=kind,
            organization={"id": owner.organization_id, "name": owner.organization_name},
            repository={"id": repository_id, "name": owner.name},
            subject=subject,
            created_at=created_at.isoformat(),
            key_id=self.key.key_id,
            bodies=bodies,
        )
        text = fmt.canonical(document)
        pack = EvidencePack(
            id=pack_id,
            organization_id=owner.organization_id,
            repository_id=repository_id,
            kind=kind,
            subject_id=subject["id"],
            commit_id=commit_id,
            created_at=created_at,
            chain_hash=document["chain_hash"],
            key_id=self.key.key_id,
            document=text.decode("utf-8"),
            signature=fmt.encode_signature(self.key.sign(text)),
        )
        async with self._db.begin() as conn:
            await conn.execute(
                evidence_packs.insert().values(
                    id=pack.id,
                    organization_id=pack.organization_id,
                    repository_id=pack.repository_id,
                    kind=pack.kind,
                    subject_id=pack.subject_id,
                    commit_id=pack.commit_id,
                    created_at=pack.created_at,
                    chain_hash=pack.chain_hash,
                    key_id=pack.key_id,
                    document=pack.document,
                    signature=pack.signature,
                )
            )
        return pack

    async def _log_digest(self, record: SandboxRecord) -> dict[str, Any] | None:
        stream = await self._sandboxes.logs(record.repository_id, record.id)
        if stream is None:
            return None
        digest, size = hashlib.sha256(), 0
        async for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
        return {"sha256": digest.hexdigest(), "size": size}

    async def _commit_outputs(self, repository_id: str, commit_id: str | None) -> dict[str, Any]:
        """The ``diff`` (against the commit's parent) and the ``commit`` with the fields its
        id is computed from; both ``None`` when nothing was committed."""
        if commit_id is None:
            return {"diff": None, "commit": None}
        commit = await self._versions.get_commit(repository_id, commit_id)
        return {
            "diff": await self._diff(repository_id, commit),
            "commit": {
                "id": commit.id,
                "fields": fmt.commit_fields(
                    repository_id=repository_id,
                    parents=commit.parents,
                    tree=commit.meta_range_id,
                    message=commit.message,
                    metadata=commit.metadata,
                    committer=(commit.committer.type, commit.committer.id, commit.committer.name),
                    created_at_micros=to_micros(commit.creation_date),
                ),
            },
        }

    async def _diff(self, repository_id: str, commit: CommitInfo) -> dict[str, Any]:
        parent = commit.parents[0] if commit.parents else None
        entries: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = await self._versions.diff(
                repository_id, left=parent, right=commit.id, after=after, amount=DIFF_PAGE
            )
            for item in page.items:
                entry = item.entry
                if entry is None:
                    entries.append({"path": item.path, "status": item.status})
                    continue
                entries.append(
                    {
                        "path": item.path,
                        "status": item.status,
                        "size": entry.size,
                        "etag": entry.etag,
                        "content_type": entry.content_type,
                        "sha256": await self._sha256(entry.address, entry.size),
                    }
                )
            if not page.has_more:
                return {"base": parent, "entries": entries}
            after = page.next_offset

    async def _sha256(self, address: str, size: int) -> str:
        digest = hashlib.sha256()
        async for chunk in self._blobs.read(address, 0, size):
            if len(chunk) >= HASH_CHUNK_THREAD:
                await anyio.to_thread.run_sync(digest.update, chunk)
            else:
                digest.update(chunk)
        return digest.hexdigest()

    # --- finding ----------------------------------------------------------------------------

    async def get(self, repository_id: str, pack_id: str) -> EvidencePack | None:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(evidence_packs).where(
                        evidence_packs.c.id == pack_id,
                        evidence_packs.c.repository_id == repository_id,
                    )
                )
            ).first()
        return None if row is None else _pack(row)

    async def page(
        self, repository_id: str, *, after: str | None, amount: int, subject_id: str | None = None
    ) -> tuple[list[EvidencePack], bool]:
        """A repository's packs, newest first; ``after`` is the last id of the previous page."""
        c = evidence_packs.c
        query = sa.select(evidence_packs).where(c.repository_id == repository_id)
        if subject_id:
            query = query.where(c.subject_id == subject_id)
        if after:
            cursor = (
                sa.select(c.created_at)
                .where(c.id == after, c.repository_id == repository_id)
                .scalar_subquery()
            )
            query = query.where(
                sa.or_(c.created_at < cursor, sa.and_(c.created_at == cursor, c.id < after))
            )
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(amount + 1)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_pack(row) for row in rows[:amount]], len(rows) > amount

    async def select(
        self,
        organization_id: str,
        *,
        repository_id: str | None = None,
        since: datetime | None = None,
        until: datetime,
        limit: int,
    ) -> list[EvidencePack]:
        """An organization's packs (of one repository) created in ``[since, until)``, oldest
        first, at most ``limit`` of them."""
        c = evidence_packs.c
        query = sa.select(evidence_packs).where(
            c.organization_id == organization_id, c.created_at < until
        )
        if repository_id is not None:
            query = query.where(c.repository_id == repository_id)
        if since is not None:
            query = query.where(c.created_at >= since)
        query = query.order_by(c.created_at, c.id).limit(limit)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_pack(row) for row in rows]

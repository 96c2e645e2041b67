"""A sandbox's landing and the approvals it may wait for.

A landing is recorded in the audit log as the principal the sandbox acts as, with the commit it
makes or the approval request it files (:meth:`Landings.entry`). It is held for a human's
approval when the run asks for it (``require_approval``, a governed run) or the repository's
rule does for that principal (:meth:`Landings.hold`); the decision then ends the sandbox as it
says (:func:`decided`).
"""

from __future__ import annotations

from lamina_server.authz import Action
from lamina_server.governance import audit
from lamina_server.governance.approvals import (
    APPROVED,
    ApprovalRecord,
    Approvals,
    approval_links,
)
from lamina_server.governance.audit import AuditEvent
from lamina_server.principals import Committer, Principal
from lamina_server.repositories import Repositories
from lamina_server.sandboxes.gate import acting_as
from lamina_server.sandboxes.models import (
    COMMIT_FAILED,
    COMMITTED,
    DONE,
    FAILED,
    Outcome,
    SandboxRecord,
)


class Landings:
    """What a landing needs of governance: its audit entry, and holding it for approval."""

    def __init__(self, approvals: Approvals, repositories: Repositories, base_url: str) -> None:
        self._approvals = approvals
        self._repositories = repositories
        self._base_url = base_url

    async def entry(self, record: SandboxRecord) -> AuditEvent:
        """The landing's audit entry, written with its commit (or its approval request)."""
        repo = await self._repositories.by_id(record.repository_id)
        actor = acting_as(record)
        return AuditEvent.of(
            Principal(actor.type, actor.id, actor.name),
            organization_id=repo.organization_id,
            action=Action.COMMIT_SESSION,
            resource=f"{repo.org_name}/{repo.name}",
            resource_kind="sandbox",
            resource_id=record.id,
            details={"session_id": record.session_id},
        )

    async def hold(
        self,
        record: SandboxRecord,
        message: str,
        metadata: dict[str, str],
        committer: Committer,
    ) -> str | None:
        """Holds the staged change for approval when the run or its repository's rule asks
        for it: the approval page's URL, or None to commit now."""
        assert record.session_id is not None
        repo = await self._repositories.by_id(record.repository_id)
        if not record.request.require_approval and not await self._approvals.needed(
            repo, record.session_id, committer.type
        ):
            return None
        audit.annotate(outcome="approval_required")
        await self._approvals.request(
            repo,
            record.session_id,
            message=message,
            metadata=metadata,
            requester=committer,
            sandbox_id=record.id,
        )
        return approval_links(self._base_url, repo, record.session_id).web_url


def decided(approval: ApprovalRecord, held: Outcome) -> Outcome:
    """How a decision ends the sandbox that waited for it: its changes landed, or not."""
    if approval.state == APPROVED:
        return Outcome(
            DONE, COMMITTED, exit_code=held.exit_code, commit_id=approval.commit_id or ""
        )
    who = approval.decided_by.name if approval.decided_by else "someone"
    because = f": {approval.reason}" if approval.reason else ""
    return Outcome(
        FAILED,
        COMMIT_FAILED,
        exit_code=held.exit_code,
        error_message=f"nothing landed: the change was {approval.state} by {who}{because}",
    )

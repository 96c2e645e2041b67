"""Governance: approval requests of held commits, and audit log entries (verify a run of
entries with :func:`lamina.audit.verify_entries`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from attrs import field, frozen


@frozen
class PrincipalRef:
    """Who did something: ``type`` (``user``, ``agent``, ``role``), ``id`` and ``name``."""

    type: str
    id: str
    name: str = ""


@frozen
class Approval:
    """A commit held for approval (``GET .../approvals/{session_id}``).

    ``state`` is ``pending``, then ``approved`` (``commit_id`` is the commit that landed),
    ``rejected`` (``reason`` says why) or ``withdrawn`` (its requester rolled it back).
    ``web_url`` is the page where a human reviews and decides it.
    """

    session_id: str
    state: str
    organization: str = ""
    repository: str = ""
    message: str = ""
    metadata: dict[str, str] = field(factory=dict)
    requested_by: PrincipalRef | None = None
    requested_at: datetime | None = None
    sandbox_id: str | None = None
    decided_by: PrincipalRef | None = None
    decided_at: datetime | None = None
    reason: str = ""
    commit_id: str | None = None
    api_url: str = ""
    web_url: str = ""


@frozen
class AuditEntry:
    """One entry of an organization's audit log (``GET /organizations/{org}/audit-log``).

    Entries form a chain per organization: ``prev_hash`` is the ``hash`` of the entry before
    (``seq - 1``), and ``hash`` is the SHA-256 of the canonical JSON of every other field, so
    the fields keep the server's exact values (``created_at`` is its text; :attr:`time` is it
    as a ``datetime``).
    """

    id: str
    organization_id: str
    seq: int
    timestamp_us: int
    created_at: str
    principal_type: str
    principal_id: str
    principal_name: str
    action: str
    resource: str
    resource_kind: str
    resource_id: str
    outcome: str
    request_id: str
    client_address: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def time(self) -> datetime:
        """When it happened (UTC, to the microsecond)."""
        seconds, micros = divmod(self.timestamp_us, 1_000_000)
        return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=micros)

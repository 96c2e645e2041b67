"""Governed runs: the invocations of ABPs, each a one-shot sandbox on the ABP's repository.

:meth:`Runs.start` records the invocation and starts its sandbox (the payload as the file
``/lamina/input/payload.json`` and as ``LAMINA_PAYLOAD``; changes held for approval when the
ABP says so); :meth:`Runs.deny` records one whose verdict refused it (no sandbox). A run's
status is read from its sandbox, so an approval that lands a held run's changes (or a
rejection) shows at once (:func:`run_status`):

==================  =================================================================
``queued``          the sandbox is starting
``running``         its command runs
``awaiting_approval`` it ended ``done/awaiting_approval``: its changes wait for a human
``succeeded``       ``done`` (committed, no changes, or approved and committed)
``failed``          errored, failed, cancelled, or its held changes were rejected
``blocked``         the verdict refused it, or its principal's policy refused what it did
==================  =================================================================
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import anyio
import orjson
import sqlalchemy as sa

from lamina_server.api.sandboxes import CreateSandboxBody, sandbox_request
from lamina_server.principals import Committer, Principal
from lamina_server.repositories import RepositoryRecord
from lamina_server.sandboxes.models import (
    AWAITING_APPROVAL,
    DONE,
    POLICY_VIOLATION,
    RUNNING,
    STARTING,
    SandboxRecord,
    SandboxRequest,
)
from lamina_server.sandboxes.service import Sandboxes
from lamina_server.sandboxes.tables import sandboxes
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database
from lamina_server.velerian.abps import AbpRecord, Abps, AbpSpec
from lamina_server.velerian.errors import NotFound
from lamina_server.velerian.tables import abps as abps_table
from lamina_server.velerian.tables import invocations

ALLOWED, DENIED = "allowed", "denied"
QUEUED, RUN_RUNNING, AWAITING, SUCCEEDED, FAILED, BLOCKED = (
    "queued",
    "running",
    "awaiting_approval",
    "succeeded",
    "failed",
    "blocked",
)
RUN_STATES = (QUEUED, RUN_RUNNING, AWAITING, SUCCEEDED, FAILED, BLOCKED)
PAYLOAD_FILE = "payload.json"
PAYLOAD_ENV = "LAMINA_PAYLOAD"
MAX_PAYLOAD = 64 * 1024  # bytes of JSON: it is also an environment variable
_POLL = 0.05


def abp_sandbox_request(
    spec: AbpSpec, repo: RepositoryRecord, default_image: str
) -> SandboxRequest:
    """The one-shot sandbox an ABP runs, validated as a sandbox create request is (a 400
    naming the field otherwise)."""
    body = CreateSandboxBody(
        image=spec.image or None,
        command=list(spec.command),
        path_prefix=spec.path_prefix,
        timeout_seconds=spec.timeout_seconds,
        env_vars=dict(spec.env),
    )
    return sandbox_request(body, repo, default_image)


def payload_bytes(payload: dict[str, Any]) -> bytes:
    """The payload as the run sees it: canonical JSON (sorted keys)."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class Invocation:
    id: str
    abp: AbpRecord
    sandbox_id: str | None
    verdict: str
    reason: str
    caller: Committer
    key_id: str
    payload_sha256: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RunView:
    """An invocation and where its sandbox is."""

    invocation: Invocation
    sandbox: SandboxRecord | None

    @property
    def status(self) -> str:
        outcome = self.sandbox.outcome if self.sandbox is not None else None
        return run_status(
            self.invocation.verdict,
            outcome.status if outcome else None,
            outcome.status_reason if outcome else "",
        )

    @property
    def outcome(self) -> str:
        return OUTCOMES[self.status] if self.invocation.verdict == ALLOWED else DENIED

    @property
    def active(self) -> bool:
        return self.status in (QUEUED, RUN_RUNNING)


def run_status(verdict: str, sandbox_status: str | None, reason: str) -> str:
    """A run's status from its verdict and its sandbox's status and reason (module docstring)."""
    if verdict == DENIED:
        return BLOCKED
    if sandbox_status is None or sandbox_status == STARTING:
        return QUEUED
    if sandbox_status == RUNNING:
        return RUN_RUNNING
    if sandbox_status == DONE:
        return AWAITING if reason == AWAITING_APPROVAL else SUCCEEDED
    return BLOCKED if reason == POLICY_VIOLATION else FAILED


# An invocation's outcome (InvokeResult.outcome) by its run's status; a refused one is "denied".
OUTCOMES = {
    QUEUED: "running",
    RUN_RUNNING: "running",
    AWAITING: "requires_approval",
    SUCCEEDED: "completed",
    FAILED: "failed",
    BLOCKED: "blocked",
}


_SELECT = sa.select(invocations, abps_table.c.organization_id.label("abp_org")).join(
    abps_table, abps_table.c.id == invocations.c.abp_id
)


class Runs:
    def __init__(self, db: Database, abps: Abps, sandboxes: Sandboxes) -> None:
        self._db = db
        self._abps = abps
        self._sandboxes = sandboxes

    async def start(
        self,
        invocation_id: str,
        abp: AbpRecord,
        request: SandboxRequest,
        caller: Principal,
        key_id: str,
        payload: bytes,
    ) -> Invocation:
        """Starts the run's sandbox and records the invocation."""
        request = replace(
            request,
            env_vars={**request.env_vars, PAYLOAD_ENV: payload.decode("utf-8")},
            files={PAYLOAD_FILE: payload},
            require_approval=abp.spec.requires_approval,
        )
        sandbox = await self._sandboxes.create(abp.repository_id, caller, request)
        return await self._record(
            invocation_id, abp, sandbox.id, ALLOWED, "", caller, key_id, payload
        )

    async def deny(
        self,
        invocation_id: str,
        abp: AbpRecord,
        reason: str,
        caller: Principal,
        key_id: str,
        payload: bytes,
    ) -> Invocation:
        """Records an invocation the verdict refused: it never runs."""
        return await self._record(invocation_id, abp, None, DENIED, reason, caller, key_id, payload)

    async def _record(
        self,
        invocation_id: str,
        abp: AbpRecord,
        sandbox_id: str | None,
        verdict: str,
        reason: str,
        caller: Principal,
        key_id: str,
        payload: bytes,
    ) -> Invocation:
        values = {
            "id": invocation_id,
            "abp_id": abp.id,
            "organization_id": abp.organization_id,
            "repository_id": abp.repository_id,
            "sandbox_id": sandbox_id,
            "verdict": verdict,
            "reason": reason,
            "caller_type": caller.type,
            "caller_id": caller.id,
            "caller_name": caller.name,
            "key_id": key_id,
            "payload_sha256": hashlib.sha256(payload).hexdigest(),
            "created_at": utcnow(),
        }
        await self._db.run_write(lambda conn: conn.execute(sa.insert(invocations).values(values)))
        return _invocation(values, abp)

    async def get(self, organization_id: str, run_id: str) -> Invocation:
        query = _SELECT.where(
            invocations.c.id == run_id, invocations.c.organization_id == organization_id
        )
        row = await self._db.run_read(lambda conn: conn.execute(query).one_or_none())
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
        return _invocation(row._mapping, await self._abps.get(organization_id, row.abp_id))

    async def page(
        self, organization_id: str, *, abp_id: str | None, limit: int, offset: int
    ) -> tuple[list[Invocation], int]:
        """The organization's invocations (of one ABP), newest first, and how many."""
        clauses = [invocations.c.organization_id == organization_id]
        if abp_id is not None:
            clauses.append(invocations.c.abp_id == abp_id)

        def run(conn: sa.Connection) -> tuple[Sequence[Any], int]:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(invocations).where(*clauses)
            )
            rows = conn.execute(
                _SELECT.where(*clauses)
                .order_by(invocations.c.created_at.desc(), invocations.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return rows, int(total.scalar_one())

        rows, total = await self._db.run_read(run)
        found: dict[str, AbpRecord] = {}
        for abp_id_ in {row.abp_id for row in rows}:
            found[abp_id_] = await self._abps.get(organization_id, abp_id_)
        return [_invocation(row._mapping, found[row.abp_id]) for row in rows], total

    async def by_outcome(self, organization_id: str) -> dict[str, int]:
        """The organization's invocations counted by outcome (:class:`GovernedRuns`)."""
        query = (
            sa.select(
                invocations.c.verdict,
                sandboxes.c.status,
                sandboxes.c.status_reason,
                sa.func.count().label("n"),
            )
            .select_from(
                invocations.outerjoin(sandboxes, sandboxes.c.id == invocations.c.sandbox_id)
            )
            .where(invocations.c.organization_id == organization_id)
            .group_by(invocations.c.verdict, sandboxes.c.status, sandboxes.c.status_reason)
        )
        rows = await self._db.run_read(lambda conn: conn.execute(query).all())
        counts: dict[str, int] = {}
        for row in rows:
            status = run_status(row.verdict, row.status, row.status_reason or "")
            outcome = OUTCOMES[status] if row.verdict == ALLOWED else DENIED
            counts[outcome] = counts.get(outcome, 0) + int(row.n)
        return counts

    async def view(self, invocation: Invocation) -> RunView:
        if invocation.sandbox_id is None:
            return RunView(invocation, None)
        sandbox = await self._sandboxes.get(invocation.abp.repository_id, invocation.sandbox_id)
        return RunView(invocation, sandbox)

    async def settle(self, invocation: Invocation, seconds: float) -> RunView:
        """The run once it ended or was held, or as it is after ``seconds`` (waiting on the
        sandbox's status changes, without blocking the event loop)."""
        deadline = anyio.current_time() + seconds
        while True:
            view = await self.view(invocation)
            remaining = deadline - anyio.current_time()
            if not view.active or remaining <= 0 or view.sandbox is None:
                return view
            seen = view.sandbox.outcome.status
            await self._sandboxes.wait_for_change(
                view.sandbox.repository_id, view.sandbox.id, remaining, seen=seen
            )
            await anyio.sleep(_POLL)  # a status written, not yet readable: look again shortly


def _invocation(row: Any, abp: AbpRecord) -> Invocation:
    return Invocation(
        id=row["id"],
        abp=abp,
        sandbox_id=row["sandbox_id"],
        verdict=row["verdict"],
        reason=row["reason"],
        caller=Committer(row["caller_type"], row["caller_id"], row["caller_name"]),
        key_id=row["key_id"],
        payload_sha256=row["payload_sha256"],
        created_at=row["created_at"],
    )


def new_invocation_id() -> str:
    return str(uuid.uuid4())

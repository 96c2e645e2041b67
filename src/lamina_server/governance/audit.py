"""The audit log: who did what to which resource, when, from where, and how it ended.

Entries are written in the transaction of the change they record. A request that may change
state holds an :class:`AuditEvent` from the moment it is authorized (the prelude of
:mod:`lamina_server.api.access`); the first write transaction of that request appends it
through the database's journal (:mod:`lamina_server.storage.journal`), so a crash never leaves
a change without its entry or an entry without its change, and a request that changed nothing
leaves nothing. Denials, which change nothing, are appended in a transaction of their own.
Work the server does on a principal's behalf outside a request (a sandbox landing its changes)
holds its own event the same way.

Each organization's entries form a chain: an entry carries the hash of the one before it
(:data:`GENESIS` for the first), and its own hash is the SHA-256 of the canonical JSON of all
its fields but ``hash`` (:func:`entry_hash`), so altering, removing or reordering an entry
breaks every later link. :meth:`AuditLog.verify` walks every chain and names the first broken
entry.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import os
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa

from lamina_server.authz import Resource
from lamina_server.governance.audit_tables import audit_entries
from lamina_server.principals import Principal
from lamina_server.storage import journal
from lamina_server.storage.db import Database

GENESIS = "0" * 64
VERIFY_BATCH = 1000

# The fields an entry's hash covers, in the order the API shows them.
FIELDS = (
    "id",
    "organization_id",
    "seq",
    "timestamp_us",
    "created_at",
    "principal_type",
    "principal_id",
    "principal_name",
    "action",
    "resource",
    "resource_kind",
    "resource_id",
    "outcome",
    "request_id",
    "client_address",
    "details",
    "prev_hash",
)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the audit log notes about the request being served."""

    request_id: str
    client_address: str


_request: ContextVar[RequestFacts | None] = ContextVar("lamina_audit_request", default=None)


def serving(facts: RequestFacts) -> None:
    """Notes the request the current task serves (the prelude calls it first)."""
    _request.set(facts)


@dataclass(eq=False, slots=True)
class AuditEvent:
    """An entry waiting for its transaction (a :mod:`~lamina_server.storage.journal` entry)."""

    organization_id: str
    principal_type: str
    principal_id: str
    principal_name: str
    action: str
    resource: str
    resource_kind: str
    resource_id: str
    outcome: str = "success"
    details: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""
    client_address: str = ""
    written: bool = False

    @classmethod
    def of(
        cls,
        principal: Principal,
        *,
        organization_id: str | None,
        action: str,
        resource: str,
        resource_kind: str,
        resource_id: str,
        outcome: str = "success",
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """An event by ``principal``, tagged with the request the task serves (if any)."""
        facts = _request.get()
        return cls(
            organization_id=organization_id or "",
            principal_type=principal.type,
            principal_id=principal.id,
            principal_name=principal.name,
            action=str(action),
            resource=resource,
            resource_kind=resource_kind,
            resource_id=resource_id,
            outcome=outcome,
            details=dict(details or {}),
            request_id=facts.request_id if facts else "",
            client_address=facts.client_address if facts else "",
        )


def annotate(
    *,
    resource_kind: str | None = None,
    resource_id: str | None = None,
    outcome: str | None = None,
    **details: Any,
) -> None:
    """Completes the current task's events not yet written with what a handler learns only as
    it works: what a create made, how a request ended (``approval_required``, ``approved``…),
    details."""
    for event in journal.pending():
        if isinstance(event, AuditEvent):
            if resource_kind is not None:
                event.resource_kind = resource_kind
            if resource_id is not None:
                event.resource_id = resource_id
            if outcome is not None:
                event.outcome = outcome
            event.details.update(details)


def note_commit(_conn: Any, commit_id: str) -> None:
    """Names the commit a commit's transaction made in its audit entry (a ``commit_session``
    ``also`` hook: it runs in that transaction, before the entry is written)."""
    annotate(commit_id=commit_id)


def subject_of(resource: Resource) -> tuple[str, str]:
    """The kind and id an authorization resource names (an object's id is its path)."""
    if resource.path is not None:
        return "object", resource.path
    if resource.repository is not None:
        return "repository", resource.repository
    if resource.organization is not None:
        return "organization", resource.organization.name
    return "account", ""


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The hash of an entry: SHA-256 (hex) of the canonical JSON of its :data:`FIELDS`."""
    return hashlib.sha256(_canonical({name: entry[name] for name in FIELDS})).hexdigest()


def iso_time(timestamp_us: int) -> str:
    seconds, micros = divmod(timestamp_us, 1_000_000)
    moment = datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=micros)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _now_us() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1_000_000)


# Built once: constructing a statement costs more than running it on SQLite.
_LAST = (
    sa.select(audit_entries.c.seq, audit_entries.c.hash)
    .where(audit_entries.c.organization_id == sa.bindparam("organization"))
    .order_by(audit_entries.c.seq.desc())
    .limit(1)
)


# PostgreSQL: appends to one organization's chain take turns, until their transaction ends.
_CHAIN_LOCK = sa.select(
    sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(sa.bindparam("organization"), 1))
)


def _last(conn: sa.Connection, organization_id: str) -> tuple[int, str]:
    """The chain's last position and hash (0 and :data:`GENESIS` for an empty chain). The
    caller's write transaction holds the database's one write lock on SQLite; on PostgreSQL,
    where writers run concurrently, it first takes the chain's advisory lock, so that two
    transactions never read the same last entry."""
    if conn.dialect.name == "postgresql":
        conn.execute(_CHAIN_LOCK, {"organization": organization_id})
    row = conn.execute(_LAST, {"organization": organization_id}).one_or_none()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))


# Entries go in through the driver, as rows of :data:`_COLUMNS`: a batch of them costs a
# fraction of what binding them through SQLAlchemy does, on the hot path of every write.
_COLUMNS = (*FIELDS, "hash")
_row = operator.itemgetter(*_COLUMNS)


@functools.cache
def _append_sql(paramstyle: str) -> str:
    marker = "?" if paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {audit_entries.name} ({', '.join(_COLUMNS)}) "
        f"VALUES ({', '.join([marker] * len(_COLUMNS))})"
    )


def _ids(count: int) -> list[str]:
    """``count`` random (version 4) UUIDs, from one read of the system's randomness."""
    raw = bytearray(os.urandom(16 * count))
    ids = []
    for start in range(0, len(raw), 16):
        raw[start + 6] = raw[start + 6] & 0x0F | 0x40
        raw[start + 8] = raw[start + 8] & 0x3F | 0x80
        digits = raw[start : start + 16].hex()
        ids.append(f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}")
    return ids


def append(conn: sa.Connection, events: Sequence[AuditEvent]) -> None:
    """Appends ``events`` (at least one) to their organizations' chains on ``conn`` (the
    database's journal writer: it runs inside the transaction of a change that holds some)."""
    by_organization: dict[str, list[AuditEvent]] = {}
    for event in events:
        by_organization.setdefault(event.organization_id, []).append(event)
    now = _now_us()
    created_at = iso_time(now)
    ids = iter(_ids(len(events)))
    rows: list[tuple[Any, ...]] = []
    for organization_id, chain in sorted(by_organization.items()):  # locks in one order
        seq, previous = _last(conn, organization_id)
        for event in chain:
            seq += 1
            entry = {
                "id": next(ids),
                "organization_id": organization_id,
                "seq": seq,
                "timestamp_us": now,
                "created_at": created_at,
                "principal_type": event.principal_type,
                "principal_id": event.principal_id,
                "principal_name": event.principal_name,
                "action": event.action,
                "resource": event.resource,
                "resource_kind": event.resource_kind,
                "resource_id": event.resource_id,
                "outcome": event.outcome,
                "request_id": event.request_id,
                "client_address": event.client_address,
                "details": event.details,
                "prev_hash": previous,
            }
            previous = entry["hash"] = entry_hash(entry)
            entry["details"] = _canonical(event.details).decode()
            rows.append(_row(entry))
    conn.exec_driver_sql(_append_sql(conn.dialect.paramstyle), rows)


def _entry(row: Any) -> dict[str, Any]:
    entry = {name: getattr(row, name) for name in FIELDS}
    entry["details"] = orjson.loads(entry["details"])
    entry["hash"] = row.hash
    return entry


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None
    resource_kind: str | None = None
    resource_id: str | None = None
    principal: str | None = None  # a principal's id or name
    since_us: int | None = None
    until_us: int | None = None
    outcome: str | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        c = audit_entries.c
        clauses: list[sa.ColumnElement[bool]] = []
        for column, value in (
            (c.action, self.action),
            (c.resource_kind, self.resource_kind),
            (c.resource_id, self.resource_id),
            (c.outcome, self.outcome),
        ):
            if value is not None:
                clauses.append(column == value)
        if self.principal is not None:
            clauses.append(
                sa.or_(c.principal_id == self.principal, c.principal_name == self.principal)
            )
        if self.since_us is not None:
            clauses.append(c.timestamp_us >= self.since_us)
        if self.until_us is not None:
            clauses.append(c.timestamp_us < self.until_us)
        return clauses


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first entry of a chain that does not verify, and why."""

    organization_id: str
    seq: int
    entry_id: str
    problem: str

    def __str__(self) -> str:
        chain = self.organization_id or "(no organization)"
        return f"chain {chain}: entry {self.seq} ({self.entry_id}): {self.problem}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    chains: int
    entries: int
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _verify_chain(conn: sa.Connection, organization_id: str) -> tuple[int, ChainBreak | None]:
    c = audit_entries.c
    expected_seq, previous, checked = 1, GENESIS, 0
    while True:
        rows = conn.execute(
            sa.select(audit_entries)
            .where(c.organization_id == organization_id, c.seq >= expected_seq)
            .order_by(c.seq)
            .limit(VERIFY_BATCH)
        ).all()
        for row in rows:
            problem = None
            if row.seq != expected_seq:
                problem = f"entry {expected_seq} is missing (the chain jumps to {row.seq})"
            elif row.prev_hash != previous:
                problem = "its prev_hash is not the hash of the entry before it"
            elif entry_hash(_entry(row)) != row.hash:
                problem = "its content does not match its hash (altered)"
            if problem is not None:
                return checked, ChainBreak(organization_id, row.seq, row.id, problem)
            checked += 1
            expected_seq, previous = row.seq + 1, row.hash
        if len(rows) < VERIFY_BATCH:
            break
    return checked, None


class AuditLog:
    """Appends, lists and verifies the audit log of ``db`` (whose journal writer it becomes;
    a disabled log records nothing)."""

    def __init__(self, db: Database, *, enabled: bool = True) -> None:
        self._db = db
        self.enabled = enabled
        if enabled:
            db.journal_writer = append

    async def denied(
        self, principal: Principal, action: str, resource: Resource, reason: str
    ) -> None:
        """Records a refused request, in a transaction of its own."""
        if not self.enabled:
            return
        kind, ident = subject_of(resource)
        organization = resource.organization
        event = AuditEvent.of(
            principal,
            organization_id=organization.id if organization is not None else None,
            action=action,
            resource=str(resource),
            resource_kind=kind,
            resource_id=ident,
            outcome="denied",
            details={"reason": reason},
        )
        await self.record(event)

    async def record(self, event: AuditEvent) -> None:
        """Appends ``event`` alone (a decision that changes nothing else)."""
        with journal.carrying([event]):
            async with self._db.begin():
                pass

    async def page(
        self, organization_id: str, where: AuditFilter, *, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of an organization's entries, oldest first, and how many match in all."""
        clauses = [audit_entries.c.organization_id == organization_id, *where.where()]

        def run(conn: sa.Connection) -> tuple[list[dict[str, Any]], int]:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(audit_entries).where(*clauses)
            ).scalar_one()
            rows = conn.execute(
                sa.select(audit_entries)
                .where(*clauses)
                .order_by(audit_entries.c.seq)
                .limit(limit)
                .offset(offset)
            ).all()
            return [_entry(row) for row in rows], int(total)

        return await self._db.run_read(run)

    async def entries_for(
        self, organization_id: str, resource_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Every entry of the organization about any of ``resource_ids``, in chain order."""
        c = audit_entries.c

        def run(conn: sa.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                sa.select(audit_entries)
                .where(c.organization_id == organization_id, c.resource_id.in_(list(resource_ids)))
                .order_by(c.seq)
            ).all()
            return [_entry(row) for row in rows]

        return await self._db.run_read(run)

    async def verify(self) -> VerifyReport:
        """Walks every chain; the report names the first broken entry, if any."""

        def run(conn: sa.Connection) -> VerifyReport:
            organizations = sorted(
                conn.execute(sa.select(audit_entries.c.organization_id).distinct()).scalars()
            )
            total = 0
            for organization_id in organizations:
                checked, broken = _verify_chain(conn, organization_id)
                total += checked
                if broken is not None:
                    return VerifyReport(len(organizations), total, broken)
            return VerifyReport(len(organizations), total, None)

        return await self._db.run_read(run)

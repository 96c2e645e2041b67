"""Agents and roles (an organization's non-human principals) and API keys of every principal.

An agent or a role belongs to one organization and acts only in it; it authenticates with its
own API keys (``tak-`` and ``trk-`` prefixes). Deleting one revokes all its keys in the same
transaction. A key is shown once, at creation; it is stored as its SHA-256 digest and a
four-character hint.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from lamina_server.identity.errors import (
    AgentExists,
    AgentNotFound,
    IdentityError,
    KeyNotFound,
    RoleExists,
    RoleNotFound,
)
from lamina_server.identity.grants import bump_epoch
from lamina_server.identity.keys import generate_key, hash_key
from lamina_server.identity.tables import agents, api_keys, roles
from lamina_server.principals import Principal
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database

KINDS = ("agent", "role")


@dataclass(frozen=True, slots=True)
class MachineRecord:
    """An agent or a role. A role has no metadata and no inline policy (both stay empty)."""

    kind: str  # "agent" | "role"
    id: str
    organization_id: str
    name: str
    description: str
    created_by_type: str
    created_by: str
    created_by_name: str
    created_at: datetime
    last_used_at: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)
    inline_policy: str = ""
    inline_policy_updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    principal_type: str
    principal_id: str
    name: str
    description: str
    token_hint: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: the only time its token is known."""

    record: KeyRecord
    token: str


@dataclass(frozen=True, slots=True)
class MachinePage:
    records: list[MachineRecord]
    has_more: bool
    next_offset: str | None


@dataclass(frozen=True, slots=True)
class KeyPage:
    records: list[KeyRecord]
    has_more: bool
    next_offset: str | None


_TABLES = {"agent": agents, "role": roles}
_NOT_FOUND: dict[str, type[IdentityError]] = {"agent": AgentNotFound, "role": RoleNotFound}
_EXISTS: dict[str, type[IdentityError]] = {"agent": AgentExists, "role": RoleExists}


def _machine(kind: str, row: sa.Row[Any]) -> MachineRecord:
    extra: dict[str, Any] = {}
    if kind == "agent":
        extra = {
            "metadata": dict(row._mapping["metadata"]),
            "inline_policy": row.inline_policy,
            "inline_policy_updated_at": row.inline_policy_updated_at,
        }
    return MachineRecord(
        kind=kind,
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        description=row.description,
        created_by_type=row.created_by_type,
        created_by=row.created_by,
        created_by_name=row.created_by_name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        **extra,
    )


def _key(row: sa.Row[Any]) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        principal_type=row.principal_type,
        principal_id=row.principal_id,
        name=row.name,
        description=row.description,
        token_hint=row.token_hint,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


async def insert_key(
    conn: AsyncConnection,
    principal_type: str,
    principal_id: str,
    *,
    name: str = "",
    description: str = "",
    organization_id: str | None = None,
) -> NewKey:
    token = generate_key(principal_type)
    record = KeyRecord(
        id=str(uuid.uuid4()),
        principal_type=principal_type,
        principal_id=principal_id,
        name=name,
        description=description,
        token_hint=token[-4:],
        created_at=utcnow(),
        last_used_at=None,
        revoked_at=None,
    )
    await conn.execute(
        api_keys.insert().values(
            id=record.id,
            principal_type=principal_type,
            principal_id=principal_id,
            organization_id=organization_id,
            key_hash=hash_key(token),
            token_hint=record.token_hint,
            name=name,
            description=description,
            created_at=record.created_at,
        )
    )
    return NewKey(record, token)


class Machines:
    """Agents and roles of organizations, and the API keys of any principal."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- agents and roles -----------------------------------------------------------------

    async def create(
        self,
        kind: str,
        org_id: str,
        name: str,
        creator: Principal,
        *,
        description: str = "",
        metadata: dict[str, str] | None = None,
        inline_policy: str = "",
    ) -> MachineRecord:
        now = utcnow()
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "organization_id": org_id,
            "name": name,
            "description": description,
            "created_by_type": creator.type,
            "created_by": creator.id,
            "created_by_name": creator.name,
            "created_at": now,
            "last_used_at": None,
        }
        if kind == "agent":
            values["metadata"] = dict(metadata or {})
            values["inline_policy"] = inline_policy
            values["inline_policy_updated_at"] = now if inline_policy else None
        try:
            async with self._db.begin() as conn:
                await conn.execute(_TABLES[kind].insert().values(**values))
        except IntegrityError:
            raise _EXISTS[kind](name) from None
        return MachineRecord(kind=kind, **values)

    async def get(self, kind: str, org_id: str, name: str) -> MachineRecord:
        async with self._db.connect() as conn:
            return await self._get(conn, kind, org_id, name)

    async def get_by_id(self, kind: str, org_id: str, machine_id: str) -> MachineRecord:
        """The agent or role with this id in the organization (its not-found error else)."""
        table = _TABLES[kind]
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(table).where(
                        table.c.organization_id == org_id, table.c.id == machine_id
                    )
                )
            ).first()
        if row is None:
            raise _NOT_FOUND[kind](machine_id)
        return _machine(kind, row)

    async def _get(self, conn: AsyncConnection, kind: str, org_id: str, name: str) -> MachineRecord:
        table = _TABLES[kind]
        row = (
            await conn.execute(
                sa.select(table).where(table.c.organization_id == org_id, table.c.name == name)
            )
        ).first()
        if row is None:
            raise _NOT_FOUND[kind](name)
        return _machine(kind, row)

    async def list(self, kind: str, org_id: str, after: str | None, amount: int) -> MachinePage:
        """A page in name order; ``after`` is the last name of the previous page."""
        table = _TABLES[kind]
        query = sa.select(table).where(table.c.organization_id == org_id)
        if after:
            query = query.where(table.c.name > after)
        query = query.order_by(table.c.name).limit(amount + 1)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        records = [_machine(kind, row) for row in rows[:amount]]
        has_more = len(rows) > amount
        return MachinePage(records, has_more, records[-1].name if has_more else None)

    async def update_agent(
        self,
        org_id: str,
        name: str,
        *,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        inline_policy: str | None = None,
    ) -> MachineRecord:
        """Changes the fields given; an empty ``inline_policy`` clears it."""
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = description
        if metadata is not None:
            values["metadata"] = dict(metadata)
        if inline_policy is not None:
            values["inline_policy"] = inline_policy
            values["inline_policy_updated_at"] = utcnow()
        async with self._db.begin() as conn:
            current = await self._get(conn, "agent", org_id, name)
            if values:
                await conn.execute(agents.update().where(agents.c.id == current.id).values(values))
            if inline_policy is not None:
                await bump_epoch(conn)  # every process's cached policies of the agent go stale
            return await self._get(conn, "agent", org_id, name)

    async def delete(self, kind: str, org_id: str, name: str) -> None:
        """Deletes the principal and revokes every key it has, in one transaction."""
        table = _TABLES[kind]
        async with self._db.begin() as conn:
            record = await self._get(conn, kind, org_id, name)
            await conn.execute(table.delete().where(table.c.id == record.id))
            await conn.execute(
                api_keys.update()
                .where(
                    api_keys.c.principal_type == kind,
                    api_keys.c.principal_id == record.id,
                    api_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
            await bump_epoch(conn)  # its keys stop working in every process at once

    # --- API keys -------------------------------------------------------------------------

    async def owner(self, kind: str, org_id: str, name: str) -> Principal:
        """The agent or role that keys are managed for, as a principal."""
        record = await self.get(kind, org_id, name)
        return Principal(kind, record.id, record.name, record.organization_id)

    async def create_key(self, owner: Principal, name: str, description: str = "") -> NewKey:
        async with self._db.begin() as conn:
            if owner.type in KINDS:
                # The owner may have been deleted since it was looked up.
                table = _TABLES[owner.type]
                if await conn.scalar(sa.select(table.c.id).where(table.c.id == owner.id)) is None:
                    raise _NOT_FOUND[owner.type](owner.name)
            return await insert_key(
                conn,
                owner.type,
                owner.id,
                name=name,
                description=description,
                organization_id=owner.organization_id,
            )

    def _keys_of(self, owner: Principal) -> sa.ColumnElement[bool]:
        return sa.and_(api_keys.c.principal_type == owner.type, api_keys.c.principal_id == owner.id)

    async def list_keys(self, owner: Principal, after: str | None, amount: int) -> KeyPage:
        """A page of the owner's keys, revoked ones included, in id order."""
        query = sa.select(api_keys).where(self._keys_of(owner))
        if after:
            query = query.where(api_keys.c.id > after)
        query = query.order_by(api_keys.c.id).limit(amount + 1)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        records = [_key(row) for row in rows[:amount]]
        has_more = len(rows) > amount
        return KeyPage(records, has_more, records[-1].id if has_more else None)

    async def get_key(self, owner: Principal, key_id: str) -> KeyRecord:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(api_keys).where(self._keys_of(owner), api_keys.c.id == key_id)
                )
            ).first()
        if row is None:
            raise KeyNotFound(key_id)
        return _key(row)

    async def revoke_key(self, owner: Principal, key_id: str) -> None:
        """Revokes the key (a revoked key stays revoked: revoking it again changes nothing)."""
        async with self._db.begin() as conn:
            found = await conn.scalar(
                sa.select(api_keys.c.id).where(self._keys_of(owner), api_keys.c.id == key_id)
            )
            if found is None:
                raise KeyNotFound(key_id)
            await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            await bump_epoch(conn)  # refused on the very next request, in every process

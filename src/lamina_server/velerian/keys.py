"""Velerian API keys (``vk_live_…``): minted by a Lamina user for one of its organizations,
shown once, stored as a SHA-256 digest (:func:`lamina_server.identity.keys.hash_key`, like
Lamina's own keys).

A key acts as the user who minted it, with that user's current rights in the organization,
narrowed by its scopes (:func:`grants`). Authentication reads the key's row on every request
(one indexed lookup joining its user and organization), so a revoked key, a deleted user or a
deleted organization fails on the very next request.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from lamina_server.identity.grants import EPOCH_QUERY
from lamina_server.identity.keys import hash_key
from lamina_server.identity.tables import organizations, users
from lamina_server.principals import Principal
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database
from lamina_server.velerian.tables import velerian_keys

KEY_PREFIX = "vk_live_"
READ, WRITE = "read", "write"
# Fine scopes by area; the coarse ``read``/``write`` stand for every area's.
AREAS = {"runs": (READ, WRITE), "evidence": (READ,), "audit": (READ,)}
FINE_SCOPES = tuple(f"{area}:{mode}" for area, modes in AREAS.items() for mode in modes)
SCOPES = (*FINE_SCOPES, READ, WRITE)


def grants(scopes: Iterable[str], needed: str) -> bool:
    """Whether a key holding ``scopes`` may do what needs ``needed``: a scope grants itself;
    ``write`` grants ``read`` and every ``*:write`` and ``*:read``; ``read`` every ``*:read``;
    ``<area>:write`` also ``<area>:read``."""
    held = set(scopes)
    if needed in held or WRITE in held:
        return True
    area, _, mode = needed.partition(":")
    return mode == READ and bool(held & {READ, f"{area}:{WRITE}"})


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    scopes: tuple[str, ...]
    organization_id: str
    organization: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What a live key authenticates as."""

    key_id: str
    principal: Principal
    organization: str  # the organization's name
    scopes: tuple[str, ...]
    epoch: int  # the access epoch the caller's rights are judged at


def _record(row: Any) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes),
        organization_id=row.organization_id,
        organization=row.organization,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


_LISTED = sa.select(velerian_keys, organizations.c.name.label("organization")).join(
    organizations, organizations.c.id == velerian_keys.c.organization_id
)

_OWNER = (
    sa.select(
        velerian_keys.c.id,
        velerian_keys.c.scopes,
        velerian_keys.c.user_id,
        users.c.username,
        organizations.c.name.label("organization"),
        EPOCH_QUERY.scalar_subquery().label("epoch"),
    )
    .join(users, users.c.id == velerian_keys.c.user_id)
    .join(organizations, organizations.c.id == velerian_keys.c.organization_id)
    .where(velerian_keys.c.revoked_at.is_(None), organizations.c.deleted_at.is_(None))
)


class VelerianKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    async def mint(
        self, key_id: str, user: Principal, organization_id: str, name: str, scopes: Sequence[str]
    ) -> tuple[KeyRecord, str]:
        """A new key of ``user`` in the organization, and its token (never stored)."""
        token = KEY_PREFIX + secrets.token_urlsafe(32)
        values = {
            "id": key_id,
            "name": name,
            "key_hash": hash_key(token),
            "scopes": list(dict.fromkeys(scopes)),
            "user_id": user.id,
            "organization_id": organization_id,
            "created_at": utcnow(),
        }

        def run(conn: sa.Connection) -> KeyRecord:
            conn.execute(sa.insert(velerian_keys).values(values))
            return _record(conn.execute(_LISTED.where(velerian_keys.c.id == key_id)).one())

        return await self._db.run_write(run), token

    async def list(self, user: Principal) -> list[KeyRecord]:
        """The user's keys, live and revoked, oldest first."""
        query = _LISTED.where(velerian_keys.c.user_id == user.id).order_by(
            velerian_keys.c.created_at, velerian_keys.c.id
        )
        rows = await self._db.run_read(lambda conn: conn.execute(query).all())
        return [_record(row) for row in rows]

    async def get(self, user: Principal, key_id: str) -> KeyRecord | None:
        query = _LISTED.where(velerian_keys.c.user_id == user.id, velerian_keys.c.id == key_id)
        row = await self._db.run_read(lambda conn: conn.execute(query).one_or_none())
        return None if row is None else _record(row)

    async def revoke(self, user: Principal, key_id: str) -> bool:
        """Revokes one of the user's live keys; ``False`` when it has none by that id."""

        def run(conn: sa.Connection) -> bool:
            revoked = conn.execute(
                sa.update(velerian_keys)
                .where(
                    velerian_keys.c.id == key_id,
                    velerian_keys.c.user_id == user.id,
                    velerian_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
            return bool(revoked.rowcount)

        return await self._db.run_write(run)

    async def authenticate(self, token: str) -> KeyGrant | None:
        """The grant of a live key; ``None`` for an unknown or revoked key, or one whose user
        or organization is gone."""
        if not token.startswith(KEY_PREFIX):
            return None
        query = _OWNER.where(velerian_keys.c.key_hash == hash_key(token))
        row = await self._db.run_read(lambda conn: conn.execute(query).one_or_none())
        if row is None:
            return None
        return KeyGrant(
            key_id=row.id,
            principal=Principal("user", row.user_id, row.username),
            organization=row.organization,
            scopes=tuple(row.scopes),
            epoch=int(row.epoch or 0),
        )

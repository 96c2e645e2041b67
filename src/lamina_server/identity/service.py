"""The identity service: users, organizations, memberships and API-key authentication."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from lamina_server.cache import TtlCache
from lamina_server.identity.errors import (
    AlreadyMember,
    LastMember,
    NotAMember,
    OrganizationExists,
    OrganizationNotFound,
    UserExists,
    UserNotFound,
)
from lamina_server.identity.grants import (
    BUILTIN_IDS,
    DEFAULT_MEMBER_POLICY,
    ORG_ADMIN,
    attach,
    forget_subject,
)
from lamina_server.identity.keys import generate_key, hash_key
from lamina_server.identity.tables import api_keys, memberships, organizations, users
from lamina_server.principals import Principal
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database

BOOTSTRAP_USERNAME = "admin"


@dataclass(frozen=True, slots=True)
class OrganizationRecord:
    id: str
    name: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    organization_id: str
    user_id: str
    username: str
    full_name: str
    email: str
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class NewUser:
    principal: Principal
    api_key: str


def _organization(row: sa.Row[Any]) -> OrganizationRecord:
    return OrganizationRecord(
        id=row.id, name=row.name, display_name=row.display_name, created_at=row.created_at
    )


async def _grant(conn: AsyncConnection, org_id: str, user_id: str, policy: str) -> None:
    """What a user gets on joining: the built-in ``policy``, attached in the join's transaction."""
    await attach(conn, org_id, BUILTIN_IDS[policy], ("user", user_id), ("user", user_id))


class Identity:
    """Reads go through short-lived in-memory caches: the data plane authenticates and resolves
    the organization on every request, and both answers change rarely (and only here)."""

    def __init__(self, db: Database, *, cache_ttl: float = 10.0) -> None:
        self._db = db
        self._principals: TtlCache[str, Principal] = TtlCache(cache_ttl)
        self._orgs: TtlCache[str, OrganizationRecord] = TtlCache(cache_ttl)
        self._members: TtlCache[tuple[str, str], bool] = TtlCache(cache_ttl)

    # --- users and keys -------------------------------------------------------------------

    async def bootstrap(self, org_name: str) -> NewUser | None:
        """On an empty database: the admin user, its organization and a user key.

        Returns ``None`` when users already exist (the key is only ever shown once).
        """
        async with self._db.begin() as conn:
            if await conn.scalar(sa.select(sa.func.count()).select_from(users)):
                return None
            user_id = await self._insert_user(conn, BOOTSTRAP_USERNAME, "Administrator", "")
            org_id = str(uuid.uuid4())
            now = utcnow()
            await conn.execute(
                organizations.insert().values(
                    id=org_id, name=org_name, display_name=org_name, created_at=now
                )
            )
            await conn.execute(
                memberships.insert().values(organization_id=org_id, user_id=user_id, joined_at=now)
            )
            await _grant(conn, org_id, user_id, ORG_ADMIN)
            key = await self._insert_key(conn, "user", user_id, "bootstrap")
        return NewUser(Principal("user", user_id, BOOTSTRAP_USERNAME), key)

    async def create_user(
        self, username: str, *, full_name: str = "", email: str = "", org_name: str | None = None
    ) -> NewUser:
        """A user with a fresh key, optionally joined to an existing organization."""
        async with self._db.begin() as conn:
            org_id: str | None = None
            if org_name is not None:
                org_id = await conn.scalar(
                    sa.select(organizations.c.id).where(organizations.c.name == org_name)
                )
                if org_id is None:
                    raise OrganizationNotFound(org_name)
            try:
                user_id = await self._insert_user(conn, username, full_name, email)
            except IntegrityError:
                raise UserExists(username) from None
            if org_id is not None:
                await conn.execute(
                    memberships.insert().values(
                        organization_id=org_id, user_id=user_id, joined_at=utcnow()
                    )
                )
                await _grant(conn, org_id, user_id, DEFAULT_MEMBER_POLICY)
            key = await self._insert_key(conn, "user", user_id, "")
        return NewUser(Principal("user", user_id, username), key)

    async def _insert_user(
        self, conn: AsyncConnection, username: str, full_name: str, email: str
    ) -> str:
        user_id = str(uuid.uuid4())
        await conn.execute(
            users.insert().values(
                id=user_id, username=username, full_name=full_name, email=email, created_at=utcnow()
            )
        )
        return user_id

    async def _insert_key(
        self,
        conn: AsyncConnection,
        principal_type: str,
        principal_id: str,
        description: str,
    ) -> str:
        key = generate_key(principal_type)
        await conn.execute(
            api_keys.insert().values(
                id=str(uuid.uuid4()),
                principal_type=principal_type,
                principal_id=principal_id,
                key_hash=hash_key(key),
                token_hint=key[-4:],
                description=description,
                created_at=utcnow(),
            )
        )
        return key

    async def authenticate(self, key: str) -> Principal | None:
        """The principal a live API key belongs to, or ``None``."""
        digest = hash_key(key)
        cached = self._principals.get(digest)
        if cached is not None:
            return cached
        query = (
            sa.select(api_keys.c.key_hash, users.c.id, users.c.username)
            .join(users, users.c.id == api_keys.c.principal_id)
            .where(
                api_keys.c.key_hash == digest,
                api_keys.c.revoked_at.is_(None),
                api_keys.c.principal_type == "user",
            )
        )
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        principal = Principal("user", row.id, row.username)
        self._principals.put(digest, principal)
        return principal

    # --- organizations --------------------------------------------------------------------

    async def create_organization(
        self, name: str, display_name: str, creator: Principal
    ) -> OrganizationRecord:
        record = OrganizationRecord(str(uuid.uuid4()), name, display_name, utcnow())
        try:
            async with self._db.begin() as conn:
                await conn.execute(
                    organizations.insert().values(
                        id=record.id,
                        name=name,
                        display_name=display_name,
                        created_at=record.created_at,
                    )
                )
                if creator.type == "user":
                    await conn.execute(
                        memberships.insert().values(
                            organization_id=record.id,
                            user_id=creator.id,
                            joined_at=record.created_at,
                        )
                    )
                    await _grant(conn, record.id, creator.id, ORG_ADMIN)
        except IntegrityError:
            raise OrganizationExists(name) from None
        return record

    async def organization(self, name: str) -> OrganizationRecord:
        """The named organization; :class:`OrganizationNotFound` otherwise."""
        org = self._orgs.get(name)
        if org is None:
            async with self._db.connect() as conn:
                row = (
                    await conn.execute(sa.select(organizations).where(organizations.c.name == name))
                ).first()
            if row is None:
                raise OrganizationNotFound(name)
            org = _organization(row)
            self._orgs.put(name, org)
        return org

    async def is_member(self, org_id: str, principal: Principal) -> bool:
        if principal.type != "user":
            return False
        if self._members.get((org_id, principal.id)):
            return True
        async with self._db.connect() as conn:
            found = await conn.scalar(
                sa.select(memberships.c.user_id).where(
                    memberships.c.organization_id == org_id,
                    memberships.c.user_id == principal.id,
                )
            )
        if found is None:
            return False
        self._members.put((org_id, principal.id), True)
        return True

    async def list_organizations(self, principal: Principal) -> list[OrganizationRecord]:
        query = (
            sa.select(organizations)
            .join(memberships, memberships.c.organization_id == organizations.c.id)
            .where(memberships.c.user_id == principal.id)
            .order_by(organizations.c.name)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_organization(row) for row in rows]

    async def add_member(
        self, org: OrganizationRecord, *, username: str | None = None, user_id: str | None = None
    ) -> MembershipRecord:
        """Join an existing user (by username or id) to ``org``; 404 unknown, 409 already in."""
        condition = users.c.username == username if username else users.c.id == user_id
        async with self._db.begin() as conn:
            user = (await conn.execute(sa.select(users).where(condition))).first()
            if user is None:
                raise UserNotFound(str(username or user_id))
            existing = await conn.scalar(
                sa.select(memberships.c.user_id).where(
                    memberships.c.organization_id == org.id, memberships.c.user_id == user.id
                )
            )
            if existing is not None:
                raise AlreadyMember(str(username or user_id), org.name)
            joined_at = utcnow()
            await conn.execute(
                memberships.insert().values(
                    organization_id=org.id, user_id=user.id, joined_at=joined_at
                )
            )
            await _grant(conn, org.id, user.id, DEFAULT_MEMBER_POLICY)
        return MembershipRecord(
            org.id, user.id, user.username, user.full_name, user.email, joined_at
        )

    async def remove_member(self, org: OrganizationRecord, user_id: str) -> None:
        """Remove a member; the last member cannot leave (the organization would be orphaned)."""
        async with self._db.begin() as conn:
            count = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(memberships)
                .where(memberships.c.organization_id == org.id)
            )
            result = await conn.execute(
                memberships.delete().where(
                    memberships.c.organization_id == org.id, memberships.c.user_id == user_id
                )
            )
            if result.rowcount == 0:
                raise NotAMember(user_id, org.name)
            if count == 1:
                raise LastMember(org.name)
            await forget_subject(conn, org.id, ("user", user_id))
        self._members.discard((org.id, user_id))

    async def list_members(self, org: OrganizationRecord) -> list[MembershipRecord]:
        query = (
            sa.select(
                memberships.c.user_id,
                memberships.c.joined_at,
                users.c.username,
                users.c.full_name,
                users.c.email,
            )
            .join(users, users.c.id == memberships.c.user_id)
            .where(memberships.c.organization_id == org.id)
            .order_by(users.c.username)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            MembershipRecord(
                organization_id=org.id,
                user_id=row.user_id,
                username=row.username,
                full_name=row.full_name,
                email=row.email,
                joined_at=row.joined_at,
            )
            for row in rows
        ]

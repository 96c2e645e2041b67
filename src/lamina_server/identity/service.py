"""The identity service: users, organizations, memberships and API-key authentication.

Authentication and organization names are cached per process, each with the access mark it was
read at, and used only while the mark stands: on one machine the shared change signal
(:mod:`lamina_server.storage.signal`), on replicas the access epoch, which every access change
bumps in its own transaction, read for each request by a :class:`FreshRead` that one query
answers for a whole batch of concurrent requests. A revoked key, or one whose agent or role was
deleted, fails on the very next request, on every process. ``last_used_at`` is written at most
once a minute per key.
"""

from __future__ import annotations

import hmac
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from lamina_server.cache import TtlCache
from lamina_server.identity.errors import (
    AlreadyMember,
    LastAdmin,
    LastMember,
    NotAMember,
    OrganizationExists,
    OrganizationNotFound,
    UserExists,
    UserNotFound,
)
from lamina_server.identity.grants import EPOCH_QUERY, admit, bump_epoch, forget_subject
from lamina_server.identity.invitations import Invitations
from lamina_server.identity.keys import hash_key
from lamina_server.identity.machines import Machines, insert_key
from lamina_server.identity.tables import (
    agents,
    api_keys,
    invitations,
    memberships,
    organizations,
    roles,
    users,
)
from lamina_server.principals import Principal
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database
from lamina_server.storage.fresh_reads import FreshRead

BOOTSTRAP_USERNAME = "admin"
MEMBER_ROLES = ("admin", "member")
ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
# Names that read as a route or a product page rather than an organization.
RESERVED_ORG_NAMES = frozenset(
    {"admin", "api", "auth", "check-name", "invitations", "login", "new", "settings", "www"}
)
# A key's last_used_at is written when it is older than this (so at most once a minute).
LAST_USED_GRANULARITY = timedelta(minutes=1)
_MAX_TOUCHED = 65536


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
    role: str = "member"


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    username: str
    full_name: str
    email: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Who a key belongs to, and the access epoch when it was checked."""

    principal: Principal
    epoch: int


@dataclass(frozen=True, slots=True)
class _CachedKey:
    """A key this process authenticated, while the access mark stood at ``mark``."""

    mark: int
    key_id: str
    authenticated: Authenticated
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewUser:
    principal: Principal
    api_key: str


def _organization(row: sa.Row[Any]) -> OrganizationRecord:
    return OrganizationRecord(
        id=row.id, name=row.name, display_name=row.display_name, created_at=row.created_at
    )


_KEY_OWNER = sa.select(
    api_keys.c.id,
    api_keys.c.key_hash,
    api_keys.c.principal_type,
    api_keys.c.principal_id,
    api_keys.c.organization_id,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
    sa.func.coalesce(users.c.username, agents.c.name, roles.c.name).label("owner_name"),
    EPOCH_QUERY.scalar_subquery().label("epoch"),
).select_from(
    api_keys.outerjoin(
        users, sa.and_(api_keys.c.principal_type == "user", users.c.id == api_keys.c.principal_id)
    )
    .outerjoin(
        agents,
        sa.and_(api_keys.c.principal_type == "agent", agents.c.id == api_keys.c.principal_id),
    )
    .outerjoin(
        roles, sa.and_(api_keys.c.principal_type == "role", roles.c.id == api_keys.c.principal_id)
    )
)


class Identity:
    """Organization names and API keys resolve through in-memory caches that hold while the
    access mark stands (:meth:`access_mark`): revoking a key, deleting an agent, a role or an
    organization, or removing a member takes effect on the next request, on every process."""

    def __init__(self, db: Database, *, cache_ttl: float = 10.0) -> None:
        self._db = db
        self._orgs: TtlCache[str, OrganizationRecord] = TtlCache(cache_ttl)
        self._orgs_mark: int | None = None  # the access mark the cached names were read at
        self._epoch = FreshRead(self._read_epoch)
        # key id -> monotonic time this process last wrote its last_used_at
        self._touched: dict[str, float] = {}
        self._keys: dict[str, _CachedKey] = {}  # key digest -> what it authenticated as
        self.machines = Machines(db)
        self.invitations = Invitations(db)

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
            await admit(conn, org_id, user_id, role="admin", joined_at=now)
            key = await insert_key(conn, "user", user_id, name="bootstrap")
        return NewUser(Principal("user", user_id, BOOTSTRAP_USERNAME), key.token)

    async def create_user(
        self, username: str, *, full_name: str = "", email: str = "", org_name: str | None = None
    ) -> NewUser:
        """A user with a fresh key, optionally joined to an existing organization."""
        async with self._db.begin() as conn:
            org_id: str | None = None
            if org_name is not None:
                org_id = await conn.scalar(
                    sa.select(organizations.c.id).where(
                        organizations.c.name == org_name, organizations.c.deleted_at.is_(None)
                    )
                )
                if org_id is None:
                    raise OrganizationNotFound(org_name)
            try:
                user_id = await self._insert_user(conn, username, full_name, email)
            except IntegrityError:
                raise UserExists(username) from None
            if org_id is not None:
                await admit(conn, org_id, user_id, role="member", joined_at=utcnow())
            key = await insert_key(conn, "user", user_id, name="created by the CLI")
        return NewUser(Principal("user", user_id, username), key.token)

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

    async def user(self, user_id: str) -> UserRecord:
        async with self._db.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
        if row is None:
            raise UserNotFound(user_id)
        return UserRecord(row.id, row.username, row.full_name, row.email, row.created_at)

    async def authenticate(self, key: str) -> Authenticated | None:
        """The principal a live API key belongs to, with the access epoch read in the same
        query (what caches of its rights are checked against), or ``None`` (unknown key,
        revoked key, or an owner that no longer exists)."""
        return await self.authenticate_digest(hash_key(key))

    async def authenticate_digest(self, digest: str) -> Authenticated | None:
        """:meth:`authenticate` by the key's digest (:func:`hash_key`), as a browser session
        that signed in with the key remembers it."""
        mark = await self.access_mark()
        cached = self._keys.get(digest)
        if cached is not None and cached.mark == mark:
            await self._touch(cached.key_id, cached.authenticated.principal, cached.last_used_at)
            return cached.authenticated
        query = _KEY_OWNER.where(api_keys.c.key_hash == digest)
        row = await self._db.run_read(lambda conn: conn.execute(query).first())
        if (
            row is None
            or row.revoked_at is not None
            or row.owner_name is None
            or not hmac.compare_digest(row.key_hash, digest)
        ):
            return None
        principal = Principal(
            row.principal_type, row.principal_id, row.owner_name, row.organization_id
        )
        authenticated = Authenticated(principal, int(row.epoch or 0))
        if len(self._keys) >= _MAX_TOUCHED:
            self._keys.clear()
        self._keys[digest] = _CachedKey(mark, row.id, authenticated, row.last_used_at)
        await self._touch(row.id, principal, row.last_used_at)
        return authenticated

    async def _touch(
        self, key_id: str, principal: Principal, last_used_at: datetime | None
    ) -> None:
        """Records the key's (and its agent's or role's) use, at most once a minute: when the
        stored time is that old, and this process has not written it in that minute."""
        now = utcnow()
        if last_used_at is not None and now - last_used_at < LAST_USED_GRANULARITY:
            return
        moment = time.monotonic()
        written = self._touched.get(key_id)
        if written is not None and moment - written < LAST_USED_GRANULARITY.total_seconds():
            return
        if len(self._touched) >= _MAX_TOUCHED:
            self._touched.clear()
        self._touched[key_id] = moment
        async with self._db.begin() as conn:
            await conn.execute(
                api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=now)
            )
            owner = {"agent": agents, "role": roles}.get(principal.type)
            if owner is not None:
                await conn.execute(
                    owner.update().where(owner.c.id == principal.id).values(last_used_at=now)
                )

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
                    await admit(
                        conn, record.id, creator.id, role="admin", joined_at=record.created_at
                    )
        except IntegrityError:
            raise OrganizationExists(name) from None
        return record

    async def organization(self, name: str) -> OrganizationRecord:
        """The named organization; :class:`OrganizationNotFound` otherwise. Cached while the
        access mark stands (deleting an organization moves it), for a few seconds at most."""
        mark = await self.access_mark()
        if mark != self._orgs_mark:
            self._orgs.clear()
            self._orgs_mark = mark
        org = self._orgs.get(name)
        if org is None:
            async with self._db.connect() as conn:
                row = (
                    await conn.execute(
                        sa.select(organizations).where(
                            organizations.c.name == name, organizations.c.deleted_at.is_(None)
                        )
                    )
                ).first()
            if row is None:
                raise OrganizationNotFound(name)
            org = _organization(row)
            if self._orgs_mark == mark:
                self._orgs.put(name, org)
        return org

    async def access_mark(self) -> int:
        """What moves on every change to who may do what, as of now: the shared change signal
        on one machine (no query); else the access epoch, from a read begun after this call."""
        signal = self._db.signal
        return signal.value() if signal is not None else await self._epoch.get()

    async def _read_epoch(self) -> int:
        value = await self._db.read_scalar(EPOCH_QUERY)
        return int(value or 0)

    async def check_name(self, name: str) -> str:
        """Why ``name`` cannot name a new organization: ``invalid``, ``reserved``, ``taken``,
        or ``""`` when it is available."""
        if not ORG_NAME.match(name):
            return "invalid"
        if name in RESERVED_ORG_NAMES:
            return "reserved"
        async with self._db.connect() as conn:
            taken = await conn.scalar(
                sa.select(organizations.c.id).where(
                    organizations.c.name == name, organizations.c.deleted_at.is_(None)
                )
            )
        return "taken" if taken is not None else ""

    async def delete_organization(self, org: OrganizationRecord) -> None:
        """Soft deletion: the organization's row and data stay, its name is freed, and in the
        same transaction its agents' and roles' keys are revoked and its pending invitations
        revoked. Members lose access at once (the organization no longer resolves)."""
        now = utcnow()
        async with self._db.begin() as conn:
            result = await conn.execute(
                organizations.update()
                .where(organizations.c.id == org.id, organizations.c.deleted_at.is_(None))
                .values(deleted_at=now)
            )
            if result.rowcount == 0:
                raise OrganizationNotFound(org.name)
            await conn.execute(
                api_keys.update()
                .where(api_keys.c.organization_id == org.id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            await conn.execute(
                invitations.update()
                .where(invitations.c.organization_id == org.id, invitations.c.status == "pending")
                .values(status="revoked")
            )
            await bump_epoch(conn)  # its agents' and roles' keys stop working at once
        self._orgs.discard(org.name)

    async def is_member(self, org_id: str, principal: Principal) -> bool:
        """An agent or a role belongs to its own organization only; a user to those it joined."""
        if principal.type != "user":
            return principal.organization_id == org_id
        query = sa.select(memberships.c.user_id).where(
            memberships.c.organization_id == org_id, memberships.c.user_id == principal.id
        )
        found = await self._db.read_scalar(query)
        return found is not None

    async def list_organizations(self, principal: Principal) -> list[OrganizationRecord]:
        if principal.type != "user":
            query = sa.select(organizations).where(
                organizations.c.id == principal.organization_id,
                organizations.c.deleted_at.is_(None),
            )
        else:
            query = (
                sa.select(organizations)
                .join(memberships, memberships.c.organization_id == organizations.c.id)
                .where(memberships.c.user_id == principal.id, organizations.c.deleted_at.is_(None))
                .order_by(organizations.c.name)
            )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_organization(row) for row in rows]

    async def add_member(
        self,
        org: OrganizationRecord,
        *,
        username: str | None = None,
        user_id: str | None = None,
        role: str = "member",
    ) -> MembershipRecord:
        """Join an existing user (by username or id) to ``org`` as ``role`` (admin or member);
        404 unknown, 409 already in."""
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
            await admit(conn, org.id, user.id, role=role, joined_at=joined_at)
        return MembershipRecord(
            org.id, user.id, user.username, user.full_name, user.email, joined_at, role
        )

    async def remove_member(self, org: OrganizationRecord, user_id: str) -> None:
        """Remove a member; neither the last member nor the last admin can leave (the
        organization would be orphaned, or left without anyone to manage it)."""
        async with self._db.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(memberships.c.user_id, memberships.c.role).where(
                        memberships.c.organization_id == org.id
                    )
                )
            ).all()
            roles_by_user = {row.user_id: row.role for row in rows}
            if user_id not in roles_by_user:
                raise NotAMember(user_id, org.name)
            if len(roles_by_user) == 1:
                raise LastMember(org.name)
            admins = [uid for uid, role in roles_by_user.items() if role == "admin"]
            if admins == [user_id]:
                raise LastAdmin(org.name)
            await conn.execute(
                memberships.delete().where(
                    memberships.c.organization_id == org.id, memberships.c.user_id == user_id
                )
            )
            await forget_subject(conn, org.id, ("user", user_id))

    async def list_members(self, org: OrganizationRecord) -> list[MembershipRecord]:
        query = (
            sa.select(
                memberships.c.user_id,
                memberships.c.joined_at,
                memberships.c.role,
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
                role=row.role,
            )
            for row in rows
        ]

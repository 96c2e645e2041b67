"""S3 credentials: an access key id and a secret access key that act as the principal who
made them (a user, an agent or a role), with that principal's current rights.

SigV4 needs the secret on the server, so unlike an API key it cannot be kept as a digest: it
is sealed (AES-256-GCM) under the server's secrets key (:mod:`lamina_server.secrets`), bound to
its access key id, and shown once, when it is made.

:meth:`S3Credentials.resolve` reads the credential's row, joined with its owner and the access
epoch, on every request — or, on one machine, reuses what this process read while the shared
change signal stands (:mod:`lamina_server.storage.signal`): a revocation bumps the access
epoch, which moves the signal before its request is answered. So a revoked credential, or one
whose agent or role was deleted, is refused on the very next request, on every process and
every replica.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from lamina_server.gateway.errors import CredentialNotFound
from lamina_server.gateway.tables import s3_credentials
from lamina_server.identity import Authenticated
from lamina_server.identity.grants import EPOCH_QUERY, bump_epoch
from lamina_server.identity.tables import agents, roles, users
from lamina_server.principals import Principal
from lamina_server.secrets import Sealer, SecretScope
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database

ACCESS_KEY_PREFIX = "LMS3"
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_SEALED_AS = "secret_access_key"
_MAX_CACHED = 65536


@dataclass(frozen=True, slots=True)
class NewCredential:
    """A credential just made: the only time its secret is shown."""

    access_key_id: str
    secret_access_key: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    """A credential without its secret."""

    access_key_id: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Resolved:
    """Who a live credential acts as (and the access epoch read with it), and its secret."""

    authenticated: Authenticated
    secret_access_key: str


def _scope(access_key_id: str) -> SecretScope:
    return SecretScope("s3_credential", access_key_id)


def new_access_key_id() -> str:
    return ACCESS_KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(16))


_OWNER = sa.select(
    s3_credentials.c.principal_type,
    s3_credentials.c.principal_id,
    s3_credentials.c.organization_id,
    s3_credentials.c.nonce,
    s3_credentials.c.ciphertext,
    s3_credentials.c.revoked_at,
    sa.func.coalesce(users.c.username, agents.c.name, roles.c.name).label("owner_name"),
    EPOCH_QUERY.scalar_subquery().label("epoch"),
).select_from(
    s3_credentials.outerjoin(
        users,
        sa.and_(
            s3_credentials.c.principal_type == "user",
            users.c.id == s3_credentials.c.principal_id,
        ),
    )
    .outerjoin(
        agents,
        sa.and_(
            s3_credentials.c.principal_type == "agent",
            agents.c.id == s3_credentials.c.principal_id,
        ),
    )
    .outerjoin(
        roles,
        sa.and_(
            s3_credentials.c.principal_type == "role",
            roles.c.id == s3_credentials.c.principal_id,
        ),
    )
)


class S3Credentials:
    """Make, list, revoke and resolve S3 credentials."""

    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer
        # access key id -> (the change signal's value when read, what it resolved to)
        self._cache: dict[str, tuple[int, Resolved]] = {}

    def _owned_by(self, owner: Principal) -> sa.ColumnElement[bool]:
        return sa.and_(
            s3_credentials.c.principal_type == owner.type,
            s3_credentials.c.principal_id == owner.id,
        )

    async def create(self, owner: Principal) -> NewCredential:
        access_key_id = new_access_key_id()
        secret = secrets.token_urlsafe(30)
        nonce, ciphertext = self._sealer.seal(_scope(access_key_id), _SEALED_AS, secret)
        now = utcnow()
        async with self._db.begin() as conn:
            await conn.execute(
                s3_credentials.insert().values(
                    access_key_id=access_key_id,
                    principal_type=owner.type,
                    principal_id=owner.id,
                    organization_id=owner.organization_id,
                    nonce=nonce,
                    ciphertext=ciphertext,
                    created_at=now,
                )
            )
        return NewCredential(access_key_id, secret, now)

    async def list(self, owner: Principal) -> list[CredentialRecord]:
        """The owner's credentials, revoked ones included, oldest first; never a secret."""
        query = (
            sa.select(
                s3_credentials.c.access_key_id,
                s3_credentials.c.created_at,
                s3_credentials.c.revoked_at,
            )
            .where(self._owned_by(owner))
            .order_by(s3_credentials.c.created_at, s3_credentials.c.access_key_id)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [CredentialRecord(*row) for row in rows]

    async def revoke(self, owner: Principal, access_key_id: str) -> None:
        """Revokes the owner's credential (again: no change); :class:`CredentialNotFound` when
        the owner has none by that id. Refused from the next request on, everywhere."""
        async with self._db.begin() as conn:
            found = await conn.scalar(
                sa.select(s3_credentials.c.access_key_id).where(
                    self._owned_by(owner), s3_credentials.c.access_key_id == access_key_id
                )
            )
            if found is None:
                raise CredentialNotFound(access_key_id)
            await conn.execute(
                s3_credentials.update()
                .where(
                    s3_credentials.c.access_key_id == access_key_id,
                    s3_credentials.c.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
            await bump_epoch(conn)
        self._cache.pop(access_key_id, None)

    async def resolve(self, access_key_id: str) -> Resolved | None:
        """The live credential ``access_key_id``: its principal and secret; ``None`` when it is
        unknown, revoked, its owner is gone, or its secret does not open."""
        signal = self._db.signal
        mark = signal.value() if signal is not None else None
        cached = self._cache.get(access_key_id) if mark is not None else None
        if cached is not None and cached[0] == mark:
            return cached[1]
        query = _OWNER.where(s3_credentials.c.access_key_id == access_key_id)
        row = await self._db.run_read(lambda conn: conn.execute(query).first())
        if row is None or row.revoked_at is not None or row.owner_name is None:
            return None
        secret = self._sealer.open(_scope(access_key_id), _SEALED_AS, row.nonce, row.ciphertext)
        if secret is None:
            return None
        principal = Principal(
            row.principal_type, row.principal_id, row.owner_name, row.organization_id
        )
        resolved = Resolved(Authenticated(principal, int(row.epoch or 0)), secret)
        if mark is not None:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[access_key_id] = (mark, resolved)
        return resolved

"""Secrets: put (create or update), get (decrypted), list (never values), delete, and every
value of a scope at once for a sandbox's environment."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from lamina_server.principals import Principal
from lamina_server.secrets.errors import (
    InvalidSecretKey,
    InvalidSecretValue,
    SecretNotFound,
    SecretUnreadable,
)
from lamina_server.secrets.sealing import Sealer, SecretScope
from lamina_server.secrets.tables import secrets
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database

log = logging.getLogger(__name__)

KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,255}$"
_KEY = re.compile(KEY_PATTERN)


@dataclass(frozen=True, slots=True)
class SecretEntry:
    """A secret without its value."""

    key: str
    created_by_type: str
    created_by: str
    created_at: datetime
    updated_at: datetime


def check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise InvalidSecretKey(
            f"secret key {key[:300]!r} must match {KEY_PATTERN} (a letter or '_', then up to "
            "255 letters, digits, '_' or '-')"
        )


def check_value(value: str) -> None:
    """A value is a non-empty string that can be an environment variable's value."""
    if not value:
        raise InvalidSecretValue("value: must not be empty")
    if "\x00" in value:
        raise InvalidSecretValue("value: must not contain NUL (it becomes an environment value)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSecretValue("value: must be valid UTF-8") from None


def _in_scope(scope: SecretScope) -> sa.ColumnElement[bool]:
    return sa.and_(secrets.c.scope_type == scope.type, secrets.c.scope_id == scope.id)


class Secrets:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self._db = db
        self._sealer = sealer

    async def put(self, scope: SecretScope, key: str, value: str, *, author: Principal) -> None:
        """Creates the secret, or replaces its value (its creator and creation time stay)."""
        check_key(key)
        check_value(value)
        nonce, ciphertext = self._sealer.seal(scope, key, value)
        now = utcnow()
        dialect = sqlite if self._db.is_sqlite else postgresql
        statement = dialect.insert(secrets).values(
            scope_type=scope.type,
            scope_id=scope.id,
            key=key,
            nonce=nonce,
            ciphertext=ciphertext,
            created_by_type=author.type,
            created_by=author.id,
            created_at=now,
            updated_at=now,
        )
        statement = statement.on_conflict_do_update(
            index_elements=[secrets.c.scope_type, secrets.c.scope_id, secrets.c.key],
            set_={"nonce": nonce, "ciphertext": ciphertext, "updated_at": now},
        )
        async with self._db.begin() as conn:
            await conn.execute(statement)

    async def get(self, scope: SecretScope, key: str) -> str:
        """The decrypted value; :class:`SecretUnreadable` (logged) when it does not decrypt."""
        check_key(key)
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(secrets.c.nonce, secrets.c.ciphertext).where(
                        _in_scope(scope), secrets.c.key == key
                    )
                )
            ).first()
        if row is None:
            raise SecretNotFound(key)
        return self._open(scope, key, row.nonce, row.ciphertext)

    async def list(self, scope: SecretScope) -> list[SecretEntry]:
        """Every secret of the scope, by key, without values."""
        query = (
            sa.select(
                secrets.c.key,
                secrets.c.created_by_type,
                secrets.c.created_by,
                secrets.c.created_at,
                secrets.c.updated_at,
            )
            .where(_in_scope(scope))
            .order_by(secrets.c.key)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [SecretEntry(*row) for row in rows]

    async def delete(self, scope: SecretScope, key: str) -> None:
        check_key(key)
        async with self._db.begin() as conn:
            result = await conn.execute(
                secrets.delete().where(_in_scope(scope), secrets.c.key == key)
            )
        if result.rowcount == 0:
            raise SecretNotFound(key)

    async def purge(self, scope: SecretScope) -> None:
        """Deletes every secret of the scope (its repository or agent is gone)."""
        async with self._db.begin() as conn:
            await conn.execute(secrets.delete().where(_in_scope(scope)))

    async def values(self, scope: SecretScope) -> dict[str, str]:
        """Every secret of the scope, decrypted: key -> value."""
        async with self._db.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(secrets.c.key, secrets.c.nonce, secrets.c.ciphertext).where(
                        _in_scope(scope)
                    )
                )
            ).all()
        return {row.key: self._open(scope, row.key, row.nonce, row.ciphertext) for row in rows}

    def _open(self, scope: SecretScope, key: str, nonce: bytes, ciphertext: bytes) -> str:
        value = self._sealer.open(scope, key, nonce, ciphertext)
        if value is None:
            log.error(
                "secret %r of %s %s does not decrypt with this server's secrets key: the "
                "stored value was altered, or the key changed",
                key,
                scope.type,
                scope.id,
            )
            raise SecretUnreadable(key)
        return value

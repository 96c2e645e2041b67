"""Browser sessions: how a member signs in to the server's pages (the approval page).

A member signs in with an API key (:meth:`WebSessions.start`); the browser then holds a random
session token in a cookie. The server stores only the token's digest, with the digest of the
key that signed in, a CSRF token for the session's forms, and an expiry. Each request resolves
the session and authenticates its key again (:meth:`WebSessions.resolve`), so revoking the key,
or deleting its agent or role, ends its browser sessions on the next request too.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from lamina_server.identity.keys import hash_key
from lamina_server.identity.service import Authenticated
from lamina_server.identity.tables import web_sessions
from lamina_server.storage.columns import utcnow
from lamina_server.storage.db import Database

LIFETIME = timedelta(hours=12)

Authenticator = Callable[[str], Awaitable[Authenticated | None]]


@dataclass(frozen=True, slots=True)
class WebSession:
    """A signed-in browser: who it acts as, and the token its forms must carry."""

    authenticated: Authenticated
    csrf_token: str


@dataclass(frozen=True, slots=True)
class NewWebSession:
    token: str  # the cookie's value; shown once, stored as a digest
    session: WebSession
    expires_at: datetime


class WebSessions:
    def __init__(
        self, db: Database, authenticate_digest: Authenticator, lifetime: timedelta = LIFETIME
    ) -> None:
        self._db = db
        self._authenticate = authenticate_digest
        self._lifetime = lifetime

    async def start(self, api_key: str) -> NewWebSession | None:
        """A session for the holder of a live ``api_key`` (``None`` for any other key).
        Sessions that expired are dropped in the same transaction."""
        key_hash = hash_key(api_key)
        authenticated = await self._authenticate(key_hash)
        if authenticated is None:
            return None
        token, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        expires_at = now + self._lifetime
        async with self._db.begin() as conn:
            await conn.execute(sa.delete(web_sessions).where(web_sessions.c.expires_at <= now))
            await conn.execute(
                sa.insert(web_sessions).values(
                    token_hash=hash_key(token),
                    key_hash=key_hash,
                    csrf_token=csrf_token,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return NewWebSession(token, WebSession(authenticated, csrf_token), expires_at)

    async def resolve(self, token: str) -> WebSession | None:
        """The live session ``token`` names, its key authenticated now; else ``None``."""
        query = sa.select(web_sessions.c.key_hash, web_sessions.c.csrf_token).where(
            web_sessions.c.token_hash == hash_key(token), web_sessions.c.expires_at > utcnow()
        )
        row = await self._db.run_read(lambda conn: conn.execute(query).first())
        if row is None:
            return None
        authenticated = await self._authenticate(row.key_hash)
        if authenticated is None:
            return None
        return WebSession(authenticated, row.csrf_token)

    async def end(self, token: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                sa.delete(web_sessions).where(web_sessions.c.token_hash == hash_key(token))
            )

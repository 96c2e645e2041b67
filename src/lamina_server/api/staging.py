"""Sharing database work between concurrent uploads into the same session.

Many clients upload many small objects into one session at once. :class:`Staging` keeps the
metadata database from serialising them one request at a time: :meth:`Staging.put` is a group
commit (:mod:`lamina_server.storage.group_commit`). Finalizes that arrive while a staging
transaction for their session is running wait for it, then the first of them stages all of
them in one ``stage_put_many`` transaction. Each request still answers only after its own entry
is committed, and a failure (the session was closed meanwhile) reaches every request of that
batch, as it would have one by one. Batches are keyed by (repository id, session id) and
forgotten when no request uses them.

Upload starts ask whether their session is open. The app's engine, a
:class:`CachingVersionStore`, answers most of them from memory: it remembers the sessions it
found open until it closes them, and coalesces concurrent reads of the same session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import anyio

from lamina_server.identity.cache import TtlCache
from lamina_server.storage.db import Database
from lamina_server.storage.group_commit import GroupCommit
from lamina_server.versioning import (
    Committer,
    Entry,
    SessionClosed,
    SessionInfo,
    SessionNotFound,
    VersionStore,
)

_Key = tuple[str, str]


@dataclass(eq=False)
class _Check:
    event: anyio.Event = field(default_factory=anyio.Event)
    result: SessionInfo | None = None
    error: Exception | None = None


class CachingVersionStore(VersionStore):
    """The versioning engine, remembering for ``ttl`` seconds the sessions it found open.

    Checks that miss while a read of the same session is in flight take that read's answer.
    Committing or rolling back a session through this store forgets it, and so does a staging
    transaction that finds it closed. A session closed by another process on the same database
    is only forgotten that way or when its ``ttl`` runs out, so until then an upload may start
    in it; finalizing the upload stages in a transaction that checks the session, and fails.
    """

    def __init__(self, db: Database, *, ttl: float = 10.0, node_cache_size: int = 2048) -> None:
        super().__init__(db, node_cache_size=node_cache_size)
        self._open: TtlCache[_Key, SessionInfo] = TtlCache(ttl)
        self._checks: dict[_Key, _Check] = {}
        self._closings = 0  # sessions forgotten so far: a read that overlaps one is not kept

    async def open_session(self, repository_id: str, session_id: str) -> SessionInfo:
        key = (repository_id, session_id)
        while True:
            cached = self._open.get(key)
            if cached is not None:
                return cached
            check = self._checks.get(key)
            if check is None:
                check = self._checks[key] = _Check()
                closings = self._closings
                try:
                    check.result = await super().open_session(repository_id, session_id)
                except Exception as exc:
                    check.error = exc
                finally:
                    del self._checks[key]
                    check.event.set()
                if check.result is not None and closings == self._closings:
                    self._open.put(key, check.result)
            else:
                await check.event.wait()
            if check.error is not None:
                raise check.error
            if check.result is not None:
                return check.result
            # the read was cancelled under another request: ask again

    async def stage_put_many(
        self, repository_id: str, session_id: str, items: Sequence[tuple[str, Entry]]
    ) -> None:
        try:
            await super().stage_put_many(repository_id, session_id, items)
        except (SessionClosed, SessionNotFound):
            self._forget(repository_id, session_id)
            raise

    async def commit_session(
        self,
        repository_id: str,
        session_id: str,
        *,
        message: str,
        metadata: Mapping[str, str],
        committer: Committer,
    ) -> str:
        try:
            return await super().commit_session(
                repository_id, session_id, message=message, metadata=metadata, committer=committer
            )
        finally:
            self._forget(repository_id, session_id)

    async def rollback_session(self, repository_id: str, session_id: str) -> None:
        try:
            await super().rollback_session(repository_id, session_id)
        finally:
            self._forget(repository_id, session_id)

    def _forget(self, repository_id: str, session_id: str) -> None:
        self._closings += 1
        self._open.discard((repository_id, session_id))


class Staging:
    """Group-committed puts, per session."""

    def __init__(self, versions: VersionStore) -> None:
        self._versions = versions
        self._puts: dict[_Key, GroupCommit[tuple[str, Entry], None]] = {}

    async def put(self, repository_id: str, session_id: str, path: str, entry: Entry) -> None:
        """Stages ``entry`` at ``path``; returns once it is committed to the database."""
        key = (repository_id, session_id)
        puts = self._puts.get(key)
        if puts is None:

            async def flush(items: Sequence[tuple[str, Entry]]) -> list[None]:
                # One entry per path: the later of two puts to a path wins, as it would alone.
                latest = list(dict(items).items())
                await self._versions.stage_put_many(repository_id, session_id, latest)
                return [None] * len(items)

            puts = self._puts[key] = GroupCommit(flush)
        try:
            await puts.submit((path, entry))
        finally:
            if puts.idle and self._puts.get(key) is puts:
                del self._puts[key]

"""Sharing database and disk work between concurrent uploads into the same session.

Many clients upload many small objects into one session at once. :class:`Staging` keeps the
metadata database and the disk from serialising them one request at a time: :meth:`Staging.put`
is a group commit (:mod:`lamina_server.storage.group_commit`). Finalizes that arrive while a
batch for their session is running wait for it, then the first of them takes all of them: it
claims their uploads in one :meth:`~lamina_server.storage.blobs.BlobStore.claim_many` (one pack
sync for all their bytes), then stages every entry whose upload was claimed in one
``stage_put_many`` transaction. Each request still answers only after its own entry is
committed; a claim that fails (the token was used already) fails only its own request, and a
failed transaction (the session was closed meanwhile) every request of that batch, as it would
have one by one. Batches are keyed by (repository id, session id) and forgotten when no request
uses them.

Upload starts ask whether their session is open. The app's engine, a
:class:`CachingVersionStore`, answers most of them from memory: it remembers the sessions it
found open until it closes them, and coalesces concurrent reads of the same session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import anyio

from lamina_server.identity.cache import TtlCache
from lamina_server.storage.blobs import BlobError, BlobStore
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
_Put = tuple[str, Entry, bool]  # path, entry, whether its address is an upload to claim


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
    """Group-committed puts, per session, claiming their uploads first."""

    def __init__(self, versions: VersionStore, blobs: BlobStore) -> None:
        self._versions = versions
        self._blobs = blobs
        self._puts: dict[_Key, GroupCommit[_Put, Entry | BlobError]] = {}

    async def put(
        self, repository_id: str, session_id: str, path: str, entry: Entry, *, claim: bool = False
    ) -> Entry:
        """Stages ``entry`` at ``path``; returns it once it is committed to the database.

        With ``claim``, ``entry.address`` is a pending upload, claimed in the same batch: the
        entry staged and returned carries the address the claim answers, and a failed claim
        raises its :class:`BlobError` (nothing is staged for it).
        """
        key = (repository_id, session_id)
        puts = self._puts.get(key)
        if puts is None:

            async def flush(items: Sequence[_Put]) -> list[Entry | BlobError]:
                return await self._flush(repository_id, session_id, items)

            puts = self._puts[key] = GroupCommit(flush)
        try:
            outcome = await puts.submit((path, entry, claim))
        finally:
            if puts.idle and self._puts.get(key) is puts:
                del self._puts[key]
        if isinstance(outcome, BlobError):
            raise outcome
        return outcome

    async def _flush(
        self, repository_id: str, session_id: str, items: Sequence[_Put]
    ) -> list[Entry | BlobError]:
        outcomes: list[Entry | BlobError] = [entry for _, entry, _ in items]
        claims = [index for index, (_, _, claim) in enumerate(items) if claim]
        if claims:
            claimed = await self._blobs.claim_many([items[index][1].address for index in claims])
            for index, address in zip(claims, claimed, strict=True):
                entry = items[index][1]
                outcomes[index] = (
                    address if isinstance(address, BlobError) else replace(entry, address=address)
                )
        # One entry per path: the later of two puts to a path wins, as it would alone.
        latest = {
            path: outcome
            for (path, _, _), outcome in zip(items, outcomes, strict=True)
            if isinstance(outcome, Entry)
        }
        if latest:
            await self._versions.stage_put_many(repository_id, session_id, list(latest.items()))
        return outcomes

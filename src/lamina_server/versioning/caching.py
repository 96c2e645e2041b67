"""The versioning engine with a memory of open sessions, for the checks of upload starts.

Upload starts ask whether their session is open. The app's engine, a
:class:`CachingVersionStore`, answers most of them from memory: it remembers the sessions it
found open until it closes them, and coalesces concurrent reads of the same session.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import anyio
import sqlalchemy as sa

from lamina_server.cache import TtlCache
from lamina_server.principals import Committer
from lamina_server.storage.db import Database
from lamina_server.versioning.errors import SessionClosed, SessionNotFound
from lamina_server.versioning.models import Entry, SessionInfo
from lamina_server.versioning.recorder import NO_RECORDER, Recorder
from lamina_server.versioning.store import VersionStore

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

    def __init__(
        self,
        db: Database,
        *,
        ttl: float = 10.0,
        node_cache_size: int = 2048,
        recorder: Recorder = NO_RECORDER,
        on_landed: Callable[[str, str], None] | None = None,
    ) -> None:
        super().__init__(
            db, node_cache_size=node_cache_size, recorder=recorder, on_landed=on_landed
        )
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
        held: bool = False,
        also: Callable[[sa.Connection, str], None] | None = None,
    ) -> str:
        try:
            return await super().commit_session(
                repository_id,
                session_id,
                message=message,
                metadata=metadata,
                committer=committer,
                held=held,
                also=also,
            )
        finally:
            self._forget(repository_id, session_id)

    async def hold_session(
        self,
        repository_id: str,
        session_id: str,
        also: Callable[[sa.Connection], None] | None = None,
    ) -> None:
        try:
            await super().hold_session(repository_id, session_id, also)
        finally:
            self._forget(repository_id, session_id)

    async def rollback_session(
        self,
        repository_id: str,
        session_id: str,
        also: Callable[[sa.Connection], None] | None = None,
    ) -> None:
        try:
            await super().rollback_session(repository_id, session_id, also)
        finally:
            self._forget(repository_id, session_id)

    def _forget(self, repository_id: str, session_id: str) -> None:
        self._closings += 1
        self._open.discard((repository_id, session_id))

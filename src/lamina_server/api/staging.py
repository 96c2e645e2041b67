"""Sharing database work between concurrent uploads into the same session.

Many clients upload many small objects into one session at once. :class:`Staging` keeps the
metadata database from serialising them one request at a time:

- :meth:`Staging.put` is a group commit: finalizes that arrive while a staging transaction for
  their session is running wait for it, then the first of them stages all of them in one
  ``stage_put_many`` transaction. Each request still answers only after its own entry is
  committed, and a failure (the session was closed meanwhile) reaches every request of that
  batch, as it would have one by one.
- :meth:`Staging.open_session` coalesces the "is this session open?" reads of upload starts: a
  check that arrives while one for the same session is in flight takes that one's answer.

Both are keyed by (repository id, session id) and forget a key when no request uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from lamina_server.versioning import Entry, SessionInfo, VersionStore

_Key = tuple[str, str]


@dataclass(eq=False)
class _Put:
    path: str
    entry: Entry
    done: bool = False
    error: Exception | None = None


@dataclass(eq=False)
class _Session:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    pending: list[_Put] = field(default_factory=list)
    users: int = 0


@dataclass(eq=False)
class _Check:
    event: anyio.Event = field(default_factory=anyio.Event)
    result: SessionInfo | None = None
    error: Exception | None = None


class Staging:
    """Group-committed puts and coalesced session checks, per session."""

    def __init__(self, versions: VersionStore) -> None:
        self._versions = versions
        self._sessions: dict[_Key, _Session] = {}
        self._checks: dict[_Key, _Check] = {}

    async def put(self, repository_id: str, session_id: str, path: str, entry: Entry) -> None:
        """Stages ``entry`` at ``path``; returns once it is committed to the database."""
        key = (repository_id, session_id)
        state = self._sessions.setdefault(key, _Session())
        item = _Put(path, entry)
        state.pending.append(item)
        state.users += 1
        try:
            async with state.lock:
                if not item.done:
                    await self._flush(state, repository_id, session_id)
        finally:
            state.users -= 1
            if item in state.pending:  # cancelled before any batch took it
                state.pending.remove(item)
            if state.users == 0:
                del self._sessions[key]
        if item.error is not None:
            raise item.error

    async def _flush(self, state: _Session, repository_id: str, session_id: str) -> None:
        batch, state.pending = state.pending, []
        # One entry per path: the later of two puts to the same path wins, as it would alone.
        items = list({put.path: put.entry for put in batch}.items())
        try:
            await self._versions.stage_put_many(repository_id, session_id, items)
        except Exception as exc:
            for put in batch:
                put.done, put.error = True, exc
        except BaseException:
            # Cancelled mid-flush: hand the others back to whoever takes the lock next.
            state.pending[:0] = batch
            raise
        else:
            for put in batch:
                put.done = True

    async def open_session(self, repository_id: str, session_id: str) -> SessionInfo:
        """The open session, or the engine's SessionNotFound / SessionClosed."""
        key = (repository_id, session_id)
        while True:
            check = self._checks.get(key)
            if check is None:
                check = self._checks[key] = _Check()
                try:
                    check.result = await self._versions.open_session(repository_id, session_id)
                except Exception as exc:
                    check.error = exc
                finally:
                    del self._checks[key]
                    check.event.set()
            else:
                await check.event.wait()
            if check.error is not None:
                raise check.error
            if check.result is not None:
                return check.result
            # the query was cancelled under another request: ask again

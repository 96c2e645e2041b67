"""The seam where what the engine changes is recorded in the transaction that changes it.

:class:`~lamina_server.versioning.store.VersionStore` calls its recorder's
:meth:`Recorder.record` once per change, inside the write transaction of that change, after
the change is written and before the transaction commits: creating a repository's first
commit, opening a session, each staging transaction (one event for a batch of puts, listing
its paths), a commit, a rollback, a revert. If ``record`` raises, the transaction rolls back
and the change does not land; what ``record`` writes through ``conn`` lands with it or not at
all. A commit that plans again after losing a race records once, for the attempt that lands.

``record`` is synchronous: it runs on the transaction's own connection, which on SQLite is
held in a worker thread. The default, :data:`NO_RECORDER`, does nothing; :class:`Recorders`
tells several recorders, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import sqlalchemy as sa

from lamina_server.principals import Committer

Action = Literal[
    "init_repository",
    "create_session",
    "rollback_session",
    "stage_put",
    "stage_delete",
    "stage_copy",
    "commit",
    "revert",
]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """What one write transaction changed."""

    action: Action
    repository_id: str
    session_id: str | None = None
    paths: tuple[str, ...] = ()  # staging: the paths staged (for a copy, the destination)
    commit_id: str | None = None  # the commit created (init, commit, revert)
    reverted: str | None = None  # revert: the commit undone
    principal: Committer | None = None  # who, when the engine is told (not for staging)


class Recorder(Protocol):
    def record(self, conn: sa.Connection, event: ChangeEvent) -> None:
        """Records ``event`` through ``conn``, in the transaction of the change."""
        ...


class NoRecorder:
    """Records nothing."""

    def record(self, conn: sa.Connection, event: ChangeEvent) -> None:
        return None


NO_RECORDER = NoRecorder()


class Recorders:
    """Tells each of ``recorders`` of every event, in order; the first that raises stops the
    others and the change."""

    def __init__(self, *recorders: Recorder) -> None:
        self.recorders = recorders

    def record(self, conn: sa.Connection, event: ChangeEvent) -> None:
        for recorder in self.recorders:
            recorder.record(conn, event)

"""The engine's SQL rows: HEAD, commits and sessions read and written, staged changes looked up.

Synchronous SQLAlchemy Core calls on the connection of a read snapshot or write transaction.
Rows come back as SQLAlchemy rows; :func:`commit_info` and :func:`session_info` turn them into
the engine's value types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from lamina_server.principals import Committer
from lamina_server.versioning import canonical
from lamina_server.versioning.codec import dump_json, from_micros, now_micros
from lamina_server.versioning.errors import RefNotFound, SessionClosed, SessionNotFound
from lamina_server.versioning.models import CommitInfo, SessionInfo
from lamina_server.versioning.tables import commits, refs, repo_sessions, staged_changes

LOOKUP_BATCH = 500  # paths per IN (...) lookup


# --- HEAD and commits --------------------------------------------------------------------------


def head_or_none(conn: sa.Connection, repository_id: str) -> str | None:
    head: str | None = conn.execute(
        sa.select(refs.c.head).where(refs.c.repository_id == repository_id)
    ).scalar_one_or_none()
    return head


def head(conn: sa.Connection, repository_id: str) -> str:
    found = head_or_none(conn, repository_id)
    if found is None:
        raise RefNotFound("HEAD")
    return found


def lock_head(conn: sa.Connection, repository_id: str) -> None:
    """In a write transaction: hold HEAD's row until it ends, so that a commit planned after
    this lands at once (a no-op on SQLite, whose write transaction already excludes others)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.select(refs.c.head).where(refs.c.repository_id == repository_id).with_for_update()
        )


def move_head(conn: sa.Connection, repository_id: str, expected: str, new: str) -> bool:
    """Compare-and-swap: HEAD becomes ``new`` if it still is ``expected``."""
    moved = conn.execute(
        sa.update(refs)
        .where(refs.c.repository_id == repository_id, refs.c.head == expected)
        .values(head=new)
    )
    return bool(moved.rowcount == 1)


def commit_row_or_none(conn: sa.Connection, repository_id: str, commit_id: str) -> Any:
    return conn.execute(
        sa.select(commits).where(
            commits.c.repository_id == repository_id, commits.c.id == commit_id
        )
    ).one_or_none()


def commit_row(conn: sa.Connection, repository_id: str, commit_id: str) -> Any:
    row = commit_row_or_none(conn, repository_id, commit_id)
    if row is None:
        raise RefNotFound(commit_id)
    return row


def root(conn: sa.Connection, repository_id: str, commit_id: str) -> str:
    """The id of the root tree node of a commit."""
    found: str | None = conn.execute(
        sa.select(commits.c.meta_range_id).where(
            commits.c.repository_id == repository_id, commits.c.id == commit_id
        )
    ).scalar_one_or_none()
    if found is None:
        raise RefNotFound(commit_id)
    return found


def commit_info(row: Any) -> CommitInfo:
    return CommitInfo(
        id=row.id,
        parents=tuple(canonical.loads(row.parents)),
        message=row.message,
        metadata=canonical.loads(row.metadata),
        committer=Committer(row.committer_type, row.committer_id, row.committer_name),
        creation_date=from_micros(row.created_at),
        meta_range_id=row.meta_range_id,
        object_count=row.object_count,
        total_size=row.total_size,
    )


def commit_record(
    repository_id: str,
    *,
    parents: tuple[str, ...],
    root: str,
    stats: tuple[int, int],
    message: str,
    metadata: Mapping[str, str],
    committer: Committer,
) -> tuple[str, dict[str, Any]]:
    """A new commit's id (SHA-256 of its content and creation time) and its row."""
    created_at = now_micros()
    identity = dump_json(
        {
            "repository": repository_id,
            "parents": list(parents),
            "tree": root,
            "message": message,
            "metadata": dict(metadata),
            "committer": [committer.type, committer.id, committer.name],
            "created_at": created_at,
        }
    )
    commit_id = hashlib.sha256(identity.encode()).hexdigest()
    row = {
        "repository_id": repository_id,
        "id": commit_id,
        "first_parent": parents[0] if parents else None,
        "parents": dump_json(list(parents)),
        "message": message,
        "metadata": dump_json(dict(metadata)),
        "committer_type": committer.type,
        "committer_id": committer.id,
        "committer_name": committer.name,
        "created_at": created_at,
        "meta_range_id": root,
        "object_count": stats[0],
        "total_size": stats[1],
    }
    return commit_id, row


# --- sessions ----------------------------------------------------------------------------------

# Built once: the staging path runs these in every transaction.
_SESSION_ROW = sa.select(repo_sessions).where(repo_sessions.c.id == sa.bindparam("session"))
OPEN = "open"
AWAITING_APPROVAL = "awaiting_approval"  # held: nothing more is staged; approval commits it

_BUMP_OPEN_SESSION = (
    sa.update(repo_sessions)
    .where(
        repo_sessions.c.id == sa.bindparam("session"),
        repo_sessions.c.repository_id == sa.bindparam("repository"),
        repo_sessions.c.state == "open",
    )
    .values(change_seq=repo_sessions.c.change_seq + 1)
)


def session_row(conn: sa.Connection, repository_id: str, session_id: str) -> Any:
    row = conn.execute(_SESSION_ROW, {"session": session_id}).one_or_none()
    if row is None or row.repository_id != repository_id:
        raise SessionNotFound(session_id)
    return row


def open_session_row(
    conn: sa.Connection, repository_id: str, session_id: str, state: str = OPEN
) -> Any:
    """The session's row, if it is in ``state`` (open, or held for approval)."""
    row = session_row(conn, repository_id, session_id)
    if row.state != state:
        raise SessionClosed(session_id, row.state)
    return row


def lock_open_session(conn: sa.Connection, repository_id: str, session_id: str) -> Any:
    """In a write transaction: check the session is open and bump its change counter.

    The update comes first so that, on databases with row locks, it serializes against a
    concurrent commit of the same session.
    """
    bumped = conn.execute(_BUMP_OPEN_SESSION, {"session": session_id, "repository": repository_id})
    row = session_row(conn, repository_id, session_id)
    if bumped.rowcount != 1:
        raise SessionClosed(session_id, row.state)
    return row


def open_sessions(
    conn: sa.Connection, repository_id: str, *, after: str | None, amount: int
) -> tuple[list[SessionInfo], bool]:
    """Up to ``amount`` of the repository's sessions that are open or held for approval, in
    id order after ``after``; and whether there are more."""
    query = (
        sa.select(repo_sessions)
        .where(
            repo_sessions.c.repository_id == repository_id,
            repo_sessions.c.state.in_((OPEN, AWAITING_APPROVAL)),
        )
        .order_by(repo_sessions.c.id)
        .limit(amount + 1)
    )
    if after is not None:
        query = query.where(repo_sessions.c.id > after)
    found = [session_info(row) for row in conn.execute(query)]
    return found[:amount], len(found) > amount


def session_info(row: Any) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        repository_id=row.repository_id,
        base_commit=row.base_commit,
        state=row.state,
        created_by=Committer(row.created_by_type, row.created_by_id, row.created_by_name),
        created_at=from_micros(row.created_at),
        commit_id=row.commit_id,
    )


# --- staged changes ----------------------------------------------------------------------------


# Built once: staging runs it for every batch of puts, and building a statement costs more
# than running it.
_STAGED_AT = sa.select(staged_changes.c.path, staged_changes.c.entry).where(
    staged_changes.c.session_id == sa.bindparam("session_id"),
    staged_changes.c.path.in_(sa.bindparam("paths", expanding=True)),
)


def staged_values(conn: sa.Connection, session_id: str, paths: Sequence[str]) -> dict[str, Any]:
    """Staged payloads of those ``paths`` that have a staged change (None: staged delete)."""
    found: dict[str, Any] = {}
    for start in range(0, len(paths), LOOKUP_BATCH):
        batch = list(paths[start : start + LOOKUP_BATCH])
        for path, entry in conn.execute(_STAGED_AT, {"session_id": session_id, "paths": batch}):
            found[path] = None if entry is None else canonical.loads(entry)
    return found


def staged_paths(conn: sa.Connection, session_id: str, limit: int) -> list[str]:
    c = staged_changes.c
    query = sa.select(c.path).where(c.session_id == session_id).order_by(c.path).limit(limit)
    return list(conn.execute(query).scalars())


def clear_staged(conn: sa.Connection, session_id: str) -> None:
    conn.execute(sa.delete(staged_changes).where(staged_changes.c.session_id == session_id))

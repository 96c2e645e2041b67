"""Session writes: opening and rolling back sessions, and staging changes in them.

Each is a synchronous function of one write transaction's connection. Every staging write
first bumps the session's change counter (:func:`.rows.lock_open_session`), which is how a
commit planned before it notices and plans again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from lamina_server.principals import Committer
from lamina_server.versioning import books, rows
from lamina_server.versioning.codec import dump_json, entry_value, now_micros, value_entry
from lamina_server.versioning.errors import ObjectNotFound, SessionClosed
from lamina_server.versioning.merge import values_at
from lamina_server.versioning.models import Entry, SessionInfo
from lamina_server.versioning.reads import session_value
from lamina_server.versioning.sql import insert_new_staged, upsert_staged
from lamina_server.versioning.tables import repo_sessions, staged_changes
from lamina_server.versioning.tree import Tree


def create(
    conn: sa.Connection, repository_id: str, session_id: str, created_by: Committer
) -> SessionInfo:
    conn.execute(
        sa.insert(repo_sessions).values(
            id=session_id,
            repository_id=repository_id,
            base_commit=rows.head(conn, repository_id),
            state="open",
            created_by_type=created_by.type,
            created_by_id=created_by.id,
            created_by_name=created_by.name,
            created_at=now_micros(),
            commit_id=None,
            change_seq=0,
        )
    )
    return rows.session_info(rows.session_row(conn, repository_id, session_id))


def roll_back(conn: sa.Connection, repository_id: str, session_id: str) -> None:
    """Rolls back an open session, or one held for approval (its rejection)."""
    rolled = conn.execute(
        sa.update(repo_sessions)
        .where(
            repo_sessions.c.id == session_id,
            repo_sessions.c.repository_id == repository_id,
            repo_sessions.c.state.in_((rows.OPEN, rows.AWAITING_APPROVAL)),
        )
        .values(state="rolled_back", change_seq=repo_sessions.c.change_seq + 1)
    )
    if rolled.rowcount != 1:
        raise SessionClosed(session_id, rows.session_row(conn, repository_id, session_id).state)
    books.roll_back(conn, repository_id, session_id, now_micros())
    rows.clear_staged(conn, session_id)


def hold(conn: sa.Connection, repository_id: str, session_id: str) -> None:
    """Holds an open session for approval: nothing more can be staged in it, and only
    approval commits it (or a rollback drops it)."""
    rows.lock_open_session(conn, repository_id, session_id)
    conn.execute(
        sa.update(repo_sessions)
        .where(repo_sessions.c.id == session_id)
        .values(state=rows.AWAITING_APPROVAL)
    )


def stage_puts(
    conn: sa.Connection, repository_id: str, session_id: str, latest: Mapping[str, Entry]
) -> None:
    """Stages one entry per path (releasing the blobs of staged entries they replace). New
    paths, the usual case, take one insert; only paths staged before are looked up."""
    rows.lock_open_session(conn, repository_id, session_id)
    values = {path: entry_value(e) for path, e in latest.items()}
    staged = [
        {"session_id": session_id, "path": path, "entry": dump_json(value)}
        for path, value in values.items()
    ]
    fresh = insert_new_staged(conn, staged)
    again = [row for row in staged if row["path"] not in fresh]
    if again:
        _replace_staged(
            conn, repository_id, session_id, {row["path"]: values[row["path"]] for row in again}
        )
        upsert_staged(conn, again)


def _replace_staged(
    conn: sa.Connection, repository_id: str, session_id: str, values: Mapping[str, Any]
) -> None:
    """Releases the blobs of what the session staged at those paths that ``values`` replace
    with another address (their GC books: :func:`books.unstaged`)."""
    previous = rows.staged_values(conn, session_id, list(values))
    replaced = [
        old for path, old in previous.items() if old is not None and old[0] != values[path][0]
    ]
    books.unstaged(conn, repository_id, replaced, now_micros())


def stage_deletes(
    conn: sa.Connection, tree: Tree, repository_id: str, session_id: str, unique: Sequence[str]
) -> list[str]:
    """Stages deletes of the sorted, distinct paths ``unique``; returns those that existed in
    the session's view."""
    row = rows.lock_open_session(conn, repository_id, session_id)
    base = rows.root(conn, repository_id, row.base_commit)
    staged = rows.staged_values(conn, session_id, unique)
    base_values = values_at(tree, base, unique)
    tombstones: list[dict[str, Any]] = []
    unstage: list[str] = []
    existed: list[str] = []
    for path, old in zip(unique, base_values, strict=True):
        current = staged.get(path, old)
        if current is None:
            continue
        existed.append(path)
        if old is None:
            unstage.append(path)  # only ever staged: forget it
        else:
            tombstones.append({"session_id": session_id, "path": path, "entry": None})
    books.unstaged(
        conn, repository_id, [v for p in existed if (v := staged.get(p)) is not None], now_micros()
    )
    upsert_staged(conn, tombstones)
    for start in range(0, len(unstage), rows.LOOKUP_BATCH):
        conn.execute(
            sa.delete(staged_changes).where(
                staged_changes.c.session_id == session_id,
                staged_changes.c.path.in_(unstage[start : start + rows.LOOKUP_BATCH]),
            )
        )
    return existed


def stage_copy(
    conn: sa.Connection,
    tree: Tree,
    repository_id: str,
    session_id: str,
    source: str,
    destination: str,
) -> Entry:
    row = rows.lock_open_session(conn, repository_id, session_id)
    value = session_value(conn, tree, repository_id, row, source)
    if value is None:
        raise ObjectNotFound(source)
    copied = [*value[:4], now_micros(), value[5]]
    _replace_staged(conn, repository_id, session_id, {destination: copied})
    upsert_staged(
        conn,
        [{"session_id": session_id, "path": destination, "entry": dump_json(copied)}],
    )
    return value_entry(copied)

"""The tree and staging on SQL: node reads and writes, and ordered scans of staged changes.

These run inside ``AsyncConnection.run_sync``: plain synchronous SQLAlchemy Core calls on the
connection of the surrounding read snapshot or write transaction.
"""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from lamina_server.versioning import canonical
from lamina_server.versioning.tables import staged_changes, tree_nodes

_WRITE_BATCH = 500


def dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    """``INSERT`` with the dialect's ``ON CONFLICT`` support (SQLite or PostgreSQL)."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


class SqlNodes:
    """Reads encoded nodes from ``tree_nodes``."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self._query = sa.select(tree_nodes.c.body).where(tree_nodes.c.id == sa.bindparam("nid"))

    def load(self, node_id: str) -> bytes:
        body = self.conn.execute(self._query, {"nid": node_id}).scalar_one_or_none()
        if body is None:
            raise LookupError(f"tree node {node_id} is missing")
        return bytes(body)

    def load_many(self, node_ids: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for start in range(0, len(node_ids), _WRITE_BATCH):
            batch = node_ids[start : start + _WRITE_BATCH]
            rows = self.conn.execute(
                sa.select(tree_nodes.c.id, tree_nodes.c.body).where(tree_nodes.c.id.in_(batch))
            )
            found.update((nid, bytes(body)) for nid, body in rows)
        missing = set(node_ids) - found.keys()
        if missing:
            raise LookupError(f"tree nodes {sorted(missing)} are missing")
        return found


def write_nodes(conn: sa.Connection, nodes: Mapping[str, bytes]) -> None:
    """Insert nodes; ones already stored (same id, same bytes) are left alone."""
    if not nodes:
        return
    stmt = dialect_insert(conn, tree_nodes).on_conflict_do_nothing(index_elements=["id"])
    rows = [{"id": nid, "body": body} for nid, body in nodes.items()]
    for start in range(0, len(rows), _WRITE_BATCH):
        conn.execute(stmt, rows[start : start + _WRITE_BATCH])


@functools.cache
def _staged_upsert(dialect_name: str) -> Any:
    # Built once per dialect: constructing the ON CONFLICT clause costs more than running it.
    module = postgresql if dialect_name == "postgresql" else sqlite
    stmt = module.insert(staged_changes)
    return stmt.on_conflict_do_update(
        index_elements=["session_id", "path"], set_={"entry": stmt.excluded.entry}
    )


@functools.cache
def _staged_insert(dialect_name: str) -> Any:
    module = postgresql if dialect_name == "postgresql" else sqlite
    stmt = module.insert(staged_changes).on_conflict_do_nothing(
        index_elements=["session_id", "path"]
    )
    return stmt.returning(staged_changes.c.path)


def insert_new_staged(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Stages the changes of paths the session has not staged yet (rows as for
    :func:`upsert_staged`); the paths it staged. One statement when every path is new."""
    stmt = _staged_insert(conn.dialect.name)
    staged: set[str] = set()
    for start in range(0, len(rows), _WRITE_BATCH):
        staged.update(conn.execute(stmt, list(rows[start : start + _WRITE_BATCH])).scalars())
    return staged


def upsert_staged(conn: sa.Connection, rows: Iterable[dict[str, Any]]) -> None:
    """Stage changes: rows of ``{"session_id", "path", "entry"}`` (entry text or None)."""
    batch = list(rows)
    if not batch:
        return
    stmt = _staged_upsert(conn.dialect.name)
    for start in range(0, len(batch), _WRITE_BATCH):
        conn.execute(stmt, batch[start : start + _WRITE_BATCH])


class StagedCursor:
    """A session's staged changes in path order, fetched in growing chunks.

    Payloads are decoded entry values, ``None`` for a staged delete. ``high`` bounds the scan
    (exclusive) so that a prefix listing never reads rows past its prefix.
    """

    def __init__(
        self, conn: sa.Connection, session_id: str, *, low: str = "", high: str | None = None
    ) -> None:
        self.conn = conn
        self.session_id = session_id
        self.high = high
        self.chunk = 128
        self.rows: list[tuple[str, Any]] = []
        self.keys: list[str] = []
        self.pos = 0
        self.complete = False
        self._next_start: str | None = low

    def _fetch(self, start: str) -> None:
        c = staged_changes.c
        # ``key + NUL`` is the first key after ``key`` (no path holds NUL): asked as ``> key``,
        # since PostgreSQL's text cannot hold NUL.
        after = c.path > start[:-1] if start.endswith("\x00") else c.path >= start
        query = sa.select(c.path, c.entry).where(c.session_id == self.session_id, after)
        if self.high is not None:
            query = query.where(c.path < self.high)
        rows = self.conn.execute(query.order_by(c.path).limit(self.chunk)).all()
        self.rows = [(p, None if e is None else canonical.loads(e)) for p, e in rows]
        self.keys = [p for p, _ in self.rows]
        self.pos = 0
        self.complete = len(rows) < self.chunk
        self.chunk = min(self.chunk * 2, 4096)
        self._next_start = None

    def peek(self) -> tuple[str, Any] | None:
        if self._next_start is not None:
            self._fetch(self._next_start)
        while self.pos >= len(self.rows):
            if self.complete or not self.rows:
                return None
            self._fetch(self.keys[-1] + "\x00")
        return self.rows[self.pos]

    def advance(self) -> None:
        if self.peek() is not None:
            self.pos += 1

    def seek(self, key: str) -> None:
        if self._next_start is not None:
            self._next_start = max(self._next_start, key)
            return
        if self.rows and (self.complete or key <= self.keys[-1]):
            self.pos = bisect_left(self.keys, key, self.pos)
        elif not (self.complete and not self.rows):
            self._fetch(key)

"""The garbage collector's books, kept by the engine's own write transactions.

For each repository the books hold what its HEAD tree references — its nodes
(``gc_head_nodes``) and, per blob address, how many of its entries hold it (``gc_head_blobs``)
— and a log of what it let go of (``gc_candidates``). A commit updates them from its rewrite
(:class:`~lamina_server.versioning.tree.Rewrite`): the nodes it re-chunked that are not in the
new tree, and the addresses whose count fell to zero, are released at the commit's time; a
rollback releases the addresses its session had staged, and a session that overwrites or
deletes what it staged releases the address it replaced. Every update costs what the change
costs, never the size of the repository; :mod:`lamina_server.garbage` reads the log.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from lamina_server.versioning import canonical
from lamina_server.versioning.tables import (
    gc_candidates,
    gc_head_blobs,
    gc_head_nodes,
    gc_indexed,
    staged_changes,
)
from lamina_server.versioning.tree import EMPTY_ROOT, Rewrite, Value

BATCH = 500  # rows per statement
NODE = "n"
BLOB = "b"


def batches(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def release(
    conn: sa.Connection,
    repository_id: str,
    items: Iterable[tuple[str, str, int]],
    released_at: int,
    *,
    retained: bool,
) -> None:
    """Logs ``(kind, item, size)`` as let go of by the repository at ``released_at``; an item
    released again keeps the later time (and stays retained if either release was)."""
    rows = [
        {
            "kind": kind,
            "item": item,
            "repository_id": repository_id,
            "released_at": released_at,
            "retained": retained,
            "size": size,
        }
        for kind, item, size in items
    ]
    if not rows:
        return
    stmt = _release_upsert(conn.dialect.name)
    for batch in batches(rows):
        conn.execute(stmt, list(batch))


# Built once per dialect: constructing an ON CONFLICT clause costs more than running it.
@functools.cache
def _release_upsert(dialect_name: str) -> Any:
    postgres = dialect_name == "postgresql"
    stmt = (postgresql if postgres else sqlite).insert(gc_candidates)
    later = (sa.func.greatest if postgres else sa.func.max)(
        gc_candidates.c.released_at, stmt.excluded.released_at
    )
    return stmt.on_conflict_do_update(
        index_elements=["kind", "item", "repository_id"],
        set_={"released_at": later, "retained": gc_candidates.c.retained | stmt.excluded.retained},
    )


@functools.cache
def _count_upsert(dialect_name: str) -> Any:
    stmt = (postgresql if dialect_name == "postgresql" else sqlite).insert(gc_head_blobs)
    return stmt.on_conflict_do_update(
        index_elements=["repository_id", "address"],
        set_={"refs": gc_head_blobs.c.refs + stmt.excluded.refs},
    )


@functools.cache
def _node_insert(dialect_name: str) -> Any:
    stmt = (postgresql if dialect_name == "postgresql" else sqlite).insert(gc_head_nodes)
    return stmt.on_conflict_do_nothing()


def init_repository(conn: sa.Connection, repository_id: str) -> None:
    """A new repository: its HEAD is the empty tree, and it is in the books from the start."""
    conn.execute(sa.insert(gc_head_nodes).values(repository_id=repository_id, node_id=EMPTY_ROOT))
    conn.execute(sa.insert(gc_indexed).values(repository_id=repository_id))


def add_head(
    conn: sa.Connection, repository_id: str, nodes: Iterable[str], values: Iterable[Value]
) -> None:
    """Counts ``nodes`` and the blobs of entry ``values`` into the repository's HEAD."""
    _add_nodes(conn, repository_id, nodes)
    counts, sizes = _tally(values)
    _count_blobs(conn, repository_id, counts, sizes)


def _add_nodes(conn: sa.Connection, repository_id: str, nodes: Iterable[str]) -> None:
    node_rows = [{"repository_id": repository_id, "node_id": nid} for nid in nodes]
    insert_nodes = _node_insert(conn.dialect.name)
    for batch in batches(node_rows):
        conn.execute(insert_nodes, list(batch))


def _tally(values: Iterable[Value]) -> tuple[Counter[str], dict[str, int]]:
    """How many of the entry ``values`` hold each address, and the addresses' sizes."""
    counts: Counter[str] = Counter()
    sizes: dict[str, int] = {}
    for value in values:
        counts[value[0]] += 1
        sizes[value[0]] = value[1]
    return counts, sizes


def _count_blobs(
    conn: sa.Connection, repository_id: str, counts: Counter[str], sizes: dict[str, int]
) -> None:
    rows = [
        {"repository_id": repository_id, "address": a, "refs": n, "size": sizes[a]}
        for a, n in counts.items()
        if n > 0
    ]
    stmt = _count_upsert(conn.dialect.name)
    for batch in batches(rows):
        conn.execute(stmt, list(batch))


def commit(conn: sa.Connection, repository_id: str, rewrite: Rewrite, at: int) -> None:
    """Moves the repository's HEAD in the books from the tree ``rewrite`` was applied to, to
    its result, releasing at ``at`` what left the tree."""
    new_nodes = rewrite.nodes.keys() - rewrite.replaced
    gone_nodes = sorted(rewrite.replaced - rewrite.nodes.keys())
    c = gc_head_nodes.c
    for batch in batches(gone_nodes):
        conn.execute(
            sa.delete(gc_head_nodes).where(c.repository_id == repository_id, c.node_id.in_(batch))
        )
    release(conn, repository_id, ((NODE, nid, 0) for nid in gone_nodes), at, retained=True)
    _add_nodes(conn, repository_id, new_nodes)
    counts, sizes = _tally(rewrite.added)
    counts.subtract(_tally(rewrite.removed)[0])
    _count_blobs(conn, repository_id, counts, sizes)
    _uncount_blobs(conn, repository_id, counts, at)


def _uncount_blobs(conn: sa.Connection, repository_id: str, counts: Counter[str], at: int) -> None:
    """Takes the negative ``counts`` off; addresses no entry holds any more are released."""
    addresses = sorted(a for a, n in counts.items() if n < 0)
    if not addresses:
        return
    b = gc_head_blobs.c
    conn.execute(
        sa.update(gc_head_blobs)
        .where(b.repository_id == repository_id, b.address == sa.bindparam("b_address"))
        .values(refs=b.refs - sa.bindparam("b_minus")),
        [{"b_address": a, "b_minus": -counts[a]} for a in addresses],
    )
    for batch in batches(addresses):
        done = conn.execute(
            sa.select(b.address, b.size).where(
                b.repository_id == repository_id, b.address.in_(batch), b.refs <= 0
            )
        ).all()
        if not done:
            continue
        conn.execute(
            sa.delete(gc_head_blobs).where(
                b.repository_id == repository_id, b.address.in_([a for a, _ in done])
            )
        )
        release(conn, repository_id, ((BLOB, a, s) for a, s in done), at, retained=True)


def staged_blobs(conn: sa.Connection, session_ids: Sequence[str]) -> list[tuple[str, int]]:
    """The addresses and sizes the sessions have staged."""
    found: list[tuple[str, int]] = []
    c = staged_changes.c
    for batch in batches(session_ids):
        rows = conn.execute(
            sa.select(c.entry).where(c.session_id.in_(batch), c.entry.is_not(None))
        ).scalars()
        for text in rows:
            value = canonical.loads(text)
            found.append((value[0], value[1]))
    return found


def unstaged(conn: sa.Connection, repository_id: str, values: Iterable[Any], at: int) -> None:
    """Releases the blobs of staged entries (decoded values) that their session replaced:
    overwrote, copied over or deleted before committing; nothing holds them for it any more."""
    release(conn, repository_id, ((BLOB, v[0], v[1]) for v in values), at, retained=False)


def roll_back(conn: sa.Connection, repository_id: str, session_id: str, at: int) -> None:
    """Releases what a session being rolled back had staged (before its staging is cleared)."""
    staged = staged_blobs(conn, [session_id])
    release(conn, repository_id, ((BLOB, a, s) for a, s in staged), at, retained=False)

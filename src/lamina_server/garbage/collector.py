""":class:`Collector`: one garbage collection run over the books the engine keeps.

A run (see :mod:`lamina_server.garbage` for the design):

1. puts in the books every repository that is not in them yet (one walk of its HEAD tree:
   data directories from before the books were kept);
2. releases the books of soft-deleted repositories: everything their HEAD held, and what their
   open sessions staged, becomes a candidate;
3. picks the *eligible* candidates on a read snapshot — those whose every hold has expired;
4. judges them in write transactions of :data:`BATCH` candidates: the eligible rows are
   deleted, and an item none of whose other holds remains (no repository's HEAD holds it, no
   other candidate row keeps it, no open session staged it) is garbage: a node is deleted from
   ``tree_nodes`` in that transaction, a blob is written to ``gc_condemned``;
5. deletes the condemned blobs from the blob store, then their rows (a crash in between leaves
   them for the next run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lamina_server.repositories.tables import repositories
from lamina_server.storage.blobs import STALE_UPLOAD_SECONDS, BlobStore
from lamina_server.storage.db import Database
from lamina_server.versioning import books, rows
from lamina_server.versioning.codec import to_micros
from lamina_server.versioning.sql import SqlNodes, dialect_insert
from lamina_server.versioning.tables import (
    commits,
    gc_candidates,
    gc_condemned,
    gc_head_blobs,
    gc_head_nodes,
    gc_indexed,
    refs,
    repo_sessions,
    tree_nodes,
)
from lamina_server.versioning.tree import Node, Value

DAY = 86_400 * 1_000_000  # microseconds
GRACE_SECONDS = 3600.0  # nothing released more recently than this is collected
DEFAULT_RETENTION_DAYS = 14  # for a repository the engine knows but the directory does not
BATCH = 5000  # candidates judged per write transaction
_LIVE_SESSION = (rows.OPEN, rows.AWAITING_APPROVAL)

Candidate = tuple[str, str, str]  # kind, item, repository id


@dataclass(frozen=True, slots=True)
class Report:
    """What a run removed (or, dry, would remove): tree nodes, blobs and their bytes; how
    many repositories it put in the books, and soft-deleted ones whose books it released; and
    how many abandoned uploads it swept (:meth:`Collector.collect`'s ``sweep_uploads``)."""

    nodes: int = 0
    blobs: int = 0
    bytes: int = 0
    indexed: int = 0
    purged: int = 0
    uploads: int = 0


class Collector:
    """Collects the garbage of the repositories in ``db`` whose bytes are in ``blobs``.

    ``grace_seconds``: nothing released more recently is collected, whatever the retention;
    ``clock``: seconds since the epoch (tests move it past a retention window).
    """

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        *,
        grace_seconds: float = GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.grace = int(grace_seconds * 1_000_000)
        self.clock = clock

    async def collect(self, *, dry_run: bool = False, sweep_uploads: bool = False) -> Report:
        """One run. ``dry_run`` removes nothing (it may still bring the books up to date).
        ``sweep_uploads`` also removes the uploads abandoned :data:`STALE_UPLOAD_SECONDS`
        ago (:meth:`~lamina_server.storage.blobs.BlobStore.sweep_uploads`: a listing of the
        store, whose cost follows its size; a dry run sweeps nothing)."""
        now = int(self.clock() * 1_000_000)
        indexed = await self._index_all()
        purged = await self._purge_deleted(now)
        eligible = await self.db.run_read(lambda conn: self._eligible(conn, now))
        staged = await self.db.run_read(_open_staged)
        if dry_run:
            nodes, blobs = await self.db.run_read(
                lambda conn: _judge(conn, eligible, staged, remove=False)
            )
            return Report(len(nodes), len(blobs), sum(size for _, size in blobs), indexed, purged)
        node_count = 0
        for start in range(0, len(eligible), BATCH):
            chunk = eligible[start : start + BATCH]
            nodes, _ = await self.db.run_write(
                lambda conn, chunk=chunk: _judge(conn, chunk, staged, remove=True)  # type: ignore[misc]
            )
            node_count += len(nodes)
        blob_count, freed = await self._delete_condemned()
        swept = 0
        if sweep_uploads:
            swept = await self.blobs.sweep_uploads(self.clock() - STALE_UPLOAD_SECONDS)
        return Report(node_count, blob_count, freed, indexed, purged, swept)

    # --- the books ---------------------------------------------------------------------------

    async def _index_all(self) -> int:
        missing = await self.db.run_read(
            lambda conn: list(
                conn.execute(
                    sa.select(refs.c.repository_id)
                    .outerjoin(gc_indexed, gc_indexed.c.repository_id == refs.c.repository_id)
                    .where(gc_indexed.c.repository_id.is_(None))
                ).scalars()
            )
        )
        for repository_id in missing:
            await self.db.run_write(lambda conn, rid=repository_id: _index(conn, rid))  # type: ignore[misc]
        return len(missing)

    async def _purge_deleted(self, now: int) -> int:
        def deleted(conn: sa.Connection) -> list[str]:
            held = sa.exists().where(gc_head_nodes.c.repository_id == repositories.c.id)
            query = sa.select(repositories.c.id).where(repositories.c.deleted_at.is_not(None), held)
            return list(conn.execute(query).scalars())

        purged = await self.db.run_read(deleted)
        for repository_id in purged:
            await self.db.run_write(lambda conn, rid=repository_id: _purge(conn, rid, now))  # type: ignore[misc]
        return len(purged)

    # --- eligibility -------------------------------------------------------------------------

    def _eligible(self, conn: sa.Connection, now: int) -> list[Candidate]:
        """The candidate rows whose hold has expired: past the grace period, and — for what a
        commit held — past the repository's retention window and older than the base commit of
        every open session of the repository; everything of a repository deleted before the
        grace period."""
        grace_cut = now - self.grace
        c = gc_candidates.c
        repository_ids = list(
            conn.execute(sa.select(c.repository_id).where(c.released_at < grace_cut).distinct())
            .scalars()
            .all()
        )
        found: list[Candidate] = []
        for batch in books.batches(repository_ids):
            policies = _policies(conn, batch)
            bases = _oldest_bases(conn, batch)
            for repository_id in batch:
                retention, deleted_at = policies.get(repository_id, (DEFAULT_RETENTION_DAYS, None))
                query = sa.select(c.kind, c.item, c.repository_id).where(
                    c.repository_id == repository_id
                )
                if deleted_at is None or deleted_at >= grace_cut:
                    cut = min(now - retention * DAY, grace_cut, bases.get(repository_id, now))
                    query = query.where(
                        sa.or_(
                            sa.and_(c.retained, c.released_at < cut),
                            sa.and_(sa.not_(c.retained), c.released_at < grace_cut),
                        )
                    )
                found.extend((kind, item, rid) for kind, item, rid in conn.execute(query))
        return found

    # --- blobs -------------------------------------------------------------------------------

    async def _delete_condemned(self) -> tuple[int, int]:
        """Deletes the condemned blobs' bytes, then their rows: (count, bytes)."""
        count = freed = 0
        while True:
            condemned = await self.db.run_read(
                lambda conn: conn.execute(
                    sa.select(gc_condemned.c.address, gc_condemned.c.size)
                    .order_by(gc_condemned.c.address)
                    .limit(BATCH)
                ).all()
            )
            if not condemned:
                return count, freed
            addresses = [address for address, _ in condemned]
            await self.blobs.delete(addresses)
            await self.db.run_write(
                lambda conn, gone=addresses: _forget_condemned(conn, gone)  # type: ignore[misc]
            )
            count += len(condemned)
            freed += sum(size for _, size in condemned)


def _forget_condemned(conn: sa.Connection, addresses: Sequence[str]) -> None:
    for batch in books.batches(addresses):
        conn.execute(sa.delete(gc_condemned).where(gc_condemned.c.address.in_(batch)))


def _policies(conn: sa.Connection, ids: Sequence[str]) -> dict[str, tuple[int, int | None]]:
    """Retention days and deletion time (microseconds) of the repositories the directory
    knows among ``ids``."""
    r = repositories.c
    query = sa.select(r.id, r.retention_days, r.deleted_at).where(r.id.in_(ids))
    return {
        rid: (days, None if deleted is None else to_micros(deleted))
        for rid, days, deleted in conn.execute(query)
    }


def _oldest_bases(conn: sa.Connection, ids: Sequence[str]) -> dict[str, int]:
    """Per repository among ``ids``, the creation time of the oldest base commit of its open
    sessions: what was released after it may still be in that base's tree."""
    s, k = repo_sessions.c, commits.c
    query = (
        sa.select(s.repository_id, sa.func.min(k.created_at))
        .join(commits, sa.and_(k.repository_id == s.repository_id, k.id == s.base_commit))
        .where(s.repository_id.in_(ids), s.state.in_(_LIVE_SESSION))
        .group_by(s.repository_id)
    )
    return {rid: oldest for rid, oldest in conn.execute(query)}


def _open_staged(conn: sa.Connection) -> set[str]:
    """The blob addresses staged in the open sessions of repositories not deleted."""
    s = repo_sessions.c
    deleted = sa.select(repositories.c.id).where(repositories.c.deleted_at.is_not(None))
    ids = list(
        conn.execute(
            sa.select(s.id).where(s.state.in_(_LIVE_SESSION), s.repository_id.not_in(deleted))
        ).scalars()
    )
    return {address for address, _ in books.staged_blobs(conn, ids)}


# --- judging ---------------------------------------------------------------------------------


def _judge(
    conn: sa.Connection, chosen: Sequence[Candidate], staged: set[str], *, remove: bool
) -> tuple[list[str], list[tuple[str, int]]]:
    """The nodes and blobs (with sizes) among the ``chosen`` eligible candidates that nothing
    holds any more. With ``remove``, in the caller's write transaction: the chosen rows are
    deleted, the nodes too, and the blobs condemned."""
    c = gc_candidates.c
    sizes: dict[tuple[str, str], int] = {}
    for batch in books.batches(sorted({(kind, item) for kind, item, _ in chosen})):
        for kind, item, size in conn.execute(
            sa.select(c.kind, c.item, sa.func.max(c.size))
            .where(sa.tuple_(c.kind, c.item).in_(batch))
            .group_by(c.kind, c.item)
        ):
            sizes[kind, item] = size
    if remove:
        for batch in books.batches(chosen):
            conn.execute(
                sa.delete(gc_candidates).where(
                    sa.tuple_(c.kind, c.item, c.repository_id).in_(list(batch))
                )
            )
    chosen_rows = set(chosen)
    nodes = sorted(item for kind, item in sizes if kind == books.NODE)
    blobs = sorted(item for kind, item in sizes if kind == books.BLOB)
    held_nodes = _held(conn, books.NODE, nodes, gc_head_nodes.c.node_id, chosen_rows)
    held_blobs = _held(conn, books.BLOB, blobs, gc_head_blobs.c.address, chosen_rows)
    dead_nodes = [nid for nid in nodes if nid not in held_nodes]
    dead_blobs = [(a, sizes[books.BLOB, a]) for a in blobs if a not in held_blobs | staged]
    if remove:
        for batch in books.batches(dead_nodes):
            conn.execute(sa.delete(tree_nodes).where(tree_nodes.c.id.in_(batch)))
        condemn = dialect_insert(conn, gc_condemned).on_conflict_do_nothing()
        for batch in books.batches(dead_blobs):
            conn.execute(condemn, [{"address": a, "size": s} for a, s in batch])
    return dead_nodes, dead_blobs


def _held(
    conn: sa.Connection,
    kind: str,
    items: Sequence[str],
    head_column: sa.Column[Any],
    chosen: set[Candidate],
) -> set[str]:
    """Those of ``items`` some repository's HEAD holds, or a candidate row not ``chosen``."""
    held: set[str] = set()
    c = gc_candidates.c
    for batch in books.batches(items):
        held.update(conn.execute(sa.select(head_column).where(head_column.in_(batch))).scalars())
        for item, repository_id in conn.execute(
            sa.select(c.item, c.repository_id).where(c.kind == kind, c.item.in_(batch))
        ):
            if (kind, item, repository_id) not in chosen:
                held.add(item)
    return held


# --- the books of one repository -------------------------------------------------------------


def _index(conn: sa.Connection, repository_id: str) -> None:
    """Puts a repository's HEAD in the books (in one write transaction): one walk of its tree."""
    head = rows.head(conn, repository_id)
    nodes, values = _walk(conn, rows.root(conn, repository_id, head))
    conn.execute(sa.delete(gc_head_nodes).where(gc_head_nodes.c.repository_id == repository_id))
    conn.execute(sa.delete(gc_head_blobs).where(gc_head_blobs.c.repository_id == repository_id))
    books.add_head(conn, repository_id, nodes, values)
    conn.execute(sa.insert(gc_indexed).values(repository_id=repository_id))


def _walk(conn: sa.Connection, root: str) -> tuple[list[str], list[Value]]:
    """Every node of the tree at ``root``, and every entry value, one fetch per level."""
    source = SqlNodes(conn)
    nodes: list[str] = []
    values: list[Value] = []
    level = [root]
    while level:
        bodies = source.load_many(level)
        below: list[str] = []
        for nid in level:
            node = Node.decode(bodies[nid], _no_size)
            nodes.append(nid)
            values.extend(node.values)
            below.extend(node.ids)
        level = below
    return nodes, values


def _no_size(_: Value) -> int:
    return 0


def _purge(conn: sa.Connection, repository_id: str, now: int) -> None:
    """Releases everything a soft-deleted repository's HEAD and open sessions hold."""
    n, b, s = gc_head_nodes.c, gc_head_blobs.c, repo_sessions.c
    held_nodes = conn.execute(sa.select(n.node_id).where(n.repository_id == repository_id))
    items: list[tuple[str, str, int]] = [(books.NODE, nid, 0) for nid in held_nodes.scalars()]
    held_blobs = conn.execute(sa.select(b.address, b.size).where(b.repository_id == repository_id))
    items.extend((books.BLOB, address, size) for address, size in held_blobs)
    sessions = conn.execute(
        sa.select(s.id).where(s.repository_id == repository_id, s.state.in_(_LIVE_SESSION))
    ).scalars()
    items.extend((books.BLOB, a, size) for a, size in books.staged_blobs(conn, list(sessions)))
    books.release(conn, repository_id, _unique(items), now, retained=True)
    conn.execute(sa.delete(gc_head_nodes).where(n.repository_id == repository_id))
    conn.execute(sa.delete(gc_head_blobs).where(b.repository_id == repository_id))


def _unique(items: Iterable[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return list({(kind, item): (kind, item, size) for kind, item, size in items}.values())

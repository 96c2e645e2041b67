"""``VersionStore``: repositories as commits over prolly trees, with snapshot-isolated sessions.

The async face of the engine. Each method runs one synchronous function of a connection — a
read snapshot (:mod:`.reads`) or a write transaction (:mod:`.sessions`, :mod:`.commits`) — in
one hop through :class:`~lamina_server.storage.db.Database`, and every write transaction tells
the store's :class:`~lamina_server.versioning.recorder.Recorder` what it changed.

A session reads its base commit's tree with its staged changes laid over it. A commit is
planned on a read snapshot — the staged changes three-way merged onto the current HEAD into a
new tree — and lands in one write transaction: the new tree nodes, HEAD moved by
compare-and-swap, the session marked committed and its staging cleared, the commit row. If
HEAD moved or the session was written to in between, nothing lands and the commit is planned
again, this time inside the write transaction; after :data:`LAND_ATTEMPTS` such attempts, with
a short random backoff between them, it fails with
:class:`~lamina_server.versioning.errors.ConcurrentUpdate`.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import anyio
import sqlalchemy as sa

from lamina_server.principals import Committer
from lamina_server.storage.db import Database
from lamina_server.versioning import books, commits, reads, rows, sessions
from lamina_server.versioning.codec import now_micros, value_size
from lamina_server.versioning.commits import HeadMoved, Plan
from lamina_server.versioning.errors import ConcurrentUpdate, RevertNotSupported
from lamina_server.versioning.models import (
    ChangeRecord,
    CommitInfo,
    Entry,
    ListingItem,
    Page,
    SessionInfo,
)
from lamina_server.versioning.recorder import NO_RECORDER, Action, ChangeEvent, Recorder
from lamina_server.versioning.sql import SqlNodes
from lamina_server.versioning.tree import NodeCache, Tree

T = TypeVar("T")

LAND_ATTEMPTS = 8  # attempts to land a commit inside the write transaction, after the first
_BACKOFF = 0.001  # seconds: the first backoff's ceiling, doubling on each attempt
_BACKOFF_CAP = 0.05


class VersionStore:
    """The versioning engine. Repositories are known by id; all ids are strings.

    ``node_cache_size`` bounds the decoded tree nodes kept in memory (about 40 KB each at
    most), shared by every read and commit. ``recorder`` is told of every change, in its
    transaction (:mod:`lamina_server.versioning.recorder`). ``on_landed``, when set, is called
    with the repository and commit ids on the event loop once a commit or a revert has landed
    (what the recorder wrote is then visible): a wake-up call, which must not block or raise.
    """

    def __init__(
        self,
        db: Database,
        *,
        node_cache_size: int = 2048,
        recorder: Recorder = NO_RECORDER,
        on_landed: Callable[[str, str], None] | None = None,
    ) -> None:
        self.db = db
        self.node_cache = NodeCache(node_cache_size)
        self.recorder = recorder
        self.on_landed = on_landed

    # --- plumbing ----------------------------------------------------------------------------

    async def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        return await self.db.run_read(fn)

    async def _write(self, fn: Callable[[sa.Connection], T]) -> T:
        return await self.db.run_write(fn)

    def _tree(self, conn: sa.Connection) -> Tree:
        return Tree(SqlNodes(conn), size_of=value_size, cache=self.node_cache)

    # --- repositories and commits ------------------------------------------------------------

    async def init_repository(self, repository_id: str, *, committer: Committer) -> str:
        """Creates the initial empty commit ("Repository created") and HEAD; returns its id."""

        def run(conn: sa.Connection) -> str:
            commit_id = commits.init_repository(conn, repository_id, committer)
            self.recorder.record(
                conn,
                ChangeEvent(
                    "init_repository", repository_id, commit_id=commit_id, principal=committer
                ),
            )
            return commit_id

        return await self._write(run)

    async def head(self, repository_id: str) -> str:
        return await self._read(lambda conn: rows.head(conn, repository_id))

    async def get_commit(self, repository_id: str, commit_id: str) -> CommitInfo:
        return await self._read(
            lambda conn: rows.commit_info(rows.commit_row(conn, repository_id, commit_id))
        )

    async def log(
        self,
        repository_id: str,
        *,
        ref: str | None = None,
        after: str | None = None,
        amount: int = 100,
        prefix: str | None = None,
        object_path: str | None = None,
    ) -> Page[CommitInfo]:
        """Newest first along first parents from ``ref`` (default HEAD).

        ``next_offset`` is the last commit returned; the next page continues at its first
        parent. With ``prefix``/``object_path`` only commits that changed a matching path (vs.
        their first parent) are returned; each commit examined costs one tree diff bounded by
        its change, and a sparse match may examine much of the history to fill a page.
        """
        reads.check_amount(amount)
        return await self._read(
            lambda conn: reads.log_page(
                conn,
                self._tree(conn),
                repository_id,
                ref=ref,
                after=after,
                amount=amount,
                prefix=prefix,
                object_path=object_path,
            )
        )

    # --- sessions ----------------------------------------------------------------------------

    async def create_session(self, repository_id: str, *, created_by: Committer) -> SessionInfo:
        session_id = str(uuid.uuid4())

        def run(conn: sa.Connection) -> SessionInfo:
            info = sessions.create(conn, repository_id, session_id, created_by)
            self.recorder.record(
                conn,
                ChangeEvent("create_session", repository_id, session_id, principal=created_by),
            )
            return info

        return await self._write(run)

    async def get_session(self, repository_id: str, session_id: str) -> SessionInfo:
        return await self._read(
            lambda conn: rows.session_info(rows.session_row(conn, repository_id, session_id))
        )

    async def list_open_sessions(
        self, repository_id: str, *, after: str | None = None, amount: int = 100
    ) -> Page[SessionInfo]:
        """The repository's sessions that are open or held for approval, in id order."""

        def run(conn: sa.Connection) -> Page[SessionInfo]:
            found, more = rows.open_sessions(conn, repository_id, after=after, amount=amount)
            return Page(found, more, found[-1].id if more else None)

        return await self._read(run)

    async def open_session(self, repository_id: str, session_id: str) -> SessionInfo:
        return await self._read(
            lambda conn: rows.session_info(rows.open_session_row(conn, repository_id, session_id))
        )

    async def hold_session(
        self,
        repository_id: str,
        session_id: str,
        also: Callable[[sa.Connection], None] | None = None,
    ) -> None:
        """Holds an open session for approval (nothing more is staged in it; a commit with
        ``held=True`` lands it, a rollback drops it); ``also`` writes in the same transaction
        (the approval's record)."""

        def run(conn: sa.Connection) -> None:
            sessions.hold(conn, repository_id, session_id)
            if also is not None:
                also(conn)

        await self._write(run)

    async def rollback_session(
        self,
        repository_id: str,
        session_id: str,
        also: Callable[[sa.Connection], None] | None = None,
    ) -> None:
        """Rolls back an open or held session; ``also`` writes in the same transaction."""

        def run(conn: sa.Connection) -> None:
            if also is not None:
                also(conn)
            sessions.roll_back(conn, repository_id, session_id)
            self._record_staging(conn, "rollback_session", repository_id, session_id, ())

        await self._write(run)

    # --- staging -----------------------------------------------------------------------------

    def _record_staging(
        self,
        conn: sa.Connection,
        action: Action,
        repository_id: str,
        session_id: str,
        paths: tuple[str, ...],
    ) -> None:
        self.recorder.record(conn, ChangeEvent(action, repository_id, session_id, paths))

    async def stage_put(self, repository_id: str, session_id: str, path: str, entry: Entry) -> None:
        await self.stage_put_many(repository_id, session_id, [(path, entry)])

    async def stage_put_many(
        self, repository_id: str, session_id: str, items: Sequence[tuple[str, Entry]]
    ) -> None:
        """Stage many puts in one transaction (bulk loads, imports, grouped uploads)."""
        latest = dict(items)  # a path given twice: the last entry wins

        def run(conn: sa.Connection) -> None:
            sessions.stage_puts(conn, repository_id, session_id, latest)
            self._record_staging(conn, "stage_put", repository_id, session_id, tuple(latest))

        await self._write(run)

    async def release_unstaged(self, repository_id: str, entries: Sequence[Entry]) -> None:
        """Hands blobs that were stored for the repository but never staged (their staging
        failed: the session closed meanwhile) to garbage collection."""
        values = [(entry.address, entry.size) for entry in entries]
        at = now_micros()

        def run(conn: sa.Connection) -> None:
            books.unstaged(conn, repository_id, values, at)

        await self._write(run)

    async def stage_delete(self, repository_id: str, session_id: str, path: str) -> bool:
        """Stage a delete; True if the path existed in the session's view."""
        return await self.stage_delete_many(repository_id, session_id, [path]) == 1

    async def stage_delete_many(
        self, repository_id: str, session_id: str, paths: Sequence[str]
    ) -> int:
        """Stage deletes; returns how many of the (distinct) paths existed.

        Recorded only when one did: deleting nothing changes nothing.
        """
        unique = sorted(set(paths))

        def run(conn: sa.Connection) -> int:
            existed = sessions.stage_deletes(
                conn, self._tree(conn), repository_id, session_id, unique
            )
            if existed:
                self._record_staging(
                    conn, "stage_delete", repository_id, session_id, tuple(existed)
                )
            return len(existed)

        return await self._write(run)

    async def stage_copy(
        self, repository_id: str, session_id: str, source: str, destination: str
    ) -> Entry:
        """Stage ``destination`` as a copy of ``source`` (same address; fresh last_modified)."""

        def run(conn: sa.Connection) -> Entry:
            copied = sessions.stage_copy(
                conn, self._tree(conn), repository_id, session_id, source, destination
            )
            self._record_staging(conn, "stage_copy", repository_id, session_id, (destination,))
            return copied

        return await self._write(run)

    async def list_changes(
        self,
        repository_id: str,
        session_id: str,
        *,
        prefix: str = "",
        after: str | None = None,
        amount: int = 100,
    ) -> Page[ChangeRecord]:
        """The session's staged changes in path order; ``entry`` None is a staged delete."""
        return await self._read(
            lambda conn: reads.changes_page(
                conn, repository_id, session_id, prefix=prefix, after=after, amount=amount
            )
        )

    # --- reads -------------------------------------------------------------------------------

    async def get_entry(
        self,
        repository_id: str,
        path: str,
        *,
        session_id: str | None = None,
        ref: str | None = None,
    ) -> Entry:
        """The entry at ``path`` in a session's view, at commit ``ref``, or at HEAD."""
        return await self._read(
            lambda conn: reads.entry(conn, self._tree(conn), repository_id, path, session_id, ref)
        )

    async def list_objects(
        self,
        repository_id: str,
        *,
        session_id: str | None = None,
        ref: str | None = None,
        prefix: str = "",
        delimiter: str | None = None,
        after: str | None = None,
        amount: int = 100,
    ) -> Page[ListingItem]:
        """One page of the objects (and, with a delimiter, common prefixes) of a view."""
        return await self._read(
            lambda conn: reads.objects_page(
                conn,
                self._tree(conn),
                repository_id,
                session_id=session_id,
                ref=ref,
                prefix=prefix,
                delimiter=delimiter,
                after=after,
                amount=amount,
            )
        )

    async def list_tree(
        self, repository_id: str, ref: str, *, prefix: str = ""
    ) -> list[tuple[str, Entry]]:
        """Every object under ``prefix`` at commit ``ref``, in path order, from one read
        snapshot. Unlike :meth:`list_objects` it does not page: the work and the memory follow
        the number of objects listed (materializing a checkout wants them all)."""
        return await self._read(
            lambda conn: reads.tree_entries(conn, self._tree(conn), repository_id, ref, prefix)
        )

    async def diff(
        self,
        repository_id: str,
        *,
        left: str | None = None,
        right: str | None = None,
        session_id: str | None = None,
        prefix: str = "",
        delimiter: str | None = None,
        after: str | None = None,
        amount: int = 1000,
    ) -> Page[ListingItem]:
        """Changes from ``left`` (None: the empty tree) to ``right`` (None: HEAD), or a
        session's changes against its base. Every item has a status; a common prefix is
        ``added``/``removed`` when nothing was under it on the other side, else ``modified``.
        """
        return await self._read(
            lambda conn: reads.diff_page(
                conn,
                self._tree(conn),
                repository_id,
                left=left,
                right=right,
                session_id=session_id,
                prefix=prefix,
                delimiter=delimiter,
                after=after,
                amount=amount,
            )
        )

    # --- commit and revert -------------------------------------------------------------------

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
        """Land the session's changes on HEAD (three-way merge when HEAD moved). ``held``: the
        session is held for approval, and this is its approval; ``also`` writes in the commit's
        transaction, given the new commit's id."""
        state = rows.AWAITING_APPROVAL if held else rows.OPEN

        def plan(conn: sa.Connection) -> Plan:
            return commits.plan_commit(conn, self._tree(conn), repository_id, session_id, state)

        def land(conn: sa.Connection, planned: Plan) -> str:
            commit_id = commits.land(
                conn,
                repository_id,
                planned,
                message=message,
                metadata=metadata,
                committer=committer,
                session_id=session_id,
            )
            self.recorder.record(
                conn,
                ChangeEvent(
                    "commit", repository_id, session_id, commit_id=commit_id, principal=committer
                ),
            )
            if also is not None:
                also(conn, commit_id)
            return commit_id

        commit_id = await self._land(repository_id, plan, land)
        self._landed(repository_id, commit_id)
        return commit_id

    async def revert(
        self,
        repository_id: str,
        commit_id: str,
        *,
        message: str | None = None,
        metadata: Mapping[str, str] | None = None,
        committer: Committer,
    ) -> str:
        """A new commit on HEAD undoing ``commit_id``'s changes against its parent."""
        target = await self.get_commit(repository_id, commit_id)
        if not target.parents:
            raise RevertNotSupported(f"commit {commit_id} is the initial commit")
        if len(target.parents) > 1:
            raise RevertNotSupported(f"commit {commit_id} is a merge commit")

        def plan(conn: sa.Connection) -> Plan:
            return commits.plan_revert(conn, self._tree(conn), repository_id, target)

        def land(conn: sa.Connection, planned: Plan) -> str:
            new_id = commits.land(
                conn,
                repository_id,
                planned,
                message=f'Revert "{target.message}"' if message is None else message,
                metadata=metadata or {},
                committer=committer,
                session_id=None,
            )
            self.recorder.record(
                conn,
                ChangeEvent(
                    "revert",
                    repository_id,
                    commit_id=new_id,
                    reverted=commit_id,
                    principal=committer,
                ),
            )
            return new_id

        new_id = await self._land(repository_id, plan, land)
        self._landed(repository_id, new_id)
        return new_id

    def _landed(self, repository_id: str, commit_id: str) -> None:
        if self.on_landed is not None:
            self.on_landed(repository_id, commit_id)

    async def _land(
        self,
        repository_id: str,
        plan: Callable[[sa.Connection], Plan],
        land: Callable[[sa.Connection, Plan], str],
    ) -> str:
        # First optimistically: plan on a snapshot, hold the write lock only to land. When
        # that loses the race, plan again inside the write transaction, where nothing can move
        # HEAD under it (SQLite has one writer; PostgreSQL locks HEAD's row first); the
        # compare-and-swap still guards, and a session that keeps changing (its change
        # counter) fails the commit after a bounded number of attempts.
        planned = await self._read(plan)
        try:
            return await self._write(lambda conn: land(conn, planned))
        except HeadMoved:
            pass

        def locked(conn: sa.Connection) -> str:
            rows.lock_head(conn, repository_id)
            return land(conn, plan(conn))

        for attempt in range(LAND_ATTEMPTS):
            if attempt:
                await anyio.sleep(random.uniform(0, min(_BACKOFF * 2**attempt, _BACKOFF_CAP)))
            try:
                return await self._write(locked)
            except HeadMoved:
                continue
        raise ConcurrentUpdate(repository_id, 1 + LAND_ATTEMPTS)

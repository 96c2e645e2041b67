"""``VersionStore``: repositories as commits over prolly trees, with snapshot-isolated sessions.

A session reads its base commit's tree with its staged changes laid over it. A commit is
planned on a read snapshot — the staged changes three-way merged onto the current HEAD into a
new tree — and lands in one write transaction: the new tree nodes, HEAD moved by
compare-and-swap, the session marked committed and its staging cleared, the commit row. If
HEAD moved or the session was written to in between, nothing lands and the commit is planned
again, this time inside the write transaction.

Tree nodes are never deleted: they are shared between commits, and nodes written by a plan
that did not land are unreferenced and harmless.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from lamina_server.storage.db import Database
from lamina_server.versioning import canonical
from lamina_server.versioning.codec import (
    dump_json,
    entry_value,
    from_micros,
    now_micros,
    value_entry,
    value_size,
)
from lamina_server.versioning.cursors import (
    ChangesCursor,
    Cursor,
    DiffCursor,
    OverlayCursor,
    TreeCursor,
)
from lamina_server.versioning.errors import (
    InvalidCursor,
    MergeConflict,
    ObjectNotFound,
    RefNotFound,
    RevertNotSupported,
    SessionClosed,
    SessionNotFound,
    VersioningError,
)
from lamina_server.versioning.listing import PageItem, key_after_prefix, list_page
from lamina_server.versioning.models import (
    ChangeRecord,
    CommitInfo,
    Committer,
    Entry,
    ListingItem,
    Page,
    SessionInfo,
)
from lamina_server.versioning.sql import SqlNodes, StagedCursor, upsert_staged, write_nodes
from lamina_server.versioning.tables import commits, refs, repo_sessions, staged_changes
from lamina_server.versioning.tree import EMPTY_LEAF, EMPTY_ROOT, NodeCache, Rewrite, Tree

T = TypeVar("T")
Value = Any
Change = tuple[str, Value | None]

INITIAL_MESSAGE = "Repository created"
_LOOKUP_BATCH = 500


class _Retry(Exception):
    """HEAD or the session moved between planning a commit and landing it."""


@dataclass(frozen=True, slots=True)
class _Plan:
    head: str
    rewrite: Rewrite
    stats: tuple[int, int]  # object count and total size of the new tree
    session_seq: int | None


class VersionStore:
    """The versioning engine. Repositories are known by id; all ids are strings.

    ``node_cache_size`` bounds the decoded tree nodes kept in memory (about 40 KB each at
    most), shared by every read and commit.
    """

    def __init__(self, db: Database, *, node_cache_size: int = 2048) -> None:
        self.db = db
        self.node_cache = NodeCache(node_cache_size)

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
            if _head_or_none(conn, repository_id) is not None:
                raise VersioningError(f"repository {repository_id!r} is already initialized")
            write_nodes(conn, {EMPTY_ROOT: EMPTY_LEAF})
            commit_id, row = _commit_record(
                repository_id,
                parents=(),
                root=EMPTY_ROOT,
                stats=(0, 0),
                message=INITIAL_MESSAGE,
                metadata={},
                committer=committer,
            )
            conn.execute(sa.insert(commits).values(row))
            conn.execute(sa.insert(refs).values(repository_id=repository_id, head=commit_id))
            return commit_id

        return await self._write(run)

    async def head(self, repository_id: str) -> str:
        return await self._read(lambda conn: _head(conn, repository_id))

    async def get_commit(self, repository_id: str, commit_id: str) -> CommitInfo:
        return await self._read(
            lambda conn: _commit_info(_commit_row(conn, repository_id, commit_id))
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
        _check_amount(amount)

        def run(conn: sa.Connection) -> Page[CommitInfo]:
            if after is not None:
                row = _commit_row_or_none(conn, repository_id, after)
                if row is None:
                    raise InvalidCursor(after, "not a commit of this repository")
                next_id: str | None = row.first_parent
            else:
                next_id = ref if ref is not None else _head(conn, repository_id)
            tree = self._tree(conn)
            items: list[CommitInfo] = []
            while next_id is not None:
                row = _commit_row(conn, repository_id, next_id)
                if _log_matches(conn, tree, repository_id, row, prefix, object_path):
                    if len(items) == amount:
                        return Page(items, True, items[-1].id)
                    items.append(_commit_info(row))
                next_id = row.first_parent
            return Page(items, False, None)

        return await self._read(run)

    # --- sessions ----------------------------------------------------------------------------

    async def create_session(self, repository_id: str, *, created_by: Committer) -> SessionInfo:
        session_id = str(uuid.uuid4())

        def run(conn: sa.Connection) -> SessionInfo:
            conn.execute(
                sa.insert(repo_sessions).values(
                    id=session_id,
                    repository_id=repository_id,
                    base_commit=_head(conn, repository_id),
                    state="open",
                    created_by_type=created_by.type,
                    created_by_id=created_by.id,
                    created_by_name=created_by.name,
                    created_at=now_micros(),
                    commit_id=None,
                    change_seq=0,
                )
            )
            return _session_info(_session_row(conn, repository_id, session_id))

        return await self._write(run)

    async def get_session(self, repository_id: str, session_id: str) -> SessionInfo:
        return await self._read(
            lambda conn: _session_info(_session_row(conn, repository_id, session_id))
        )

    async def open_session(self, repository_id: str, session_id: str) -> SessionInfo:
        return await self._read(
            lambda conn: _session_info(_open_session_row(conn, repository_id, session_id))
        )

    async def rollback_session(self, repository_id: str, session_id: str) -> None:
        def run(conn: sa.Connection) -> None:
            _lock_open_session(conn, repository_id, session_id)
            conn.execute(
                sa.update(repo_sessions)
                .where(repo_sessions.c.id == session_id)
                .values(state="rolled_back")
            )
            conn.execute(sa.delete(staged_changes).where(staged_changes.c.session_id == session_id))

        await self._write(run)

    # --- staging -----------------------------------------------------------------------------

    async def stage_put(self, repository_id: str, session_id: str, path: str, entry: Entry) -> None:
        await self.stage_put_many(repository_id, session_id, [(path, entry)])

    async def stage_put_many(
        self, repository_id: str, session_id: str, items: Sequence[tuple[str, Entry]]
    ) -> None:
        """Stage many puts in one transaction (bulk loads, imports, grouped uploads)."""
        latest = dict(items)  # a path given twice: the last entry wins

        def run(conn: sa.Connection) -> None:
            _lock_open_session(conn, repository_id, session_id)
            upsert_staged(
                conn,
                (
                    {"session_id": session_id, "path": path, "entry": dump_json(entry_value(e))}
                    for path, e in latest.items()
                ),
            )

        await self._write(run)

    async def stage_delete(self, repository_id: str, session_id: str, path: str) -> bool:
        """Stage a delete; True if the path existed in the session's view."""
        return await self.stage_delete_many(repository_id, session_id, [path]) == 1

    async def stage_delete_many(
        self, repository_id: str, session_id: str, paths: Sequence[str]
    ) -> int:
        """Stage deletes; returns how many of the (distinct) paths existed."""
        unique = sorted(set(paths))

        def run(conn: sa.Connection) -> int:
            row = _lock_open_session(conn, repository_id, session_id)
            base = _root(conn, repository_id, row.base_commit)
            staged = _staged_values(conn, session_id, unique)
            base_values = _lookup_many(self._tree(conn), base, unique)
            tombstones: list[dict[str, Any]] = []
            unstage: list[str] = []
            existed = 0
            for path, old in zip(unique, base_values, strict=True):
                current = staged.get(path, old)
                if current is None:
                    continue
                existed += 1
                if old is None:
                    unstage.append(path)  # only ever staged: forget it
                else:
                    tombstones.append({"session_id": session_id, "path": path, "entry": None})
            upsert_staged(conn, tombstones)
            for start in range(0, len(unstage), _LOOKUP_BATCH):
                conn.execute(
                    sa.delete(staged_changes).where(
                        staged_changes.c.session_id == session_id,
                        staged_changes.c.path.in_(unstage[start : start + _LOOKUP_BATCH]),
                    )
                )
            return existed

        return await self._write(run)

    async def stage_copy(
        self, repository_id: str, session_id: str, source: str, destination: str
    ) -> Entry:
        """Stage ``destination`` as a copy of ``source`` (same address; fresh last_modified)."""

        def run(conn: sa.Connection) -> Entry:
            row = _lock_open_session(conn, repository_id, session_id)
            value = self._session_value(conn, repository_id, row, source)
            if value is None:
                raise ObjectNotFound(source)
            copied = [*value[:4], now_micros(), value[5]]
            upsert_staged(
                conn,
                [{"session_id": session_id, "path": destination, "entry": dump_json(copied)}],
            )
            return value_entry(copied)

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

        def run(conn: sa.Connection) -> Page[ChangeRecord]:
            _session_row(conn, repository_id, session_id)
            staged = StagedCursor(conn, session_id, low=prefix, high=key_after_prefix(prefix))
            items, more = list_page(
                staged, prefix=prefix, delimiter=None, after=after, amount=amount
            )
            records = [
                ChangeRecord(i.path, None if i.payload is None else value_entry(i.payload))
                for i in items
            ]
            return _page(records, more, items)

        return await self._read(run)

    # --- reads -------------------------------------------------------------------------------

    def _session_value(
        self, conn: sa.Connection, repository_id: str, session: Any, path: str
    ) -> Value | None:
        staged = _staged_values(conn, session.id, [path])
        if path in staged:
            return staged[path]
        return self._tree(conn).get(_root(conn, repository_id, session.base_commit), path)

    async def get_entry(
        self,
        repository_id: str,
        path: str,
        *,
        session_id: str | None = None,
        ref: str | None = None,
    ) -> Entry:
        """The entry at ``path`` in a session's view, at commit ``ref``, or at HEAD."""

        def run(conn: sa.Connection) -> Entry:
            if session_id is not None:
                session = _session_row(conn, repository_id, session_id)
                value = self._session_value(conn, repository_id, session, path)
            else:
                commit_id = ref if ref is not None else _head(conn, repository_id)
                value = self._tree(conn).get(_root(conn, repository_id, commit_id), path)
            if value is None:
                raise ObjectNotFound(path)
            return value_entry(value)

        return await self._read(run)

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

        def run(conn: sa.Connection) -> Page[ListingItem]:
            cursor = self._view(conn, repository_id, session_id, ref, prefix)
            items, more = list_page(
                cursor, prefix=prefix, delimiter=delimiter, after=after, amount=amount
            )
            listing = [
                ListingItem(i.path, "prefix", None)
                if i.is_group
                else ListingItem(i.path, "object", value_entry(i.payload))
                for i in items
            ]
            return _page(listing, more, items)

        return await self._read(run)

    def _view(
        self,
        conn: sa.Connection,
        repository_id: str,
        session_id: str | None,
        ref: str | None,
        prefix: str,
    ) -> Cursor:
        tree = self._tree(conn)
        if session_id is not None:
            session = _session_row(conn, repository_id, session_id)
            root = _root(conn, repository_id, session.base_commit)
            staged = StagedCursor(conn, session_id, low=prefix, high=key_after_prefix(prefix))
            return OverlayCursor(TreeCursor(tree, root, readahead=True), staged)
        commit_id = ref if ref is not None else _head(conn, repository_id)
        return TreeCursor(tree, _root(conn, repository_id, commit_id), readahead=True)

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

        def run(conn: sa.Connection) -> Page[ListingItem]:
            tree = self._tree(conn)
            old_view: Callable[[], Cursor]
            new_view: Callable[[], Cursor]
            if session_id is not None:
                session = _session_row(conn, repository_id, session_id)
                base = _root(conn, repository_id, session.base_commit)
                high = key_after_prefix(prefix)

                def staged() -> Cursor:
                    return StagedCursor(conn, session_id, low=prefix, high=high)

                cursor: Cursor = ChangesCursor(TreeCursor(tree, base), staged())

                def old_view() -> Cursor:
                    return TreeCursor(tree, base)

                def new_view() -> Cursor:
                    return OverlayCursor(TreeCursor(tree, base), staged())

            else:
                old = EMPTY_ROOT if left is None else _root(conn, repository_id, left)
                new_id = right if right is not None else _head(conn, repository_id)
                new = _root(conn, repository_id, new_id)
                cursor = DiffCursor(tree, old, new)

                def old_view() -> Cursor:
                    return TreeCursor(tree, old)

                def new_view() -> Cursor:
                    return TreeCursor(tree, new)

            items, more = list_page(
                cursor, prefix=prefix, delimiter=delimiter, after=after, amount=amount
            )
            listing = [_diff_item(i, old_view, new_view) for i in items]
            return _page(listing, more, items)

        return await self._read(run)

    # --- commit and revert -------------------------------------------------------------------

    async def commit_session(
        self,
        repository_id: str,
        session_id: str,
        *,
        message: str,
        metadata: Mapping[str, str],
        committer: Committer,
    ) -> str:
        """Land the session's changes on HEAD (three-way merge when HEAD moved)."""

        def plan(conn: sa.Connection) -> _Plan:
            session = _open_session_row(conn, repository_id, session_id)
            head = _head(conn, repository_id)
            base = _root(conn, repository_id, session.base_commit)
            head_root = _root(conn, repository_id, head)
            tree = self._tree(conn)
            # one fetch per tree level for the paths of (the first) staged changes
            first = _staged_paths(conn, session_id, _LOOKUP_BATCH)
            tree.prefetch_paths(base, first)
            if head_root != base:
                tree.prefetch_paths(head_root, first)
            conflicts: list[str] = []
            changes = _merge(
                TreeCursor(tree, base),
                None if head_root == base else TreeCursor(tree, head_root),
                StagedCursor(conn, session_id),
                conflicts,
            )
            rewrite = tree.apply(head_root, changes)
            if conflicts:
                raise MergeConflict(conflicts)
            return _Plan(head, rewrite, tree.stats(rewrite.root), session.change_seq)

        return await self._land(
            repository_id, plan, message, metadata, committer, session_id=session_id
        )

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

        def plan(conn: sa.Connection) -> _Plan:
            head = _head(conn, repository_id)
            head_root = _root(conn, repository_id, head)
            parent_root = _root(conn, repository_id, target.parents[0])
            tree = self._tree(conn)
            conflicts: list[str] = []
            changes = _inverse(
                DiffCursor(tree, parent_root, target.meta_range_id),
                TreeCursor(tree, head_root),
                conflicts,
            )
            rewrite = tree.apply(head_root, changes)
            if conflicts:
                raise MergeConflict(conflicts)
            return _Plan(head, rewrite, tree.stats(rewrite.root), None)

        return await self._land(
            repository_id,
            plan,
            f'Revert "{target.message}"' if message is None else message,
            metadata or {},
            committer,
            session_id=None,
        )

    async def _land(
        self,
        repository_id: str,
        plan_fn: Callable[[sa.Connection], _Plan],
        message: str,
        metadata: Mapping[str, str],
        committer: Committer,
        *,
        session_id: str | None,
    ) -> str:
        def land(conn: sa.Connection, plan: _Plan) -> str:
            write_nodes(conn, plan.rewrite.nodes)
            commit_id, row = _commit_record(
                repository_id,
                parents=(plan.head,),
                root=plan.rewrite.root,
                stats=plan.stats,
                message=message,
                metadata=metadata,
                committer=committer,
            )
            moved = conn.execute(
                sa.update(refs)
                .where(refs.c.repository_id == repository_id, refs.c.head == plan.head)
                .values(head=commit_id)
            )
            if moved.rowcount != 1:
                raise _Retry
            if session_id is not None:
                closed = conn.execute(
                    sa.update(repo_sessions)
                    .where(
                        repo_sessions.c.id == session_id,
                        repo_sessions.c.state == "open",
                        repo_sessions.c.change_seq == plan.session_seq,
                    )
                    .values(state="committed", commit_id=commit_id)
                )
                if closed.rowcount != 1:
                    raise _Retry
                conn.execute(
                    sa.delete(staged_changes).where(staged_changes.c.session_id == session_id)
                )
            conn.execute(sa.insert(commits).values(row))
            return commit_id

        # First optimistically: plan on a snapshot, hold the write lock only to land. When
        # that loses the race, plan again inside the write transaction, where on SQLite
        # (one writer) nothing can move under it; elsewhere the compare-and-swap still guards.
        plan = await self._read(plan_fn)
        try:
            return await self._write(lambda conn: land(conn, plan))
        except _Retry:
            pass
        while True:
            try:
                return await self._write(lambda conn: land(conn, plan_fn(conn)))
            except _Retry:
                continue


# --- merging -----------------------------------------------------------------------------------


def _value_at(cursor: TreeCursor, key: str) -> Value | None:
    cursor.seek(key)
    item = cursor.peek()
    return item[1] if item is not None and item[0] == key else None


def _merge(
    base: TreeCursor, head: TreeCursor | None, staged: Cursor, conflicts: list[str]
) -> Iterator[Change]:
    """The staged changes to apply on HEAD; paths HEAD also changed go to ``conflicts``.

    ``head`` is None when HEAD is still the session's base. A staged change equal to the base
    is no change; one equal to what HEAD already has is already applied.
    """
    while (item := staged.peek()) is not None:
        staged.advance()
        key, value = item
        old = _value_at(base, key)
        if value == old:
            continue
        if head is not None:
            current = _value_at(head, key)
            if current != old:
                if current != value:
                    conflicts.append(key)
                continue
        yield key, value


def _inverse(changes: DiffCursor, head: TreeCursor, conflicts: list[str]) -> Iterator[Change]:
    """Undo ``parent -> commit`` changes on HEAD; paths HEAD changed since go to ``conflicts``."""
    while (item := changes.peek()) is not None:
        changes.advance()
        key, (before, after) = item
        if _value_at(head, key) != after:
            conflicts.append(key)
            continue
        yield key, before


# --- rows and conversions ----------------------------------------------------------------------


def _check_amount(amount: int) -> None:
    if amount < 1:
        raise ValueError("amount must be at least 1")


def _page(items: list[T], more: bool, source: list[PageItem]) -> Page[T]:
    return Page(items, more, source[-1].path if more else None)


def _diff_item(
    item: PageItem, old_view: Callable[[], Cursor], new_view: Callable[[], Cursor]
) -> ListingItem:
    if item.is_group:
        before = _has_prefix(old_view(), item.path)
        after = _has_prefix(new_view(), item.path)
        status = "added" if not before else "removed" if not after else "modified"
        return ListingItem(item.path, "prefix", None, status)
    old, new = item.payload
    if old is None:
        return ListingItem(item.path, "object", value_entry(new), "added")
    if new is None:
        return ListingItem(item.path, "object", None, "removed")
    return ListingItem(item.path, "object", value_entry(new), "modified")


def _has_prefix(cursor: Cursor, prefix: str) -> bool:
    cursor.seek(prefix)
    item = cursor.peek()
    return item is not None and item[0].startswith(prefix)


def _head_or_none(conn: sa.Connection, repository_id: str) -> str | None:
    head: str | None = conn.execute(
        sa.select(refs.c.head).where(refs.c.repository_id == repository_id)
    ).scalar_one_or_none()
    return head


def _head(conn: sa.Connection, repository_id: str) -> str:
    head = _head_or_none(conn, repository_id)
    if head is None:
        raise RefNotFound("HEAD")
    return head


def _commit_row_or_none(conn: sa.Connection, repository_id: str, commit_id: str) -> Any:
    return conn.execute(
        sa.select(commits).where(
            commits.c.repository_id == repository_id, commits.c.id == commit_id
        )
    ).one_or_none()


def _commit_row(conn: sa.Connection, repository_id: str, commit_id: str) -> Any:
    row = _commit_row_or_none(conn, repository_id, commit_id)
    if row is None:
        raise RefNotFound(commit_id)
    return row


def _root(conn: sa.Connection, repository_id: str, commit_id: str) -> str:
    root: str | None = conn.execute(
        sa.select(commits.c.meta_range_id).where(
            commits.c.repository_id == repository_id, commits.c.id == commit_id
        )
    ).scalar_one_or_none()
    if root is None:
        raise RefNotFound(commit_id)
    return root


def _commit_info(row: Any) -> CommitInfo:
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


def _commit_record(
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


def _log_matches(
    conn: sa.Connection,
    tree: Tree,
    repository_id: str,
    row: Any,
    prefix: str | None,
    object_path: str | None,
) -> bool:
    if prefix is None and object_path is None:
        return True
    parent = (
        EMPTY_ROOT if row.first_parent is None else _root(conn, repository_id, row.first_parent)
    )
    if object_path is not None and tree.get(parent, object_path) == tree.get(
        row.meta_range_id, object_path
    ):
        return False
    if object_path is not None and prefix is not None:
        return object_path.startswith(prefix)
    if prefix is not None:
        return _has_prefix(DiffCursor(tree, parent, row.meta_range_id), prefix)
    return True


# Built once: the staging path runs these in every transaction.
_SESSION_ROW = sa.select(repo_sessions).where(repo_sessions.c.id == sa.bindparam("session"))
_BUMP_OPEN_SESSION = (
    sa.update(repo_sessions)
    .where(
        repo_sessions.c.id == sa.bindparam("session"),
        repo_sessions.c.repository_id == sa.bindparam("repository"),
        repo_sessions.c.state == "open",
    )
    .values(change_seq=repo_sessions.c.change_seq + 1)
)


def _session_row(conn: sa.Connection, repository_id: str, session_id: str) -> Any:
    row = conn.execute(_SESSION_ROW, {"session": session_id}).one_or_none()
    if row is None or row.repository_id != repository_id:
        raise SessionNotFound(session_id)
    return row


def _open_session_row(conn: sa.Connection, repository_id: str, session_id: str) -> Any:
    row = _session_row(conn, repository_id, session_id)
    if row.state != "open":
        raise SessionClosed(session_id, row.state)
    return row


def _lock_open_session(conn: sa.Connection, repository_id: str, session_id: str) -> Any:
    """In a write transaction: check the session is open and bump its change counter.

    The update comes first so that, on databases with row locks, it serializes against a
    concurrent commit of the same session.
    """
    bumped = conn.execute(_BUMP_OPEN_SESSION, {"session": session_id, "repository": repository_id})
    row = _session_row(conn, repository_id, session_id)
    if bumped.rowcount != 1:
        raise SessionClosed(session_id, row.state)
    return row


def _session_info(row: Any) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        repository_id=row.repository_id,
        base_commit=row.base_commit,
        state=row.state,
        created_by=Committer(row.created_by_type, row.created_by_id, row.created_by_name),
        created_at=from_micros(row.created_at),
        commit_id=row.commit_id,
    )


def _staged_values(conn: sa.Connection, session_id: str, paths: Sequence[str]) -> dict[str, Any]:
    """Staged payloads of those ``paths`` that have a staged change (None: staged delete)."""
    found: dict[str, Any] = {}
    c = staged_changes.c
    for start in range(0, len(paths), _LOOKUP_BATCH):
        rows = conn.execute(
            sa.select(c.path, c.entry).where(
                c.session_id == session_id, c.path.in_(paths[start : start + _LOOKUP_BATCH])
            )
        )
        for path, entry in rows:
            found[path] = None if entry is None else canonical.loads(entry)
    return found


def _staged_paths(conn: sa.Connection, session_id: str, limit: int) -> list[str]:
    c = staged_changes.c
    query = sa.select(c.path).where(c.session_id == session_id).order_by(c.path).limit(limit)
    return list(conn.execute(query).scalars())


def _lookup_many(tree: Tree, root: str, sorted_keys: Sequence[str]) -> list[Value | None]:
    tree.prefetch_paths(root, sorted_keys)
    cursor = TreeCursor(tree, root)
    return [_value_at(cursor, key) for key in sorted_keys]

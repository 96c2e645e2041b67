"""Commits: the initial commit, planning a commit or a revert, and landing a plan.

A plan is made on a read snapshot or inside the write transaction that lands it: the changes
three-way merged onto the current HEAD into a new tree (:mod:`.merge`). Landing writes the new
tree nodes, moves HEAD by compare-and-swap, closes the session and clears its staging, and
inserts the commit row; :class:`HeadMoved` when HEAD or the session moved since the plan.

Landing also updates the garbage collector's books (:mod:`.books`) in its transaction: what
the new HEAD tree references, and what left it. Nodes written by a plan that did not land are
rolled back with its transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from lamina_server.principals import Committer
from lamina_server.versioning import books, rows
from lamina_server.versioning.cursors import DiffCursor, TreeCursor
from lamina_server.versioning.errors import MergeConflict, VersioningError
from lamina_server.versioning.merge import inverse, merge
from lamina_server.versioning.models import CommitInfo
from lamina_server.versioning.sql import StagedCursor, write_nodes
from lamina_server.versioning.tables import commits, refs, repo_sessions
from lamina_server.versioning.tree import EMPTY_LEAF, EMPTY_ROOT, Rewrite, Tree

INITIAL_MESSAGE = "Repository created"


class HeadMoved(VersioningError):
    """HEAD or the session moved between planning a commit and landing it (caught by the
    store, which plans again; never raised to its callers)."""


@dataclass(frozen=True, slots=True)
class Plan:
    head: str  # the HEAD the plan was made on
    rewrite: Rewrite
    stats: tuple[int, int]  # object count and total size of the new tree
    session_seq: int | None  # the session's change counter when planned
    session_state: str = rows.OPEN  # the state the session was in (held: awaiting approval)


def init_repository(conn: sa.Connection, repository_id: str, committer: Committer) -> str:
    """The initial empty commit and HEAD; returns the commit's id."""
    if rows.head_or_none(conn, repository_id) is not None:
        raise VersioningError(f"repository {repository_id!r} is already initialized")
    write_nodes(conn, {EMPTY_ROOT: EMPTY_LEAF})
    commit_id, row = rows.commit_record(
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
    books.init_repository(conn, repository_id)
    return commit_id


def plan_commit(
    conn: sa.Connection, tree: Tree, repository_id: str, session_id: str, state: str = rows.OPEN
) -> Plan:
    """The staged changes of the session (in ``state``) merged onto HEAD
    (:class:`MergeConflict`)."""
    session = rows.open_session_row(conn, repository_id, session_id, state)
    head = rows.head(conn, repository_id)
    base = rows.root(conn, repository_id, session.base_commit)
    head_root = rows.root(conn, repository_id, head)
    # one fetch per tree level for the paths of (the first) staged changes
    first = rows.staged_paths(conn, session_id, rows.LOOKUP_BATCH)
    tree.prefetch_paths(base, first)
    if head_root != base:
        tree.prefetch_paths(head_root, first)
    conflicts: list[str] = []
    changes = merge(
        TreeCursor(tree, base),
        None if head_root == base else TreeCursor(tree, head_root),
        StagedCursor(conn, session_id),
        conflicts,
    )
    rewrite = tree.apply(head_root, changes)
    if conflicts:
        raise MergeConflict(conflicts)
    return Plan(head, rewrite, tree.stats(rewrite.root), session.change_seq, session.state)


def plan_revert(conn: sa.Connection, tree: Tree, repository_id: str, target: CommitInfo) -> Plan:
    """``target``'s changes against its (only) parent undone on HEAD (:class:`MergeConflict`)."""
    head = rows.head(conn, repository_id)
    head_root = rows.root(conn, repository_id, head)
    parent_root = rows.root(conn, repository_id, target.parents[0])
    conflicts: list[str] = []
    changes = inverse(
        DiffCursor(tree, parent_root, target.meta_range_id),
        TreeCursor(tree, head_root),
        conflicts,
    )
    rewrite = tree.apply(head_root, changes)
    if conflicts:
        raise MergeConflict(conflicts)
    return Plan(head, rewrite, tree.stats(rewrite.root), None)


def land(
    conn: sa.Connection,
    repository_id: str,
    plan: Plan,
    *,
    message: str,
    metadata: Mapping[str, str],
    committer: Committer,
    session_id: str | None,
) -> str:
    """Writes the plan's commit and moves HEAD to it; returns its id (:class:`HeadMoved`)."""
    write_nodes(conn, plan.rewrite.nodes)
    commit_id, row = rows.commit_record(
        repository_id,
        parents=(plan.head,),
        root=plan.rewrite.root,
        stats=plan.stats,
        message=message,
        metadata=metadata,
        committer=committer,
    )
    if not rows.move_head(conn, repository_id, plan.head, commit_id):
        raise HeadMoved
    if session_id is not None:
        closed = conn.execute(
            sa.update(repo_sessions)
            .where(
                repo_sessions.c.id == session_id,
                repo_sessions.c.state == plan.session_state,
                repo_sessions.c.change_seq == plan.session_seq,
            )
            .values(state="committed", commit_id=commit_id)
        )
        if closed.rowcount != 1:
            raise HeadMoved
        rows.clear_staged(conn, session_id)
    conn.execute(sa.insert(commits).values(row))
    books.commit(conn, repository_id, plan.rewrite, row["created_at"])
    return commit_id

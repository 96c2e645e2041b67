"""The engine's reads: each a synchronous function of one read snapshot's connection.

A view is a commit's tree (HEAD by default) or a session's: its base commit's tree with its
staged changes laid over it. Listings, diffs and the log page with :func:`.listing.list_page`,
so their cost follows the page, not the repository.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from lamina_server.versioning import rows
from lamina_server.versioning.codec import value_entry
from lamina_server.versioning.cursors import (
    ChangesCursor,
    Cursor,
    DiffCursor,
    OverlayCursor,
    TreeCursor,
)
from lamina_server.versioning.errors import InvalidCursor, ObjectNotFound
from lamina_server.versioning.listing import PageItem, key_after_prefix, list_page
from lamina_server.versioning.merge import Value
from lamina_server.versioning.models import ChangeRecord, CommitInfo, Entry, ListingItem, Page
from lamina_server.versioning.sql import StagedCursor
from lamina_server.versioning.tree import EMPTY_ROOT, Tree

T = TypeVar("T")


def check_amount(amount: int) -> None:
    if amount < 1:
        raise ValueError("amount must be at least 1")


def _page(items: list[T], more: bool, source: list[PageItem]) -> Page[T]:
    return Page(items, more, source[-1].path if more else None)


def session_value(
    conn: sa.Connection, tree: Tree, repository_id: str, session: Any, path: str
) -> Value | None:
    """The value at ``path`` in the view of ``session`` (a session row)."""
    staged = rows.staged_values(conn, session.id, [path])
    if path in staged:
        return staged[path]
    return tree.get(rows.root(conn, repository_id, session.base_commit), path)


def entry(
    conn: sa.Connection,
    tree: Tree,
    repository_id: str,
    path: str,
    session_id: str | None,
    ref: str | None,
) -> Entry:
    if session_id is not None:
        session = rows.session_row(conn, repository_id, session_id)
        value = session_value(conn, tree, repository_id, session, path)
    else:
        commit_id = ref if ref is not None else rows.head(conn, repository_id)
        value = tree.get(rows.root(conn, repository_id, commit_id), path)
    if value is None:
        raise ObjectNotFound(path)
    return value_entry(value)


def _view(
    conn: sa.Connection,
    tree: Tree,
    repository_id: str,
    session_id: str | None,
    ref: str | None,
    prefix: str,
) -> Cursor:
    if session_id is not None:
        session = rows.session_row(conn, repository_id, session_id)
        base = rows.root(conn, repository_id, session.base_commit)
        staged = StagedCursor(conn, session_id, low=prefix, high=key_after_prefix(prefix))
        return OverlayCursor(TreeCursor(tree, base, readahead=True), staged)
    commit_id = ref if ref is not None else rows.head(conn, repository_id)
    return TreeCursor(tree, rows.root(conn, repository_id, commit_id), readahead=True)


def objects_page(
    conn: sa.Connection,
    tree: Tree,
    repository_id: str,
    *,
    session_id: str | None,
    ref: str | None,
    prefix: str,
    delimiter: str | None,
    after: str | None,
    amount: int,
) -> Page[ListingItem]:
    cursor = _view(conn, tree, repository_id, session_id, ref, prefix)
    items, more = list_page(cursor, prefix=prefix, delimiter=delimiter, after=after, amount=amount)
    listing = [
        ListingItem(i.path, "prefix", None)
        if i.is_group
        else ListingItem(i.path, "object", value_entry(i.payload))
        for i in items
    ]
    return _page(listing, more, items)


def tree_entries(
    conn: sa.Connection, tree: Tree, repository_id: str, ref: str, prefix: str
) -> list[tuple[str, Entry]]:
    """Every object under ``prefix`` at commit ``ref``, in path order: one cursor walk with
    readahead, no paging."""
    cursor = TreeCursor(tree, rows.root(conn, repository_id, ref), readahead=True)
    cursor.seek(prefix)
    found: list[tuple[str, Entry]] = []
    while (current := cursor.peek()) is not None and current[0].startswith(prefix):
        found.append((current[0], value_entry(current[1])))
        cursor.advance()
    return found


def diff_page(
    conn: sa.Connection,
    tree: Tree,
    repository_id: str,
    *,
    left: str | None,
    right: str | None,
    session_id: str | None,
    prefix: str,
    delimiter: str | None,
    after: str | None,
    amount: int,
) -> Page[ListingItem]:
    old_view: Callable[[], Cursor]
    new_view: Callable[[], Cursor]
    if session_id is not None:
        session = rows.session_row(conn, repository_id, session_id)
        base = rows.root(conn, repository_id, session.base_commit)
        high = key_after_prefix(prefix)

        def staged() -> Cursor:
            return StagedCursor(conn, session_id, low=prefix, high=high)

        cursor: Cursor = ChangesCursor(TreeCursor(tree, base), staged())

        def old_view() -> Cursor:
            return TreeCursor(tree, base)

        def new_view() -> Cursor:
            return OverlayCursor(TreeCursor(tree, base), staged())

    else:
        old = EMPTY_ROOT if left is None else rows.root(conn, repository_id, left)
        new_id = right if right is not None else rows.head(conn, repository_id)
        new = rows.root(conn, repository_id, new_id)
        cursor = DiffCursor(tree, old, new)

        def old_view() -> Cursor:
            return TreeCursor(tree, old)

        def new_view() -> Cursor:
            return TreeCursor(tree, new)

    items, more = list_page(cursor, prefix=prefix, delimiter=delimiter, after=after, amount=amount)
    listing = [_diff_item(i, old_view, new_view) for i in items]
    return _page(listing, more, items)


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


def changes_page(
    conn: sa.Connection,
    repository_id: str,
    session_id: str,
    *,
    prefix: str,
    after: str | None,
    amount: int,
) -> Page[ChangeRecord]:
    rows.session_row(conn, repository_id, session_id)
    staged = StagedCursor(conn, session_id, low=prefix, high=key_after_prefix(prefix))
    items, more = list_page(staged, prefix=prefix, delimiter=None, after=after, amount=amount)
    records = [
        ChangeRecord(i.path, None if i.payload is None else value_entry(i.payload)) for i in items
    ]
    return _page(records, more, items)


def log_page(
    conn: sa.Connection,
    tree: Tree,
    repository_id: str,
    *,
    ref: str | None,
    after: str | None,
    amount: int,
    prefix: str | None,
    object_path: str | None,
) -> Page[CommitInfo]:
    if after is not None:
        row = rows.commit_row_or_none(conn, repository_id, after)
        if row is None:
            raise InvalidCursor(after, "not a commit of this repository")
        next_id: str | None = row.first_parent
    else:
        next_id = ref if ref is not None else rows.head(conn, repository_id)
    items: list[CommitInfo] = []
    while next_id is not None:
        row = rows.commit_row(conn, repository_id, next_id)
        if _log_matches(conn, tree, repository_id, row, prefix, object_path):
            if len(items) == amount:
                return Page(items, True, items[-1].id)
            items.append(rows.commit_info(row))
        next_id = row.first_parent
    return Page(items, False, None)


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
        EMPTY_ROOT if row.first_parent is None else rows.root(conn, repository_id, row.first_parent)
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

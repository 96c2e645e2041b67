"""Three-way merge over sorted cursors: what a commit or a revert changes on HEAD.

Pure functions of cursors over trees and staged changes; they read nothing else and write
nothing. Paths that both sides changed differently are collected as conflicts; the caller
raises :class:`~lamina_server.versioning.errors.MergeConflict` once the changes are consumed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from lamina_server.versioning.cursors import Cursor, DiffCursor, TreeCursor
from lamina_server.versioning.tree import Tree

Value = Any
Change = tuple[str, Value | None]  # a path and its new value (None: removed)


def value_at(cursor: TreeCursor, key: str) -> Value | None:
    cursor.seek(key)
    item = cursor.peek()
    return item[1] if item is not None and item[0] == key else None


def values_at(tree: Tree, root: str, sorted_keys: Sequence[str]) -> list[Value | None]:
    """The values at ``sorted_keys`` in the tree at ``root`` (None: absent), in one pass."""
    tree.prefetch_paths(root, sorted_keys)
    cursor = TreeCursor(tree, root)
    return [value_at(cursor, key) for key in sorted_keys]


def merge(
    base: TreeCursor, head: TreeCursor | None, staged: Cursor, conflicts: list[str]
) -> Iterator[Change]:
    """The staged changes to apply on HEAD; paths HEAD also changed go to ``conflicts``.

    ``head`` is None when HEAD is still the session's base. A staged change equal to the base
    is no change; one equal to what HEAD already has is already applied.
    """
    while (item := staged.peek()) is not None:
        staged.advance()
        key, value = item
        old = value_at(base, key)
        if value == old:
            continue
        if head is not None:
            current = value_at(head, key)
            if current != old:
                if current != value:
                    conflicts.append(key)
                continue
        yield key, value


def inverse(changes: DiffCursor, head: TreeCursor, conflicts: list[str]) -> Iterator[Change]:
    """Undo ``parent -> commit`` changes on HEAD; paths HEAD changed since go to ``conflicts``."""
    while (item := changes.peek()) is not None:
        changes.advance()
        key, (before, after) = item
        if value_at(head, key) != after:
            conflicts.append(key)
            continue
        yield key, before

"""One page of a sorted listing: ``prefix``, ``delimiter`` grouping, an exclusive ``after``.

Written once over a :class:`~lamina_server.versioning.cursors.Cursor`, so objects at a commit,
a session's view and diffs page the same way. The work is bounded by the page: the cursor
seeks to the start, and a delimiter group is stepped over with one seek past its last
possible key rather than by visiting its members.

The cursor handed out (``next_offset``) is the last path emitted. Given back as ``after`` with
a delimiter, a path inside an emitted group resumes after the whole group.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lamina_server.versioning.cursors import Cursor
from lamina_server.versioning.errors import InvalidCursor

_MAX_CHAR = 0x10FFFF


class PageItem(NamedTuple):
    path: str
    payload: Any  # the cursor's payload; None for a group
    is_group: bool


def key_after_prefix(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix`` (None: none)."""
    chars = prefix
    while chars:
        code = ord(chars[-1])
        if code < _MAX_CHAR:
            code += 1
            if 0xD800 <= code <= 0xDFFF:  # surrogates are not characters of a valid path
                code = 0xE000
            return chars[:-1] + chr(code)
        chars = chars[:-1]
    return None


def group_of(key: str, prefix: str, delimiter: str | None) -> str | None:
    """The common prefix ``key`` rolls up into under ``delimiter``, if any."""
    if not delimiter or not key.startswith(prefix):
        return None
    i = key.find(delimiter, len(prefix))
    return None if i < 0 else key[: i + len(delimiter)]


def check_cursor(after: str) -> None:
    if "\x00" in after:
        raise InvalidCursor(after, "contains a NUL character")
    try:
        after.encode()
    except UnicodeEncodeError:
        raise InvalidCursor(after, "is not valid UTF-8") from None


def start_key(prefix: str, delimiter: str | None, after: str | None) -> str | None:
    """Where a page starts; None when nothing can follow ``after``."""
    if after is None:
        return prefix
    check_cursor(after)
    group = group_of(after, prefix, delimiter)
    target = key_after_prefix(group) if group is not None else after + "\x00"
    if target is None:
        return None
    return max(target, prefix)


def list_page(
    cursor: Cursor, *, prefix: str, delimiter: str | None, after: str | None, amount: int
) -> tuple[list[PageItem], bool]:
    """Up to ``amount`` items and whether more follow."""
    if amount < 1:
        raise ValueError("amount must be at least 1")
    start = start_key(prefix, delimiter, after)
    if start is None:
        return [], False
    cursor.seek(start)
    items: list[PageItem] = []
    while True:
        current = cursor.peek()
        if current is None or not current[0].startswith(prefix):
            return items, False
        if len(items) == amount:
            return items, True
        key = current[0]
        group = group_of(key, prefix, delimiter)
        if group is None:
            items.append(PageItem(key, current[1], False))
            cursor.advance()
            continue
        items.append(PageItem(group, None, True))
        past = key_after_prefix(group)
        if past is None:
            return items, False
        cursor.seek(past)

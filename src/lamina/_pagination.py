"""Pure helpers of limit/offset listings (``client.paginate_offset()``): the page a response
body makes, with the offset of the next page as the pager's cursor."""

from __future__ import annotations

from typing import Any

from lamina._errors import SerializationError
from lamina._types import Page

__all__ = ["offset_cursor", "offset_page"]


def offset_cursor(cursor: str | None) -> int:
    """The offset a pager cursor stands for (``None``: the first page)."""
    return int(cursor) if cursor else 0


def offset_page(data: Any, *, items_key: str, offset: int, limit: int) -> Page[Any]:
    """The page of a limit/offset response ``{items_key: [...], "total": n, ...}`` fetched at
    ``offset`` with ``limit``.

    There is more after it when the page is full, or, when the body says ``total``, while
    fewer than ``total`` items have been seen (a server that serves fewer than ``limit`` items
    per page is followed to the end); an empty page is always the last. A body that is not an
    object, or whose ``items_key`` is not a list, raises :class:`~lamina.SerializationError`.
    """
    if not isinstance(data, dict):
        raise SerializationError(
            f"a limit/offset page must be a JSON object, got {type(data).__name__}"
        )
    items = data.get(items_key)
    if not isinstance(items, list):
        raise SerializationError(
            f"a limit/offset page has no list {items_key!r} (keys: {sorted(data)})"
        )
    total = data.get("total")
    if isinstance(total, bool) or not isinstance(total, int):
        total = None
    seen = offset + len(items)
    has_more = bool(items) and (seen < total if total is not None else len(items) >= limit)
    return Page(
        items=items, has_more=has_more, next_offset=str(seen) if has_more else None, total=total
    )

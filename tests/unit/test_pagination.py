"""The pages of limit/offset listings (``client.paginate_offset``), from response bodies."""

from __future__ import annotations

from typing import Any

import pytest

from lamina import AsyncPager, Page, SerializationError
from lamina._pagination import offset_cursor, offset_page


def test_a_full_page_without_total_has_more() -> None:
    page = offset_page({"items": [1, 2]}, items_key="items", offset=4, limit=2)
    assert page == Page(items=[1, 2], has_more=True, next_offset="6", total=None)
    assert offset_cursor(page.next_offset) == 6
    assert offset_cursor(None) == 0


def test_a_short_or_empty_page_without_total_is_the_last() -> None:
    assert not offset_page({"items": [1]}, items_key="items", offset=0, limit=2).has_more
    assert not offset_page({"items": []}, items_key="items", offset=0, limit=2).has_more


def test_total_decides_when_the_server_sends_it() -> None:
    # A server that serves fewer items than asked is followed while total says more remain.
    capped = offset_page({"items": [1, 2], "total": 5}, items_key="items", offset=0, limit=10)
    assert (capped.has_more, capped.next_offset, capped.total) == (True, "2", 5)
    last = offset_page({"items": [4, 5], "total": 5}, items_key="items", offset=3, limit=2)
    assert (last.has_more, last.next_offset, last.total) == (False, None, 5)
    empty = offset_page({"items": [], "total": 9}, items_key="items", offset=9, limit=2)
    assert not empty.has_more
    # A total that is not a count is not one.
    odd = offset_page({"items": [1], "total": True}, items_key="items", offset=0, limit=2)
    assert odd.total is None


def test_custom_items_key() -> None:
    page = offset_page(
        {"evidence_packs": ["a"], "objects": 3}, items_key="evidence_packs", offset=0, limit=1
    )
    assert page.items == ["a"] and page.has_more


@pytest.mark.parametrize("body", [None, [], "text", {"results": []}, {"items": {"a": 1}}])
def test_a_body_without_the_list_is_a_serialization_error(body: Any) -> None:
    with pytest.raises(SerializationError):
        offset_page(body, items_key="items", offset=0, limit=2)


@pytest.mark.anyio
async def test_a_pager_over_offset_pages_follows_total_and_reports_it() -> None:
    data = list(range(7))

    async def fetch(cursor: str | None, size: int) -> Page[Any]:
        offset = offset_cursor(cursor)
        served = data[offset : offset + min(size, 3)]  # the server caps pages at 3
        return offset_page(
            {"items": served, "total": 7}, items_key="items", offset=offset, limit=size
        )

    pager: AsyncPager[Any] = AsyncPager(fetch, page_size=5)
    assert pager.total is None
    assert [item async for item in pager] == data
    assert pager.total == 7

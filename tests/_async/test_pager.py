"""AsyncPager over fetch functions: laziness, cursors, the total cap, page sizes, mapping."""

from __future__ import annotations

import pytest

from lamina import AsyncPager, Page, SerializationError

pytestmark = pytest.mark.anyio


class Listing:
    """A cursor-paginated listing of ``0..total-1``; the cursor is the last item returned."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.calls: list[tuple[str | None, int]] = []

    async def fetch(self, after: str | None, page_size: int) -> Page[int]:
        self.calls.append((after, page_size))
        start = 0 if after is None else int(after) + 1
        items = list(range(start, min(start + page_size, self.total)))
        has_more = start + page_size < self.total
        return Page(
            items=items, has_more=has_more, next_offset=str(items[-1]) if has_more else None
        )


async def test_iterates_every_item_threading_the_cursor() -> None:
    listing = Listing(7)
    assert [item async for item in AsyncPager(listing.fetch, page_size=3)] == list(range(7))
    assert listing.calls == [(None, 3), ("2", 3), ("5", 3)]


async def test_fetches_lazily() -> None:
    listing = Listing(10)
    pager = AsyncPager(listing.fetch, page_size=4)
    assert listing.calls == []
    assert await pager.__anext__() == 0
    assert listing.calls == [(None, 4)]
    for _ in range(3):
        await pager.__anext__()
    assert len(listing.calls) == 1
    assert await pager.__anext__() == 4
    assert len(listing.calls) == 2


async def test_amount_caps_the_total_without_fetching_more() -> None:
    listing = Listing(100)
    assert [item async for item in AsyncPager(listing.fetch, amount=5, page_size=3)] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert listing.calls == [(None, 3), ("2", 2)]  # the last request asks only for what is left

    listing = Listing(100)
    assert [item async for item in AsyncPager(listing.fetch, amount=0)] == []
    assert listing.calls == []


async def test_a_page_with_more_items_than_asked_is_cut_to_the_cap() -> None:
    async def generous(after: str | None, page_size: int) -> Page[int]:
        return Page(items=list(range(10)), has_more=True, next_offset="9")

    assert [item async for item in AsyncPager(generous, amount=4)] == [0, 1, 2, 3]


async def test_starts_after_the_given_cursor() -> None:
    listing = Listing(6)
    assert [item async for item in AsyncPager(listing.fetch, after="3")] == [4, 5]
    assert listing.calls == [("3", 100)]


async def test_stops_at_an_empty_page_even_if_it_says_has_more() -> None:
    calls: list[str | None] = []

    async def empty(after: str | None, page_size: int) -> Page[int]:
        calls.append(after)
        return Page(items=[], has_more=True, next_offset="x")

    assert [item async for item in AsyncPager(empty)] == []
    assert calls == [None]


async def test_has_more_without_a_cursor_is_a_serialization_error() -> None:
    async def broken(after: str | None, page_size: int) -> Page[int]:
        return Page(items=[1], has_more=True, next_offset=None)

    with pytest.raises(SerializationError, match="next_offset"):
        [item async for item in AsyncPager(broken)]


async def test_pages_yields_pages_and_restarts_on_each_call() -> None:
    listing = Listing(5)
    pager = AsyncPager(listing.fetch, page_size=2)
    first = [page async for page in pager.pages()]
    assert [page.items for page in first] == [[0, 1], [2, 3], [4]]
    assert [page.has_more for page in first] == [True, True, False]
    assert [page.items async for page in pager.pages()] == [[0, 1], [2, 3], [4]]
    assert len(listing.calls) == 6


async def test_map_keeps_the_cap_and_page_size() -> None:
    listing = Listing(50)
    pager = AsyncPager(listing.fetch, amount=3, page_size=2).map(lambda n: f"item-{n}")
    assert [item async for item in pager] == ["item-0", "item-1", "item-2"]
    assert listing.calls == [(None, 2), ("1", 1)]


async def test_a_limit_offset_route_fits_through_its_fetch_function() -> None:
    rows = [f"row-{n}" for n in range(25)]
    requests: list[tuple[int, int]] = []

    async def fetch(after: str | None, page_size: int) -> Page[str]:
        offset = int(after or 0)
        requests.append((offset, page_size))  # what would go on the wire as ?offset=&limit=
        items = rows[offset : offset + page_size]
        more = offset + len(items) < len(rows)
        return Page(items=items, has_more=more, next_offset=str(offset + len(items)))

    assert [row async for row in AsyncPager(fetch, page_size=10)] == rows
    assert requests == [(0, 10), (10, 10), (20, 10)]


@pytest.mark.parametrize(("amount", "page_size"), [(-1, 10), (None, 0)])
async def test_invalid_sizes_are_rejected(amount: int | None, page_size: int) -> None:
    with pytest.raises(ValueError):
        AsyncPager(Listing(1).fetch, amount=amount, page_size=page_size)

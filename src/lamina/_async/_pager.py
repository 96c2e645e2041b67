"""Lazy iteration over a paginated listing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from attrs import evolve

from lamina._errors import InvalidArgumentError, SerializationError
from lamina._types import AsyncFetchPage, Page

__all__ = ["AsyncPager"]

T = TypeVar("T")
U = TypeVar("U")


class AsyncPager(Generic[T]):
    """Iterates the items of a listing, fetching pages only as they are needed.

    ``fetch_page(after, page_size)`` returns one :class:`~lamina.Page`: the items after the
    cursor ``after`` (``None`` for the first page). Any listing fits, including limit/offset
    routes, whose fetch function turns the cursor into an offset.

    - ``amount`` caps the total number of items (``None``: all; ``0``: no request at all);
    - ``page_size`` is the number of items asked for per request;
    - ``after`` starts the listing after that cursor.

    Iterate it for the items (``async for item in pager``), or call :meth:`pages` for the pages.
    The listing stops at the first page without ``has_more``, or at an empty page. ``total`` is
    the size of the whole listing as the last fetched page says it (``None`` before the first
    page, and for routes that do not say it).
    """

    def __init__(
        self,
        fetch_page: AsyncFetchPage[T],
        *,
        amount: int | None = None,
        page_size: int = 100,
        after: str | None = None,
    ) -> None:
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InvalidArgumentError(
                f"page_size must be a whole number of items, at least 1, got {page_size!r}"
            )
        if amount is not None and (
            isinstance(amount, bool) or not isinstance(amount, int) or amount < 0
        ):
            raise InvalidArgumentError(
                f"amount must be a whole number of items, 0 or more (or None for all), "
                f"got {amount!r}"
            )
        self._fetch_page = fetch_page
        self._amount = amount
        self._page_size = page_size
        self._after = after
        self._items: AsyncIterator[T] | None = None
        self.total: int | None = None

    def map(self, func: Callable[[T], U]) -> AsyncPager[U]:
        """A pager over ``func(item)`` for each item, with the same cap, page size and start."""
        fetch_page = self._fetch_page

        async def fetch_mapped(after: str | None, page_size: int) -> Page[U]:
            page = await fetch_page(after, page_size)
            return Page(
                items=[func(item) for item in page.items],
                has_more=page.has_more,
                next_offset=page.next_offset,
                total=page.total,
            )

        return AsyncPager(
            fetch_mapped, amount=self._amount, page_size=self._page_size, after=self._after
        )

    def __aiter__(self) -> AsyncPager[T]:
        return self

    async def __anext__(self) -> T:
        if self._items is None:
            self._items = self._iterate_items()
        return await anext(self._items)

    async def _iterate_items(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.items:
                yield item

    async def pages(self) -> AsyncIterator[Page[T]]:
        """The pages of the listing, from the start (each call fetches them again).

        With ``amount``, a page holding more items than asked for is cut to the cap. A page that says ``has_more`` without
        a cursor raises :class:`~lamina.SerializationError` (it would restart the listing).
        """
        remaining = self._amount
        cursor = self._after
        while remaining is None or remaining > 0:
            size = self._page_size if remaining is None else min(self._page_size, remaining)
            page = await self._fetch_page(cursor, size)
            if page.has_more and not page.next_offset:
                raise SerializationError("a page says has_more but gives no next_offset cursor")
            if page.total is not None:
                self.total = page.total
            if remaining is not None:
                if len(page.items) > remaining:
                    page = evolve(page, items=page.items[:remaining])
                remaining -= len(page.items)
            yield page
            if not page.has_more or not page.items:
                return
            cursor = page.next_offset

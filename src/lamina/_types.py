"""Small shared types: the "use the client default" sentinel, request options, listing pages."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Generic, TypedDict, TypeVar

import httpx
from attrs import frozen

__all__ = [
    "NOT_GIVEN",
    "AsyncFetchPage",
    "FetchPage",
    "NotGiven",
    "Page",
    "RequestContent",
    "RequestOptions",
    "TimeoutTypes",
]

T = TypeVar("T")


class NotGiven:
    """Type of :data:`NOT_GIVEN`: "not passed, use the client's default" (``None`` may mean
    something else, e.g. ``timeout=None`` disables the timeout)."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()

#: What ``timeout=`` accepts: seconds for every phase, an ``httpx.Timeout``, or ``None`` (no limit).
TimeoutTypes = float | httpx.Timeout | None


#: A request body: bytes, text, or chunks of bytes (a streamed body is never retried).
RequestContent = bytes | str | Iterable[bytes] | AsyncIterable[bytes]


class RequestOptions(TypedDict, total=False):
    """The keyword options of ``client.request()``, shared by ``get()``/``post()``/``stream()``..."""

    params: Mapping[str, Any] | None
    json: Any
    content: RequestContent | None
    headers: Mapping[str, str] | None
    timeout: TimeoutTypes | NotGiven
    max_retries: int | NotGiven
    idempotent: bool | None
    follow_redirects: bool
    authenticated: bool


@frozen
class Page(Generic[T]):
    """One page of a cursor-paginated listing.

    ``next_offset`` is the opaque cursor of the next page (the ``after`` of the next request);
    it is ``None`` when ``has_more`` is false. ``total`` is the number of items of the whole
    listing, when the route says it (limit/offset routes do), else ``None``.
    """

    items: list[T]
    has_more: bool
    next_offset: str | None = None
    total: int | None = None


#: ``fetch_page(after, page_size)`` behind an :class:`~lamina.AsyncPager`.
AsyncFetchPage = Callable[[str | None, int], Awaitable[Page[T]]]
#: ``fetch_page(after, page_size)`` behind a :class:`~lamina.Pager`.
FetchPage = Callable[[str | None, int], Page[T]]


@frozen
class Pagination:
    """The ``pagination`` member of the API's list envelope."""

    has_more: bool
    next_offset: str | None = None
    max_per_page: int | None = None


@frozen
class Envelope(Generic[T]):
    """The API's list envelope ``{"results": [...], "pagination": {...}}``."""

    results: list[T]
    pagination: Pagination

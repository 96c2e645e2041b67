"""The shared page parameters (``after``/``amount``) and response envelope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Query

from lamina_server.api.errors import bad_request

if TYPE_CHECKING:
    from lamina_server.versioning import Page

MAX_AMOUNT = 1000
_AMOUNT_SCHEMA = {"minimum": 1, "maximum": MAX_AMOUNT}


@dataclass(frozen=True, slots=True)
class PageParams:
    after: str | None
    amount: int


def check_amount(amount: int, field: str = "amount") -> int:
    if not 1 <= amount <= MAX_AMOUNT:
        raise bad_request(f"{field}: must be between 1 and {MAX_AMOUNT}, got {amount}")
    return amount


async def page_params(
    after: Annotated[
        str | None, Query(description="Pagination cursor: the previous page's next_offset")
    ] = None,
    amount: Annotated[
        int, Query(description="Results per page (1-1000)", json_schema_extra=_AMOUNT_SCHEMA)
    ] = 100,
) -> PageParams:
    """FastAPI dependency (a coroutine: FastAPI runs a plain function dependency in a worker
    thread); an empty ``after`` means the first page."""
    return PageParams(after=after or None, amount=check_amount(amount))


async def diff_page_params(
    after: Annotated[
        str | None, Query(description="Pagination cursor: the previous page's next_offset")
    ] = None,
    amount: Annotated[
        int, Query(description="Results per page (1-1000)", json_schema_extra=_AMOUNT_SCHEMA)
    ] = MAX_AMOUNT,
) -> PageParams:
    """Like :func:`page_params` with the contract's larger default for ``/diff``."""
    return PageParams(after=after or None, amount=check_amount(amount))


def envelope(
    results: list[Any], *, has_more: bool, next_offset: str | None, amount: int
) -> dict[str, Any]:
    return {
        "results": results,
        "pagination": {
            "has_more": has_more,
            "next_offset": (next_offset or "") if has_more else "",
            "max_per_page": amount,
        },
    }


def page_envelope(results: list[Any], page: Page[Any] | None, amount: int) -> dict[str, Any]:
    """``{"results", "pagination": {"has_more", "next_offset", "max_per_page"}}``.

    ``page`` is the engine page the results were built from (``None``: everything fits).
    ``next_offset`` is ``""`` when there is no further page, as the contract types it a string.
    """
    if page is None:
        return envelope(results, has_more=False, next_offset=None, amount=amount)
    return envelope(results, has_more=page.has_more, next_offset=page.next_offset, amount=amount)


# --- limit/offset lists (the governance extensions and the Velerian API) ----------------------

MAX_LIMIT = 1000
_LIMIT_SCHEMA = {"minimum": 1, "maximum": MAX_LIMIT}


@dataclass(frozen=True, slots=True)
class OffsetParams:
    limit: int
    offset: int


async def offset_params(
    limit: Annotated[
        int, Query(description="Items per page (1-1000)", json_schema_extra=_LIMIT_SCHEMA)
    ] = 50,
    offset: Annotated[int, Query(description="Items to skip", ge=0)] = 0,
) -> OffsetParams:
    """``limit``/``offset`` (a coroutine dependency, like :func:`page_params`)."""
    return OffsetParams(limit=check_amount(limit, "limit"), offset=offset)


def offset_envelope(items: list[Any], params: OffsetParams, total: int) -> dict[str, Any]:
    """``{"items", "limit", "offset", "total"}``."""
    return {"items": items, "limit": params.limit, "offset": params.offset, "total": total}

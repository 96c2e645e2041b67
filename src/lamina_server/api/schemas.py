"""Pydantic models that document (and, for request bodies, validate) the wire shapes.

Responses are built as plain dicts for speed; these models only describe them in the OpenAPI
document. Request models ignore unknown fields, so newer clients keep working.
"""

from __future__ import annotations

from datetime import datetime, timezone
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from lamina_server.versioning import Entry, ListingItem

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"


def rfc3339(moment: datetime) -> str:
    """UTC with a ``Z`` suffix, as the contract's date-time fields are written."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("keys must be valid UTF-8") from None
    return text


# pydantic checks that a JSON string is valid UTF-8 but not a JSON object's key, so a lone
# surrogate escape ("\ud800") in a key would reach storage, which cannot encode it.
Metadata = dict[Annotated[str, AfterValidator(_utf8)], str]


class ErrorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str
    code: str
    request_id: str


class PaginationBody(BaseModel):
    has_more: bool
    next_offset: str = Field(description='Cursor for `after`; "" when there is no next page')
    max_per_page: int


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing or invalid API key",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
}


def error_responses(*statuses: int, authenticated: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for error statuses.

    ``authenticated`` routes (API key) also get 401, which marks them as needing the bearer key
    in the document; routes authorized otherwise (signed URLs) pass ``authenticated=False``.
    """
    wanted = {401, *statuses} if authenticated else set(statuses)
    return {
        status: {
            "model": ErrorBody,
            "description": _DESCRIPTIONS.get(status) or HTTPStatus(status).phrase,
        }
        for status in sorted(wanted)
    }


def entry_json(entry: Entry) -> dict[str, Any]:
    """An object version as the contract's ``Entry``."""
    return {
        "last_modified": rfc3339(entry.last_modified),
        "size": entry.size,
        "e_tag": entry.etag,
        "metadata": dict(entry.metadata),
        "content_type": entry.content_type,
    }


def listing_item_json(item: ListingItem) -> dict[str, Any]:
    """A listing or diff item as the contract's ``ListingEntry`` (``entry`` only for objects)."""
    body: dict[str, Any] = {"path": item.path, "type": item.type}
    if item.entry is not None:
        body["entry"] = entry_json(item.entry)
    if item.status is not None:
        body["status"] = item.status
    return body


class EntryBody(BaseModel):
    last_modified: datetime
    size: int
    e_tag: str
    metadata: dict[str, str]
    content_type: str


class ListingEntryBody(BaseModel):
    path: str
    type: Literal["object", "prefix"]
    entry: EntryBody | None = Field(None, description='Present when type is "object"')
    status: Literal["added", "modified", "removed"] | None = Field(
        None, description="Diff entries only"
    )

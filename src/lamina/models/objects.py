"""Objects: listing entries, metadata, and the bodies of the upload protocol."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from attrs import field, frozen

from lamina._errors import InvalidArgumentError, InvalidArgumentTypeError

#: Prefix of the response headers that carry an object's user metadata.
META_HEADER_PREFIX = "x-tilde-meta-"
_META_LENGTH = len(META_HEADER_PREFIX)

#: An HTTP date in its preferred form (RFC 9110 IMF-fixdate), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
_IMF_FIXDATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


@frozen
class SourceMetadata:
    """Where an imported object came from."""

    connector_id: str = ""
    connector_type: str = ""
    source_path: str = ""
    version_id: str = ""
    source_etag: str = ""
    import_time: datetime | None = None
    import_job_id: str = ""


@frozen
class Entry:
    """One stored object version."""

    size: int
    e_tag: str = ""
    content_type: str = ""
    last_modified: datetime | None = None
    metadata: dict[str, str] = field(factory=dict)
    source_metadata: SourceMetadata | None = None


@frozen
class ListingEntry:
    """An item of a listing or a diff: an object (with its ``entry``) or a common prefix.

    ``status`` (``added``/``modified``/``removed``) is set on diff entries only.
    """

    path: str
    type: str
    entry: Entry | None = None
    status: str | None = None


@frozen
class EntryRecord:
    """An uncommitted change in a session; ``entry`` is ``None`` for a staged delete."""

    path: str
    entry: Entry | None = None


@frozen
class ObjectMetadata:
    """An object's headers (``head()``): ETag without quotes, type, size, user metadata."""

    etag: str | None = None
    content_type: str | None = None
    content_length: int | None = None
    last_modified: datetime | None = None
    metadata: dict[str, str] = field(factory=dict)


@frozen
class PutObjectResult:
    """The object a ``put()`` staged and its ETag (MD5 hex of the bytes for single uploads)."""

    path: str
    etag: str = ""


@frozen
class PutItem:
    """One object for ``put_many()``: its path, its data (as ``put()`` takes it) and,
    optionally, its content type and user metadata."""

    path: str
    data: Any
    content_type: str | None = None
    metadata: Mapping[str, str] | None = None


@frozen
class BatchWritten:
    """The body of a batched upload (``POST .../objects/upload``, a Lamina extension)."""

    objects: list[FinalizedObject]


@frozen
class CopyObjectResult:
    source_path: str
    destination_path: str


@frozen
class UploadTicket:
    """``PUT .../object``: where to send the bytes, the headers to send them with (asked for
    with ``in_place``, a Lamina extension), and the token that finalizes them."""

    upload_url: str
    upload_token: str
    upload_headers: dict[str, str] | None = None


@frozen
class MultipartUpload:
    """``POST .../object/multipart``: the upload handle and its token."""

    upload_id: str
    upload_token: str


@frozen
class PartTicket:
    """``GET .../object/multipart/part``: where to send one part."""

    upload_url: str


@frozen
class FinalizedObject:
    """The body of finalize / multipart complete."""

    path: str = ""
    etag: str = ""


@frozen
class DeletedObjects:
    """The body of ``POST .../objects/delete``."""

    deleted: int = 0


def unquote_etag(value: str | None) -> str | None:
    """An ETag header value without its quotes (and without a weak ``W/`` marker)."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def range_header(byte_range: tuple[int, int | None]) -> str:
    """The ``Range`` header for an inclusive ``(start, end)``; ``end=None`` reads to the end."""
    pair: tuple[object, ...] = byte_range if isinstance(byte_range, tuple) else ()
    start, end = pair if len(pair) == 2 else (None, None)
    if not _is_count(start) or not (end is None or _is_count(end)):
        raise InvalidArgumentTypeError(
            f"byte_range takes a pair (start, end) of whole numbers, end inclusive, or "
            f"(start, None) to read to the end; got {byte_range!r}"
        )
    assert isinstance(start, int) and (end is None or isinstance(end, int))
    if start < 0 or (end is not None and end < start):
        raise InvalidArgumentError(
            f"byte_range {byte_range!r} selects no bytes: pass (start, end) with "
            "0 <= start <= end (end inclusive), or (start, None)"
        )
    return f"bytes={start}-" if end is None else f"bytes={start}-{end}"


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_http_date(value: str) -> datetime | None:
    """An aware datetime from an HTTP date (any of the forms RFC 9110 allows), or ``None``
    when it is not one."""
    match = _IMF_FIXDATE.fullmatch(value)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
        try:
            return datetime(
                int(year),
                _MONTHS[month],
                int(day),
                int(hour),
                int(minute),
                int(second),
                tzinfo=timezone.utc,
            )
        except ValueError:
            return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def object_metadata_from_headers(headers: Mapping[str, str]) -> ObjectMetadata:
    """Build :class:`ObjectMetadata` from response headers: a mapping that finds names in any
    case (``httpx.Headers``, aiohttp's headers).

    User metadata keys are the header names after ``X-Tilde-Meta-``, lowercased (HTTP header
    names are case-insensitive, so their case does not survive every hop).
    """
    metadata: dict[str, str] = {}
    for name, value in headers.items():
        if len(name) > _META_LENGTH and name[:_META_LENGTH].lower() == META_HEADER_PREFIX:
            metadata[name[_META_LENGTH:].lower()] = value
    length = headers.get("content-length")
    modified = headers.get("last-modified")
    return ObjectMetadata(
        etag=unquote_etag(headers.get("etag")),
        content_type=headers.get("content-type"),
        content_length=int(length) if length and length.isdigit() else None,
        last_modified=parse_http_date(modified) if modified else None,
        metadata=metadata,
    )

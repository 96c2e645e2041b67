"""The read operations: GetObject and HeadObject (ranges, conditions), ListObjectsV2 and
ListObjects, ListBuckets, HeadBucket, GetBucketLocation.

A key reads at ``head``, at a commit id, or in a session (its staged changes over its base).
A listing's keys carry their ref: a prefix ``<ref>/…`` lists that view; a prefix without a
``/`` lists HEAD's (``head/…``; with the delimiter ``/``, the one common prefix ``head/`` —
commits and sessions are not enumerated). Bytes stream from the blob store in chunks; from a
blob store clients reach directly over plain HTTP, a read of :data:`RELAY_MIN` bytes or more is
relayed from the store's socket to the client's in the kernel instead, never entering the
process (:mod:`lamina_server.splicing`).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
from collections.abc import Callable, Iterator
from datetime import datetime
from urllib.parse import quote
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from lamina_server import splicing
from lamina_server.api import data
from lamina_server.api.access import Access
from lamina_server.api.deps import Services
from lamina_server.api.validation import validate_delimiter
from lamina_server.authz import Action, Resource
from lamina_server.gateway.admission import HEAD, parse_key, request_headers, target_of
from lamina_server.gateway.s3_errors import S3Error, invalid_argument, no_such_key
from lamina_server.gateway.s3_xml import document, element, iso
from lamina_server.versioning import Entry, ListingItem

MAX_KEYS = 1000
RELAY_MIN = 1024 * 1024  # smaller reads stream: relaying opens a connection of its own
RELAY_URL_TTL = 60.0  # seconds the relay's presigned URL is good for
REGION = "us-east-1"
# Response headers a presigned GET may ask for (``response-content-type=…``).
_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def xml_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/xml", headers=headers)


# --- objects ----------------------------------------------------------------------------------


async def read_entry(services: Services, repository_id: str, key: str) -> Entry:
    """The entry a key names in a repository (``NoSuchKey`` when it names none)."""
    parsed = parse_key(key)
    if not parsed.path:
        raise no_such_key(key)
    session_id, commit_id = parsed.view
    return await services.versions.get_entry(
        repository_id, parsed.path, session_id=session_id, ref=commit_id
    )


def _matches(header: str, etag: str) -> bool:
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or f'"{etag}"' in tags or etag in tags


def _since(header: str | None) -> datetime | None:
    if header is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None


def _conditions(headers: dict[str, str], entry: Entry) -> int | None:
    """The status the request's conditions answer instead (412, 304), if any."""
    modified = entry.last_modified.replace(microsecond=0)
    if_match = headers.get("if-match")
    if if_match is not None and not _matches(if_match, entry.etag):
        return 412
    unmodified_since = _since(headers.get("if-unmodified-since"))
    if if_match is None and unmodified_since is not None and modified > unmodified_since:
        return 412
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None and _matches(if_none_match, entry.etag):
        return 304
    modified_since = _since(headers.get("if-modified-since"))
    if if_none_match is None and modified_since is not None and modified <= modified_since:
        return 304
    return None


def object_headers(entry: Entry) -> dict[str, str]:
    return {
        "ETag": f'"{entry.etag}"',
        "Last-Modified": data.http_date(entry.last_modified),
        "Content-Type": entry.content_type,
        "Accept-Ranges": "bytes",
    }


async def get_object(request: Request, services: Services, access: Access) -> Response:
    """GetObject and HeadObject."""
    key = target_of(request).key
    entry = await read_entry(services, access.repo.id, key)
    headers = request_headers(request)
    answer = object_headers(entry)
    condition = _conditions(headers, entry)
    if condition == 412:
        raise S3Error(412, "PreconditionFailed", "at least one of the preconditions did not hold")
    if condition == 304:
        return Response(status_code=304, headers={"ETag": answer["ETag"]})
    for name, value in request.query_params.items():
        if name in _OVERRIDES:
            answer[_OVERRIDES[name]] = value
    status, start, end = 200, 0, entry.size
    range_header = headers.get("range")
    if range_header is not None and (
        "if-range" not in headers or _matches(headers["if-range"], entry.etag)
    ):
        start, end = data.parse_range(range_header, entry.size)
        status = 206
        answer["Content-Range"] = f"bytes {start}-{end - 1}/{entry.size}"
    answer["Content-Length"] = str(end - start)
    if request.method == "HEAD" or start == end:
        response = Response(status_code=status, headers=answer)
    else:
        response = await _relayed(request, services, entry, start, end, status, answer) or (
            StreamingResponse(
                services.blobs.read(entry.address, start, end), status_code=status, headers=answer
            )
        )
    # Raw bytes: user metadata values are UTF-8, which Starlette's latin-1 headers cannot carry.
    response.raw_headers.extend(
        (f"x-amz-meta-{name}".encode("ascii"), value.encode("utf-8"))
        for name, value in entry.metadata.items()
    )
    return response


async def _relayed(
    request: Request,
    services: Services,
    entry: Entry,
    start: int,
    end: int,
    status: int,
    headers: dict[str, str],
) -> Response | None:
    """A response relaying bytes ``[start, end)`` of ``entry`` from the blob store, where that
    can be done (see the module's docstring)."""
    presigner = services.presigner
    if presigner is None or end - start < RELAY_MIN or not splicing.offered(request.scope):
        return None
    url = presigner.download_url(entry.address, entry.content_type, RELAY_URL_TTL)
    body = await splicing.open_body(url, start, end)
    return None if body is None else splicing.SplicedResponse(body, status, headers)


# --- listings ---------------------------------------------------------------------------------


def _encoding(request: Request) -> str | None:
    encoding = request.query_params.get("encoding-type")
    if encoding not in (None, "url"):
        raise invalid_argument(f"encoding-type {encoding!r} is not 'url'")
    return encoding


def _max_keys(request: Request) -> int:
    text = request.query_params.get("max-keys", str(MAX_KEYS))
    if not text.isdigit():
        raise invalid_argument(f"max-keys {text!r} is not a whole number")
    return min(int(text), MAX_KEYS)


def _token(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError):
        raise invalid_argument("the continuation token is not one this server gave") from None


def _view(prefix: str, delimiter: str | None) -> tuple[str | None, str, bool]:
    """The ref a listing's prefix names, the path prefix within it, and whether the listing
    is HEAD's one common prefix (a prefix without ``/``, delimited by ``/``)."""
    ref, slash, path_prefix = prefix.partition("/")
    if slash:
        return ref, path_prefix, False
    if not f"{HEAD}/".startswith(prefix):
        return None, "", False
    return HEAD, "", delimiter == "/"


def _after(start: str | None, ref: str) -> tuple[str | None, bool]:
    """The path a listing of ``ref`` resumes after, for a key to start after; and whether
    that key is past the whole view."""
    if start is None:
        return None, False
    base = f"{ref}/"
    if start.startswith(base):
        return start[len(base) :] or None, False
    return None, start > base


async def list_objects(request: Request, services: Services, access: Access) -> Response:
    """ListObjectsV2 (``list-type=2``) and ListObjects (v1: ``marker``)."""
    params = request.query_params
    version2 = params.get("list-type") == "2"
    encoding = _encoding(request)
    prefix = params.get("prefix", "")
    delimiter = params.get("delimiter") or None
    if delimiter is not None:
        validate_delimiter(delimiter)
    amount = _max_keys(request)
    token = params.get("continuation-token") if version2 else None
    start = params.get("start-after") if version2 else params.get("marker")
    ref, path_prefix, only_head = _view(prefix, delimiter)
    items: list[ListingItem] = []
    more, next_path = False, None
    if ref is not None:
        after, past = (_untoken(token), False) if token else _after(start, ref)
        if only_head:
            head_item = ListingItem(f"{HEAD}/", "prefix", None)
            items = [] if past or (after is not None) or amount == 0 else [head_item]
        elif not past and amount > 0:
            session_id, commit_id = parse_key(ref).view
            page = await services.versions.list_objects(
                access.repo.id,
                session_id=session_id,
                ref=commit_id,
                prefix=path_prefix,
                delimiter=delimiter,
                after=after,
                amount=amount,
            )
            base = f"{ref}/"
            items = [ListingItem(base + item.path, item.type, item.entry) for item in page.items]
            more, next_path = page.has_more, page.next_offset

    def enc(value: str) -> str:
        return quote(value, safe="/") if encoding == "url" else value

    body = [
        element("Name", target_of(request).bucket),
        element("Prefix", enc(prefix)),
        element("MaxKeys", amount),
        element("IsTruncated", more),
    ]
    if delimiter is not None:
        body.append(element("Delimiter", enc(delimiter)))
    if encoding is not None:
        body.append(element("EncodingType", encoding))
    if version2:
        body.append(element("KeyCount", len(items)))
        if token:
            body.append(element("ContinuationToken", token))
        if start is not None:
            body.append(element("StartAfter", enc(start)))
        if more and next_path is not None:
            body.append(element("NextContinuationToken", _token(next_path)))
    else:
        body.append(element("Marker", enc(start or "")))
        if more and items:
            body.append(element("NextMarker", enc(items[-1].path)))
    body.extend(_listed(items, enc))
    return xml_response(document("ListBucketResult", body))


def _listed(items: list[ListingItem], enc: Callable[[str], str]) -> Iterator[str]:
    for item in items:
        if item.entry is None:
            yield "<CommonPrefixes>" + element("Prefix", enc(item.path)) + "</CommonPrefixes>"
            continue
        entry = item.entry
        yield (
            f"<Contents><Key>{escape(enc(item.path))}</Key>"
            f"<LastModified>{iso(entry.last_modified)}</LastModified>"
            f'<ETag>"{escape(entry.etag)}"</ETag><Size>{entry.size}</Size>'
            "<StorageClass>STANDARD</StorageClass></Contents>"
        )


# --- buckets ----------------------------------------------------------------------------------


async def list_buckets(request: Request, services: Services, access: Access) -> Response:
    """Every repository the caller may list the objects of, as ``<org>.<repo>``."""
    principal = access.caller
    buckets = []
    for org in await services.identity.list_organizations(principal):
        after: str | None = None
        while True:
            records, more = await services.repositories.list(org, after=after, amount=500)
            for record in records:
                decision = await services.authorizer.authorize(
                    principal, Action.LIST_OBJECTS, Resource(org, record.name), epoch=access.epoch
                )
                if decision.allowed:
                    buckets.append(
                        "<Bucket>"
                        + element("Name", f"{org.name}.{record.name}")
                        + element("CreationDate", iso(record.created_at))
                        + "</Bucket>"
                    )
            if not more or not records:
                break
            after = records[-1].name
    owner = "<Owner>" + element("ID", principal.id) + element("DisplayName", principal.name)
    body = [owner + "</Owner>", "<Buckets>", *buckets, "</Buckets>"]
    return xml_response(document("ListAllMyBucketsResult", body))


async def head_bucket(request: Request, services: Services, access: Access) -> Response:
    return Response(status_code=200, headers={"x-amz-bucket-region": REGION})


async def bucket_location(request: Request, services: Services, access: Access) -> Response:
    """Empty: S3's answer for us-east-1, the region clients assume (any region signs)."""
    return xml_response(document("LocationConstraint", []))

"""The data plane: presigned blob URLs that carry bytes in and out, without API keys.

The control plane (:mod:`lamina_server.api.objects`) hands out these URLs; a URL's signed token
is its only credential, and it names exactly one blob (and, for uploads, the repository,
session and path it was issued for)::

    PUT      /api/v1/blobs/upload?token=…     bytes of a single upload → 200, ETag "<md5>"
    PUT      /api/v1/blobs/part?token=…       bytes of one multipart part → 200, ETag "<md5>"
    GET|HEAD /api/v1/blobs/download?token=…   an object's bytes: 200, or 206 for a Range

Each route declares its action on a signed URL: the prelude verifies the token (of the route's
kind) before the handler runs. Handlers take the raw request (no parameter or body models: the
``token`` query parameter is documented through ``openapi_extra``), the app's fast lane serves
them (see ``FAST_LANE``), and they stream: uploads go to the blob store block by block,
downloads come back in 4 MiB chunks, so memory stays flat whatever the size.

With a blob store that clients reach directly (S3, :class:`~lamina_server.storage.blobs.Presigner`)
the URLs handed out are the store's own presigned URLs instead, and these routes carry no bytes.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from lamina_server.api.access import LaminaRoute, access_of, signed
from lamina_server.api.deps import Services, get_services, request_base
from lamina_server.api.errors import ApiError, bad_request
from lamina_server.api.schemas import error_responses
from lamina_server.authz import Action
from lamina_server.versioning import Entry

router = APIRouter(tags=["Data plane"], route_class=LaminaRoute)

BLOBS = "/api/v1/blobs"
UPLOAD_TTL = 3600.0
MULTIPART_TTL = 7 * 24 * 3600.0
DOWNLOAD_TTL = 3600.0

# Token kinds: a token of one kind is never accepted where another is expected.
UPLOAD_URL = "blob-upload"
PART_URL = "blob-part"
DOWNLOAD_URL = "blob-download"

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_ETAG = {
    "ETag": {"description": '"<md5>" of the bytes', "required": True, "schema": {"type": "string"}}
}
# The object's own content type: any media type, raw bytes.
_BYTES = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
_DOWNLOAD_HEADERS = {
    **_ETAG,
    "Content-Length": {"required": True, "schema": {"type": "integer", "minimum": 0}},
    "Last-Modified": {"required": True, "schema": {"type": "string"}},
    "Accept-Ranges": {"required": True, "schema": {"type": "string", "enum": ["bytes"]}},
}
_TOKEN_PARAMETER = {
    "parameters": [
        {
            "name": "token",
            "in": "query",
            "required": True,
            "description": "The signed token (the URL's only credential)",
            "schema": {"type": "string", "minLength": 1},
        }
    ]
}
_RANGE_PARAMETERS = {
    "parameters": [
        *_TOKEN_PARAMETER["parameters"],
        {
            "name": "Range",
            "in": "header",
            "required": False,
            "description": "One byte range: 'bytes=start-end', 'bytes=start-' or 'bytes=-n'",
            "schema": {"type": "string", "pattern": "^bytes=([0-9]+-[0-9]*|-[0-9]+)$"},
        },
        {
            "name": "If-Range",
            "in": "header",
            "required": False,
            "description": 'Honour Range only while the object\'s ETag is still this ("<md5>")',
            "schema": {"type": "string"},
        },
    ]
}


def public_base(request: Request, services: Services) -> str:
    """Scheme, host and port clients reach this server at: configured, or the request's."""
    if services.config.public_url:
        return services.config.public_url.rstrip("/")
    return request_base(request)


def upload_url(
    request: Request,
    services: Services,
    claims: Mapping[str, str | int],
    *,
    in_place: bool = False,
) -> str:
    """The presigned PUT for one upload; ``claims``: repository, session, path, address.
    The blob store's own URL when clients reach it directly (``in_place``: see
    :meth:`~lamina_server.storage.blobs.Presigner.upload_url`)."""
    if services.presigner is not None:
        return services.presigner.upload_url(str(claims["a"]), UPLOAD_TTL, in_place=in_place)
    token = services.signer.sign(UPLOAD_URL, claims, ttl=UPLOAD_TTL)
    return f"{public_base(request, services)}{BLOBS}/upload?token={token}"


def part_url(
    request: Request, services: Services, *, address: str, upload_id: str, part_number: int
) -> str:
    if services.presigner is not None:
        return services.presigner.part_url(address, upload_id, part_number, UPLOAD_TTL)
    claims: dict[str, str | int] = {"a": address, "u": upload_id, "n": part_number}
    token = services.signer.sign(PART_URL, claims, ttl=UPLOAD_TTL)
    return f"{public_base(request, services)}{BLOBS}/part?token={token}"


def download_url(request: Request, services: Services, entry: Entry) -> str:
    if services.presigner is not None:
        return services.presigner.download_url(entry.address, entry.content_type, DOWNLOAD_TTL)
    claims: dict[str, str | int] = {
        "a": entry.address,
        "z": entry.size,
        "e": entry.etag,
        "c": entry.content_type,
        "m": int(entry.last_modified.timestamp()),
    }
    token = services.signer.sign(DOWNLOAD_URL, claims, ttl=DOWNLOAD_TTL)
    return f"{public_base(request, services)}{BLOBS}/download?token={token}"


def http_date(moment: datetime) -> str:
    """An RFC 9110 date (``Last-Modified``), to the second."""
    return email.utils.formatdate(int(moment.timestamp()), usegmt=True)


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def _position(digits: str, size: int) -> int:
    """A Range position; one with more digits than ``size`` is past the end, ``size + 1``
    (so no number is parsed that is longer than ``int()`` accepts)."""
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(size)):
        return size + 1
    return int(significant)


def parse_range(header: str, size: int) -> tuple[int, int]:
    """``Range: bytes=S-E | S- | -N`` → the ``[start, end)`` it selects of ``size`` bytes.

    Raises 400 for a malformed or multi-range header and 416 (with ``Content-Range:
    bytes */size``) for a range that selects no byte of the object.
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None or (not match[1] and not match[2]):
        raise bad_request(
            f"Range {header!r} is not a single 'bytes=start-end', 'bytes=start-' or 'bytes=-n'",
            "invalid_range",
        )
    unsatisfiable = ApiError(
        416,
        "range_not_satisfiable",
        f"Range {header!r} selects no bytes of a {size}-byte object",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if not match[1]:
        suffix = _position(match[2], size)
        if suffix == 0 or size == 0:
            raise unsatisfiable
        return max(size - suffix, 0), size
    start = _position(match[1], size)
    end = _position(match[2], size) + 1 if match[2] else size
    if start >= size or end <= start:
        raise unsatisfiable
    return start, min(end, size)


@router.put(
    f"{BLOBS}/upload",
    summary="Upload the bytes of a single-part object (presigned URL from PUT /object)",
    response_class=Response,
    responses={
        200: {"description": "Received (durable once finalized)", "headers": _ETAG},
        **error_responses(400, 403, 409, authenticated=False),
    },
    openapi_extra=_TOKEN_PARAMETER,
    dependencies=[signed(Action.PUT_OBJECT, UPLOAD_URL)],
)
async def upload_blob(request: Request) -> Response:
    services = await get_services(request)
    claims = access_of(request).token
    info = await services.blobs.write(claims["a"], _body(request))
    return Response(headers={"ETag": f'"{info.etag}"'})


@router.put(
    f"{BLOBS}/part",
    summary="Upload one part of a multipart object (URL from GET /object/multipart/part)",
    response_class=Response,
    responses={
        200: {"description": "Received and fsynced (durable once completed)", "headers": _ETAG},
        **error_responses(400, 403, 404, authenticated=False),
    },
    openapi_extra=_TOKEN_PARAMETER,
    dependencies=[signed(Action.PUT_OBJECT, PART_URL)],
)
async def upload_part(request: Request) -> Response:
    services = await get_services(request)
    claims = access_of(request).token
    info = await services.blobs.write_part(claims["a"], claims["u"], claims["n"], _body(request))
    return Response(headers={"ETag": f'"{info.etag}"'})


@router.api_route(
    f"{BLOBS}/download",
    methods=["GET", "HEAD"],
    summary="Download an object's bytes (the redirect target of GET /object)",
    response_class=Response,
    responses={
        200: {"description": "The whole object", "headers": _DOWNLOAD_HEADERS, "content": _BYTES},
        206: {
            "description": "The requested byte range",
            "headers": {
                **_DOWNLOAD_HEADERS,
                "Content-Range": {"required": True, "schema": {"type": "string"}},
            },
            "content": _BYTES,
        },
        **error_responses(400, 403, authenticated=False),
        416: {
            **error_responses(416, authenticated=False)[416],
            "headers": {
                "Content-Range": {
                    "description": "bytes */<size>",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        },
    },
    openapi_extra=_RANGE_PARAMETERS,
    dependencies=[signed(Action.GET_OBJECT, DOWNLOAD_URL)],
)
async def download_blob(request: Request) -> Response:
    services = await get_services(request)
    claims = access_of(request).token
    address, size, etag = claims["a"], claims["z"], claims["e"]
    headers = {
        "ETag": f'"{etag}"',
        "Content-Type": claims["c"],
        "Last-Modified": email.utils.formatdate(claims["m"], usegmt=True),
        "Accept-Ranges": "bytes",
    }
    status, start, end = 200, 0, size
    header = request.headers.get("range")
    if header is not None and _if_range_matches(request.headers.get("if-range"), etag):
        start, end = parse_range(header, size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD" or start == end:
        return Response(status_code=status, headers=headers)
    return StreamingResponse(
        services.blobs.read(address, start, end), status_code=status, headers=headers
    )


# Served by the app's fast lane, ahead of FastAPI's routing.
FAST_LANE = (upload_blob, upload_part, download_blob)


def _if_range_matches(if_range: str | None, etag: str) -> bool:
    """RFC 9110 If-Range: honour the Range only while the client's validator still matches."""
    return if_range is None or if_range.strip() == f'"{etag}"'

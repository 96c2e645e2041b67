"""Uploads, the control plane: upload URLs and tokens, finalize, multipart uploads.

Upload bytes never pass through these routes. ``PUT /object`` picks a blob address and answers
with a presigned upload URL (:mod:`lamina_server.api.data`) plus an upload token; the client
sends the bytes there, then ``POST /object/finalize`` checks the token (signature, expiry,
scope), that the bytes arrived with the size and checksum the client claims, claims the blob
(once: tokens are single use) and stages the entry in the session. Multipart uploads work the
same way with one URL per part.

``PUT /object`` and ``POST /object/finalize``, the two calls of every upload, take the bare
request and the app's fast lane serves them (``FAST_LANE``) after the same prelude as every
route; their query parameters are documented through ``openapi_extra`` and the finalize body is
validated by its model.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.config import JsonDict

from lamina_server.api import data
from lamina_server.api.access import (
    Access,
    AccessDep,
    LaminaRoute,
    access_of,
    repository_action,
)
from lamina_server.api.bodies import read_body
from lamina_server.api.deps import Services, get_services, query
from lamina_server.api.errors import api_error_for, bad_request, body_validation_failed
from lamina_server.api.params import (
    NON_EMPTY,
    PATH_RULES,
    PATH_SCHEMA,
    REPO,
    ObjectPath,
    ServicesDep,
    SessionId,
    UploadId,
    UploadToken,
)
from lamina_server.api.schemas import error_responses
from lamina_server.api.signing import TokenError
from lamina_server.api.validation import (
    normalize_etag,
    require,
    validate_content_type,
    validate_metadata,
    validate_path,
    validate_size,
)
from lamina_server.authz import Action
from lamina_server.repositories import RepositoryRecord
from lamina_server.storage.blobs import (
    IN_PLACE_HEADERS,
    BlobInfo,
    BlobMismatch,
    BlobNotFound,
    multipart_etag,
)
from lamina_server.versioning import Claim, Entry

router = APIRouter(tags=["Objects"], route_class=LaminaRoute)

MAX_PART_NUMBER = 10000
_PART_NUMBER_SCHEMA: JsonDict = {"minimum": 1, "maximum": MAX_PART_NUMBER}

# Token kinds handed to clients (the URL kinds live in the data module).
UPLOAD_TOKEN = "upload-token"
MULTIPART_TOKEN = "multipart-token"


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class UploadTarget(BaseModel):
    upload_url: str = Field(description="Presigned URL: PUT the raw bytes here, no API key")
    upload_token: str
    upload_headers: dict[str, str] | None = Field(
        None,
        description="Lamina extension, answered to in_place=true on an S3-compatible store: "
        "headers the PUT to upload_url must carry as they are",
    )


class ObjectAttributes(_Request):
    """What finalize and multipart complete both say about the object they register."""

    checksum: str | None = Field(None, description="Hex MD5 of the bytes (quotes tolerated)")
    content_type: str | None = None
    size_bytes: int | None = Field(None, ge=0)
    metadata: dict[str, str] | None = None


class FinalizeRequest(ObjectAttributes):
    model_config = ConfigDict(extra="ignore", strict=True)
    upload_token: str = Field(min_length=1, description="The token from PUT /object")


class ObjectWritten(BaseModel):
    path: str
    etag: str


class MultipartStarted(BaseModel):
    upload_id: str
    upload_token: str


class PartUrl(BaseModel):
    upload_url: str


class CompletedPart(_Request):
    part_number: int = Field(json_schema_extra=_PART_NUMBER_SCHEMA)
    etag: str


class CompleteRequest(ObjectAttributes):
    # The handler checks these (invalid_upload_token, invalid_part); the schema documents it.
    upload_id: str = Field(json_schema_extra=NON_EMPTY)
    upload_token: str = Field(json_schema_extra=NON_EMPTY)
    parts: list[CompletedPart] = Field(
        description="The parts in ascending part_number order, without duplicates",
        json_schema_extra={"minItems": 1, "maxItems": MAX_PART_NUMBER},
    )


# --- helpers --------------------------------------------------------------------------------


def _token_claims(
    services: Services,
    kind: str,
    token: str,
    repo: RepositoryRecord,
    session_id: str,
    path: str,
) -> dict[str, Any]:
    """The claims of an upload token issued for exactly this repository, session and path."""
    try:
        claims = services.signer.verify(kind, token)
    except TokenError as exc:
        raise bad_request(f"upload token {exc}", "invalid_upload_token") from None
    for key, expected, name in (
        ("r", repo.id, "repository"),
        ("s", session_id, "session"),
        ("p", path, "path"),
    ):
        if claims.get(key) != expected:
            raise bad_request(f"upload token was issued for another {name}", "invalid_upload_token")
    return claims


def object_attributes(
    body: ObjectAttributes,
) -> tuple[str | None, int | None, str, dict[str, str]]:
    """The validated checksum, size_bytes, content_type and metadata of a finalize or
    multipart-complete body."""
    checksum = body.checksum
    return (
        None if checksum is None else normalize_etag(checksum, "checksum"),
        validate_size(body.size_bytes),
        validate_content_type(body.content_type),
        validate_metadata(body.metadata),
    )


def check_written(info: BlobInfo, size_bytes: int | None, checksum: str | None) -> None:
    if size_bytes is not None and size_bytes != info.size:
        raise BlobMismatch(
            "size", f"size_bytes is {size_bytes} but {info.size} bytes were uploaded"
        )
    if checksum is not None and checksum != info.etag:
        raise BlobMismatch(
            "checksum", f"checksum {checksum} does not match the uploaded bytes ({info.etag})"
        )


async def stage_written(
    services: Services,
    repo: RepositoryRecord,
    session_id: str,
    path: str,
    info: BlobInfo,
    content_type: str,
    metadata: dict[str, str],
    *,
    claim: Claim | None,
) -> JSONResponse:
    """Stages the verified blob as the object at ``path`` — claimed first as ``claim`` says
    (a ``BlobError`` if that fails; None: it needs no claim) — and answers 201
    ``{path, etag}``."""
    entry = new_entry(info, content_type, metadata)
    await services.staging.put(repo.id, session_id, path, entry, claim=claim)
    return JSONResponse({"path": path, "etag": info.etag}, status_code=201)


def new_entry(info: BlobInfo, content_type: str, metadata: dict[str, str]) -> Entry:
    """The entry a verified blob is staged as, last modified now."""
    return Entry(
        address=info.address,
        size=info.size,
        etag=info.etag,
        content_type=content_type,
        last_modified=datetime.now(timezone.utc),
        metadata=metadata,
    )


# --- single uploads -------------------------------------------------------------------------

_QUERY: Mapping[str, tuple[str, JsonDict]] = {
    "session_id": ("Session ID", NON_EMPTY),
    "path": (f"Object path: {PATH_RULES}", PATH_SCHEMA),
}


_IN_PLACE = (
    "Lamina extension: the client will send the upload_headers the answer lists with its PUT. "
    "On an S3-compatible store the bytes then go straight to their final key, written once "
    "(If-None-Match: *), and finalize copies nothing; the local store ignores it."
)


def _documented(
    body: type[BaseModel] | None = None, flags: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``openapi_extra`` for a bare-request session write: its query parameters (``flags``:
    optional booleans, name -> description) and body."""
    required = [
        {
            "name": name,
            "in": "query",
            "required": True,
            "description": description,
            "schema": {"type": "string", **schema},
        }
        for name, (description, schema) in _QUERY.items()
    ]
    optional = [
        {"name": name, "in": "query", "required": False, "description": description}
        | {"schema": {"type": "boolean", "default": False}}
        for name, description in (flags or {}).items()
    ]
    extra: dict[str, Any] = {"parameters": required + optional}
    if body is not None:
        schema = {"application/json": {"schema": body.model_json_schema()}}
        extra["requestBody"] = {"required": True, "content": schema}
    return extra


async def session_write(request: Request) -> tuple[Services, Access, str, str]:
    """Services, access, session id and path of a bare-request session write."""
    params = query(request)
    path = validate_path(params.get("path"))
    session_id = require(params.get("session_id", ""), "session_id")
    return await get_services(request), access_of(request), session_id, path


@router.put(
    f"{REPO}/object",
    summary="Start an upload: a presigned upload URL and an upload token",
    response_model=UploadTarget,
    responses=error_responses(400, 404),
    openapi_extra=_documented(flags={"in_place": _IN_PLACE}),
    dependencies=[repository_action(Action.PUT_OBJECT, path="query:path")],
)
async def put_object(request: Request) -> JSONResponse:
    services, access, session_id, path = await session_write(request)
    repo = access.repo
    await services.versions.open_session(repo.id, session_id)
    address = services.blobs.new_address()
    claims: dict[str, str | int] = {"r": repo.id, "s": session_id, "p": path, "a": address}
    in_place = services.presigner is not None and _flag(request, "in_place")
    if in_place:
        claims["i"] = 1
    target: dict[str, Any] = {
        "upload_url": data.upload_url(request, services, claims, in_place=in_place),
        "upload_token": services.signer.sign(UPLOAD_TOKEN, claims, ttl=data.UPLOAD_TTL),
    }
    if in_place:
        target["upload_headers"] = IN_PLACE_HEADERS
    return JSONResponse(target)


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter: true, 1 or yes (any case) is set; absent or else is not."""
    return query(request).get(name, "").lower() in ("true", "1", "yes")


@router.post(
    f"{REPO}/object/finalize",
    status_code=201,
    summary="Finish an upload: verify the bytes and stage the object in the session",
    response_model=ObjectWritten,
    responses=error_responses(400, 404, 409, 413),
    openapi_extra=_documented(FinalizeRequest),
    dependencies=[repository_action(Action.PUT_OBJECT, path="query:path")],
)
async def finalize_object(request: Request) -> JSONResponse:
    services, access, session_id, path = await session_write(request)
    raw = await read_body(request)
    try:
        body = FinalizeRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise body_validation_failed(exc) from None
    checksum, size_bytes, content_type, metadata = object_attributes(body)
    repo = access.repo
    claims = _token_claims(services, UPLOAD_TOKEN, body.upload_token, repo, session_id, path)
    address, in_place = str(claims["a"]), claims.get("i") == 1
    try:
        info = await services.blobs.pending(address, in_place=in_place)
        check_written(info, size_bytes, checksum)
        return await stage_written(
            services,
            repo,
            session_id,
            path,
            info,
            content_type,
            metadata,
            claim=Claim.IN_PLACE if in_place else Claim.PENDING,
        )
    except BlobNotFound:
        raise bad_request(
            "no bytes were uploaded for this upload token (PUT them to the upload_url first)",
            "upload_incomplete",
        ) from None
    except BlobMismatch as exc:
        await services.blobs.discard(address, in_place=in_place)
        raise api_error_for(exc) from None


# Served by the app's fast lane.
FAST_LANE = (put_object, finalize_object)


# --- multipart uploads ----------------------------------------------------------------------


@router.post(
    f"{REPO}/object/multipart",
    summary="Start a multipart upload",
    response_model=MultipartStarted,
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.PUT_OBJECT, path="query:path")],
)
async def start_multipart(
    session_id: SessionId, path: ObjectPath, services: ServicesDep, access: AccessDep
) -> JSONResponse:
    validate_path(path)
    require(session_id, "session_id")
    repo = access.repo
    await services.versions.open_session(repo.id, session_id)
    address = services.blobs.new_address()
    upload_id = await services.blobs.start_multipart(address)
    claims = {"r": repo.id, "s": session_id, "p": path, "a": address, "u": upload_id}
    token = services.signer.sign(MULTIPART_TOKEN, claims, ttl=data.MULTIPART_TTL)
    return JSONResponse({"upload_id": upload_id, "upload_token": token})


def _multipart_address(
    services: Services,
    repo: RepositoryRecord,
    session_id: str,
    path: str,
    upload_id: str,
    upload_token: str,
) -> str:
    """The blob address of a multipart upload its token checks out for."""
    validate_path(path)
    require(session_id, "session_id")
    claims = _token_claims(services, MULTIPART_TOKEN, upload_token, repo, session_id, path)
    if claims.get("u") != upload_id:
        raise bad_request("upload token was issued for another upload_id", "invalid_upload_token")
    return str(claims["a"])


@router.get(
    f"{REPO}/object/multipart/part",
    summary="A presigned upload URL for one part (1-10000)",
    response_model=PartUrl,
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.PUT_OBJECT, path="query:path")],
)
async def get_part_url(
    request: Request,
    session_id: SessionId,
    path: ObjectPath,
    upload_id: UploadId,
    upload_token: UploadToken,
    part_number: Annotated[
        int, Query(description="Part number, 1-10000", json_schema_extra=_PART_NUMBER_SCHEMA)
    ],
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise bad_request(
            f"part_number must be between 1 and {MAX_PART_NUMBER}, got {part_number}",
            "invalid_part",
        )
    address = _multipart_address(services, access.repo, session_id, path, upload_id, upload_token)
    url = data.part_url(
        request, services, address=address, upload_id=upload_id, part_number=part_number
    )
    return JSONResponse({"upload_url": url})


@router.post(
    f"{REPO}/object/multipart/complete",
    status_code=201,
    summary="Complete a multipart upload and stage the object in the session",
    response_model=ObjectWritten,
    responses=error_responses(400, 404, 409, 413),
    dependencies=[repository_action(Action.PUT_OBJECT, path="query:path")],
)
async def complete_multipart(
    session_id: SessionId,
    path: ObjectPath,
    body: CompleteRequest,
    services: ServicesDep,
    access: AccessDep,
) -> JSONResponse:
    if not body.parts:
        raise bad_request("parts must list at least one part", "invalid_part")
    parts: list[tuple[int, str]] = []
    for index, part in enumerate(body.parts):
        if not 1 <= part.part_number <= MAX_PART_NUMBER:
            raise bad_request(
                f"parts[{index}].part_number must be between 1 and {MAX_PART_NUMBER}",
                "invalid_part",
            )
        if parts and part.part_number <= parts[-1][0]:
            raise bad_request(
                "parts must be listed in ascending part_number order without duplicates "
                f"(part {part.part_number} follows part {parts[-1][0]})",
                "invalid_part",
            )
        parts.append((part.part_number, normalize_etag(part.etag, f"parts[{index}].etag")))
    checksum, size_bytes, content_type, metadata = object_attributes(body)
    repo = access.repo
    address = _multipart_address(
        services, repo, session_id, path, body.upload_id, body.upload_token
    )
    etag = multipart_etag([part_etag for _, part_etag in parts])
    if checksum is not None and "-" in checksum and checksum != etag:
        raise api_error_for(
            BlobMismatch("checksum", f"checksum {checksum} is not the parts' ETag ({etag})")
        )
    info = await services.blobs.complete_multipart(
        address,
        body.upload_id,
        parts,
        size=size_bytes,
        md5=checksum if checksum is not None and "-" not in checksum else None,
    )
    return await stage_written(
        services, repo, session_id, path, info, content_type, metadata, claim=None
    )


@router.delete(
    f"{REPO}/object/multipart",
    status_code=204,
    summary="Abort a multipart upload and remove its parts",
    responses=error_responses(400, 404),
    dependencies=[repository_action(Action.PUT_OBJECT, path="query:path")],
)
async def abort_multipart(
    session_id: SessionId,
    path: ObjectPath,
    upload_id: UploadId,
    upload_token: UploadToken,
    services: ServicesDep,
    access: AccessDep,
) -> Response:
    address = _multipart_address(services, access.repo, session_id, path, upload_id, upload_token)
    await services.blobs.abort_multipart(address, upload_id)
    return Response(status_code=204)

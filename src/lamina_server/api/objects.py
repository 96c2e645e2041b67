"""Objects, the control plane: reads, listings, staged writes, uploads and their tokens.

Uploads never pass through these routes. ``PUT /object`` picks a blob address and answers with
a presigned upload URL (:mod:`lamina_server.api.data`) plus an upload token; the client sends
the bytes there, then ``POST /object/finalize`` checks the token (signature, expiry, scope),
that the bytes arrived with the size and checksum the client claims, claims the blob (once:
tokens are single use) and stages the entry in the session. Multipart uploads work the same way
with one URL per part. Reads redirect (307) to a presigned download URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from lamina_server.api import data
from lamina_server.api.deps import (
    Services,
    current_principal,
    get_services,
    query,
    resolve_repository,
)
from lamina_server.api.pagination import PageParams, page_envelope, page_params
from lamina_server.api.schemas import (
    EntryBody,
    ListingEntryBody,
    PaginationBody,
    entry_json,
    error_responses,
    listing_item_json,
)
from lamina_server.api.signing import TokenError
from lamina_server.api.validation import (
    normalize_etag,
    validate_content_type,
    validate_delimiter,
    validate_metadata,
    validate_path,
    validate_prefix,
    validate_size,
)
from lamina_server.errors import ApiError, bad_request, conflict, not_found
from lamina_server.identity import Principal, RepositoryRecord
from lamina_server.storage.blobs import (
    BlobClaimed,
    BlobError,
    BlobInfo,
    BlobMismatch,
    BlobNotFound,
    multipart_etag,
)
from lamina_server.versioning import Entry

# Authentication runs first, before any parameter is validated.
router = APIRouter(tags=["Objects"], dependencies=[Depends(current_principal)])

R = "/organizations/{organization}/repositories/{repository}"
MAX_PART_NUMBER = 10000
MAX_DELETE_PATHS = 1000

# Token kinds handed to clients (the URL kinds live in the data module).
UPLOAD_TOKEN = "upload-token"
MULTIPART_TOKEN = "multipart-token"

OrgName = Annotated[str, Path(description="Organization slug")]
RepoName = Annotated[str, Path(description="Repository name")]
Caller = Annotated[Principal, Depends(current_principal)]
ServicesDep = Annotated[Services, Depends(get_services)]
ObjectPath = Annotated[str, Query(description="Object path (no leading /)")]
SessionId = Annotated[str, Query(description="Session ID")]
ReadSession = Annotated[
    str | None, Query(description="Session to read from (default: the latest commit)")
]
Ref = Annotated[str | None, Query(description="Commit ID to read at; exclusive with session_id")]
UploadId = Annotated[str, Query(description="Multipart upload ID")]
UploadTokenParam = Annotated[str, Query(description="Token from POST /object/multipart")]
Pages = Annotated[PageParams, Depends(page_params)]


# --- wire shapes (documentation and request validation) ------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class UploadTarget(BaseModel):
    upload_url: str = Field(description="Presigned URL: PUT the raw bytes here, no API key")
    upload_token: str


class _ObjectAttributes(_Request):
    """What finalize and multipart complete both say about the object they register."""

    checksum: str | None = Field(None, description="Hex MD5 of the bytes (quotes tolerated)")
    content_type: str | None = None
    size_bytes: int | None = None
    metadata: dict[str, str] | None = None


class FinalizeRequest(_ObjectAttributes):
    upload_token: str


class ObjectWritten(BaseModel):
    path: str
    etag: str


class MultipartStarted(BaseModel):
    upload_id: str
    upload_token: str


class PartUrl(BaseModel):
    upload_url: str


class CompletedPart(_Request):
    part_number: int
    etag: str


class CompleteRequest(_ObjectAttributes):
    upload_id: str
    upload_token: str
    parts: list[CompletedPart]


class CopyResult(BaseModel):
    source_path: str
    destination_path: str


class DeleteObjectsRequest(_Request):
    paths: list[str] = Field(description="1-1000 object paths")


class DeleteObjectsResult(BaseModel):
    deleted: int


class ObjectList(BaseModel):
    results: list[ListingEntryBody]
    pagination: PaginationBody


class EntryRecordBody(BaseModel):
    path: str
    entry: EntryBody | None = Field(None, description="null for a staged delete")


class ChangeList(BaseModel):
    results: list[EntryRecordBody]
    pagination: PaginationBody


# --- helpers --------------------------------------------------------------------------------


def _required(value: str, field: str) -> str:
    if not value:
        raise bad_request(f"{field} is required")
    return value


def _view(session_id: str | None, ref: str | None) -> tuple[str | None, str | None]:
    session_id, ref = session_id or None, ref or None
    if session_id is not None and ref is not None:
        raise bad_request("session_id and ref are mutually exclusive; pass at most one")
    return session_id, ref


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


def _object_attributes(
    body: Mapping[str, Any],
) -> tuple[str | None, int | None, str, dict[str, str]]:
    """The validated checksum, size_bytes, content_type and metadata of a finalize or
    multipart-complete body."""
    checksum = body.get("checksum")
    return (
        None if checksum is None else normalize_etag(checksum, "checksum"),
        validate_size(body.get("size_bytes")),
        validate_content_type(body.get("content_type")),
        validate_metadata(body.get("metadata")),
    )


def _check_written(info: BlobInfo, size_bytes: int | None, checksum: str | None) -> None:
    if size_bytes is not None and size_bytes != info.size:
        raise BlobMismatch(
            "size", f"size_bytes is {size_bytes} but {info.size} bytes were uploaded"
        )
    if checksum is not None and checksum != info.etag:
        raise BlobMismatch(
            "checksum", f"checksum {checksum} does not match the uploaded bytes ({info.etag})"
        )


def _blob_error(exc: BlobError) -> ApiError:
    if isinstance(exc, BlobClaimed):
        return conflict(f"upload token already used: {exc}", "upload_token_used")
    if isinstance(exc, BlobNotFound):
        return not_found(str(exc), "upload_not_found")
    if isinstance(exc, BlobMismatch):
        return bad_request(str(exc), f"{exc.field}_mismatch")
    return bad_request(str(exc), "invalid_part")


async def _stage_written(
    services: Services,
    repo: RepositoryRecord,
    session_id: str,
    path: str,
    info: BlobInfo,
    content_type: str,
    metadata: dict[str, str],
    *,
    claim: bool,
) -> JSONResponse:
    """Stages the verified blob as the object at ``path`` — claiming it first, with ``claim``
    (:class:`BlobError` if that fails) — and answers 201 ``{path, etag}``."""
    entry = Entry(
        address=info.address,
        size=info.size,
        etag=info.etag,
        content_type=content_type,
        last_modified=datetime.now(timezone.utc),
        metadata=metadata,
    )
    await services.staging.put(repo.id, session_id, path, entry, claim=claim)
    return JSONResponse({"path": path, "etag": info.etag}, status_code=201)


# --- reads ----------------------------------------------------------------------------------


async def _read_entry(
    services: Services,
    caller: Principal,
    organization: str,
    repository: str,
    path: str,
    session_id: str | None,
    ref: str | None,
) -> Entry:
    """The entry at ``path`` in the view a read names: a session, a commit, or HEAD."""
    validate_path(path)
    session, commit = _view(session_id, ref)
    repo = await resolve_repository(services, caller, organization, repository)
    return await services.versions.get_entry(repo.id, path, session_id=session, ref=commit)


@router.get(
    f"{R}/object",
    status_code=307,
    summary="Read an object: 307 redirect to a presigned download URL",
    responses={
        307: {"description": "Location: the download URL (honours Range)"},
        **error_responses(400, 404),
    },
)
async def get_object(
    request: Request,
    organization: OrgName,
    repository: RepoName,
    path: ObjectPath,
    services: ServicesDep,
    caller: Caller,
    session_id: ReadSession = None,
    ref: Ref = None,
) -> Response:
    entry = await _read_entry(services, caller, organization, repository, path, session_id, ref)
    location = data.download_url(request, services, entry)
    return Response(
        status_code=307, headers={"Location": location, "Cache-Control": "private, no-store"}
    )


@router.head(
    f"{R}/object",
    summary="An object's metadata as headers (ETag, Content-Type, Content-Length, X-Tilde-Meta-*)",
    responses={200: {"description": "The object exists"}, **error_responses(400, 404)},
)
async def head_object(
    organization: OrgName,
    repository: RepoName,
    path: ObjectPath,
    services: ServicesDep,
    caller: Caller,
    session_id: ReadSession = None,
    ref: Ref = None,
) -> Response:
    entry = await _read_entry(services, caller, organization, repository, path, session_id, ref)
    response = Response(
        headers={
            "ETag": f'"{entry.etag}"',
            "Content-Type": entry.content_type,
            "Content-Length": str(entry.size),
            "Last-Modified": data.http_date(entry.last_modified),
            "Accept-Ranges": "bytes",
        }
    )
    # Raw bytes: user metadata values are UTF-8, which Starlette's latin-1 headers cannot carry.
    response.raw_headers.extend(
        (f"x-tilde-meta-{key}".encode("ascii"), value.encode("utf-8"))
        for key, value in entry.metadata.items()
    )
    return response


@router.get(
    f"{R}/objects",
    summary="List objects (latest commit, a commit, or a session's view)",
    response_model=ObjectList,
    responses=error_responses(400, 404),
)
async def list_objects(
    organization: OrgName,
    repository: RepoName,
    services: ServicesDep,
    caller: Caller,
    pages: Pages,
    session_id: ReadSession = None,
    ref: Ref = None,
    prefix: Annotated[str | None, Query(description="Only paths starting with this")] = None,
    delimiter: Annotated[
        str | None, Query(description="Group paths by this (e.g. '/') into prefixes")
    ] = None,
) -> JSONResponse:
    session, commit = _view(session_id, ref)
    prefix, delim = validate_prefix(prefix), validate_delimiter(delimiter)
    repo = await resolve_repository(services, caller, organization, repository)
    page = await services.versions.list_objects(
        repo.id,
        session_id=session,
        ref=commit,
        prefix=prefix,
        delimiter=delim,
        after=pages.after,
        amount=pages.amount,
    )
    results = [listing_item_json(item) for item in page.items]
    return JSONResponse(page_envelope(results, page, pages.amount))


@router.get(
    f"{R}/changes",
    tags=["Sessions"],
    summary="A session's uncommitted changes (entry null = staged delete)",
    response_model=ChangeList,
    responses=error_responses(400, 404),
)
async def list_changes(
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    services: ServicesDep,
    caller: Caller,
    pages: Pages,
    prefix: Annotated[str | None, Query(description="Only paths starting with this")] = None,
) -> JSONResponse:
    _required(session_id, "session_id")
    prefix = validate_prefix(prefix)
    repo = await resolve_repository(services, caller, organization, repository)
    page = await services.versions.list_changes(
        repo.id, session_id, prefix=prefix, after=pages.after, amount=pages.amount
    )
    results = [
        {"path": change.path, "entry": None if change.entry is None else entry_json(change.entry)}
        for change in page.items
    ]
    return JSONResponse(page_envelope(results, page, pages.amount))


# --- single uploads -------------------------------------------------------------------------
#
# The two control-plane calls of every upload take the bare request: no FastAPI parameter or
# body models to solve (their parameters are documented through ``openapi_extra``), and the
# app's fast lane serves them ahead of FastAPI's routing (see ``FAST_LANE``). They check exactly
# what the model-based routes check, authentication first.

_PARAMETERS: dict[str, dict[str, Any]] = {
    "organization": {"in": "path", "description": "Organization slug"},
    "repository": {"in": "path", "description": "Repository name"},
    "session_id": {"in": "query", "description": "Session ID"},
    "path": {"in": "query", "description": "Object path (no leading /)"},
}


def _documented(body: type[BaseModel] | None = None) -> dict[str, Any]:
    """``openapi_extra`` for a bare-request session write: its parameters and JSON body."""
    extra: dict[str, Any] = {
        "parameters": [
            {"name": name, "required": True, "schema": {"type": "string"}, **spec}
            for name, spec in _PARAMETERS.items()
        ]
    }
    if body is not None:
        schema = {"application/json": {"schema": body.model_json_schema()}}
        extra["requestBody"] = {"required": True, "content": schema}
    return extra


async def _session_write(request: Request) -> tuple[Services, RepositoryRecord, str, str]:
    """Services, repository, session id and path of a bare-request session write."""
    caller = await current_principal(request)
    params = query(request)
    path = validate_path(params.get("path"))
    session_id = _required(params.get("session_id", ""), "session_id")
    services = await get_services(request)
    repo = await resolve_repository(
        services, caller, request.path_params["organization"], request.path_params["repository"]
    )
    return services, repo, session_id, path


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise bad_request("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return body


@router.put(
    f"{R}/object",
    summary="Start an upload: a presigned upload URL and an upload token",
    response_model=UploadTarget,
    responses=error_responses(400, 404),
    openapi_extra=_documented(),
)
async def put_object(request: Request) -> JSONResponse:
    services, repo, session_id, path = await _session_write(request)
    await services.versions.open_session(repo.id, session_id)
    address = services.blobs.new_address()
    claims = {"r": repo.id, "s": session_id, "p": path, "a": address}
    return JSONResponse(
        {
            "upload_url": data.upload_url(request, services, claims),
            "upload_token": services.signer.sign(UPLOAD_TOKEN, claims, ttl=data.UPLOAD_TTL),
        }
    )


@router.post(
    f"{R}/object/finalize",
    status_code=201,
    summary="Finish an upload: verify the bytes and stage the object in the session",
    response_model=ObjectWritten,
    responses=error_responses(400, 404, 409),
    openapi_extra=_documented(FinalizeRequest),
)
async def finalize_object(request: Request) -> JSONResponse:
    services, repo, session_id, path = await _session_write(request)
    body = await _json_object(request)
    token = body.get("upload_token")
    if not isinstance(token, str) or not token:
        raise bad_request("upload_token is required (the token from PUT /object)")
    checksum, size_bytes, content_type, metadata = _object_attributes(body)
    claims = _token_claims(services, UPLOAD_TOKEN, token, repo, session_id, path)
    address = str(claims["a"])
    try:
        info = await services.blobs.pending(address)
        _check_written(info, size_bytes, checksum)
        return await _stage_written(
            services, repo, session_id, path, info, content_type, metadata, claim=True
        )
    except BlobNotFound:
        raise bad_request(
            "no bytes were uploaded for this upload token (PUT them to the upload_url first)",
            "upload_incomplete",
        ) from None
    except BlobMismatch as exc:
        await services.blobs.discard(address)
        raise _blob_error(exc) from None
    except BlobError as exc:
        raise _blob_error(exc) from None


# Served by the app's fast lane.
FAST_LANE = (put_object, finalize_object)


# --- multipart uploads ----------------------------------------------------------------------


@router.post(
    f"{R}/object/multipart",
    summary="Start a multipart upload",
    response_model=MultipartStarted,
    responses=error_responses(400, 404),
)
async def start_multipart(
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    path: ObjectPath,
    services: ServicesDep,
    caller: Caller,
) -> JSONResponse:
    validate_path(path)
    _required(session_id, "session_id")
    repo = await resolve_repository(services, caller, organization, repository)
    await services.versions.open_session(repo.id, session_id)
    address = services.blobs.new_address()
    upload_id = await services.blobs.start_multipart(address)
    claims = {"r": repo.id, "s": session_id, "p": path, "a": address, "u": upload_id}
    token = services.signer.sign(MULTIPART_TOKEN, claims, ttl=data.MULTIPART_TTL)
    return JSONResponse({"upload_id": upload_id, "upload_token": token})


async def _multipart_claims(
    services: Services,
    caller: Principal,
    organization: str,
    repository: str,
    session_id: str,
    path: str,
    upload_id: str,
    upload_token: str,
) -> tuple[RepositoryRecord, str]:
    """The repository and the blob address of a multipart upload its token checks out for."""
    validate_path(path)
    _required(session_id, "session_id")
    repo = await resolve_repository(services, caller, organization, repository)
    claims = _token_claims(services, MULTIPART_TOKEN, upload_token, repo, session_id, path)
    if claims.get("u") != upload_id:
        raise bad_request("upload token was issued for another upload_id", "invalid_upload_token")
    return repo, str(claims["a"])


@router.get(
    f"{R}/object/multipart/part",
    summary="A presigned upload URL for one part (1-10000)",
    response_model=PartUrl,
    responses=error_responses(400, 404),
)
async def get_part_url(
    request: Request,
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    path: ObjectPath,
    upload_id: UploadId,
    upload_token: UploadTokenParam,
    part_number: Annotated[int, Query(description="Part number, 1-10000")],
    services: ServicesDep,
    caller: Caller,
) -> JSONResponse:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise bad_request(
            f"part_number must be between 1 and {MAX_PART_NUMBER}, got {part_number}",
            "invalid_part",
        )
    _, address = await _multipart_claims(
        services, caller, organization, repository, session_id, path, upload_id, upload_token
    )
    url = data.part_url(
        request, services, address=address, upload_id=upload_id, part_number=part_number
    )
    return JSONResponse({"upload_url": url})


@router.post(
    f"{R}/object/multipart/complete",
    status_code=201,
    summary="Complete a multipart upload and stage the object in the session",
    response_model=ObjectWritten,
    responses=error_responses(400, 404, 409),
)
async def complete_multipart(
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    path: ObjectPath,
    body: CompleteRequest,
    services: ServicesDep,
    caller: Caller,
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
    checksum, size_bytes, content_type, metadata = _object_attributes(body.model_dump())
    repo, address = await _multipart_claims(
        services,
        caller,
        organization,
        repository,
        session_id,
        path,
        body.upload_id,
        body.upload_token,
    )
    etag = multipart_etag([part_etag for _, part_etag in parts])
    if checksum is not None and "-" in checksum and checksum != etag:
        raise _blob_error(
            BlobMismatch("checksum", f"checksum {checksum} is not the parts' ETag ({etag})")
        )
    try:
        info = await services.blobs.complete_multipart(
            address,
            body.upload_id,
            parts,
            size=size_bytes,
            md5=checksum if checksum is not None and "-" not in checksum else None,
        )
    except BlobError as exc:
        raise _blob_error(exc) from None
    return await _stage_written(
        services, repo, session_id, path, info, content_type, metadata, claim=False
    )


@router.delete(
    f"{R}/object/multipart",
    status_code=204,
    summary="Abort a multipart upload and remove its parts",
    responses=error_responses(400, 404),
)
async def abort_multipart(
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    path: ObjectPath,
    upload_id: UploadId,
    upload_token: UploadTokenParam,
    services: ServicesDep,
    caller: Caller,
) -> Response:
    _, address = await _multipart_claims(
        services, caller, organization, repository, session_id, path, upload_id, upload_token
    )
    await services.blobs.abort_multipart(address, upload_id)
    return Response(status_code=204)


# --- copies and deletes ---------------------------------------------------------------------


@router.post(
    f"{R}/object/copy",
    status_code=201,
    summary="Copy an object within a session (metadata only: both share the bytes)",
    response_model=CopyResult,
    responses=error_responses(400, 404),
)
async def copy_object(
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    source_path: Annotated[str, Query(description="Path of the object to copy")],
    destination_path: Annotated[str, Query(description="Path of the copy")],
    services: ServicesDep,
    caller: Caller,
) -> JSONResponse:
    validate_path(source_path, "source_path")
    validate_path(destination_path, "destination_path")
    _required(session_id, "session_id")
    repo = await resolve_repository(services, caller, organization, repository)
    await services.versions.stage_copy(repo.id, session_id, source_path, destination_path)
    return JSONResponse(
        {"source_path": source_path, "destination_path": destination_path}, status_code=201
    )


@router.delete(
    f"{R}/object",
    status_code=204,
    summary="Delete an object in a session (stages a tombstone)",
    responses=error_responses(400, 404),
)
async def delete_object(
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    path: ObjectPath,
    services: ServicesDep,
    caller: Caller,
) -> Response:
    validate_path(path)
    _required(session_id, "session_id")
    repo = await resolve_repository(services, caller, organization, repository)
    if not await services.versions.stage_delete(repo.id, session_id, path):
        raise not_found(f"object {path!r} not found", "object_not_found")
    return Response(status_code=204)


@router.post(
    f"{R}/objects/delete",
    summary="Delete up to 1000 objects in a session; answers how many existed",
    response_model=DeleteObjectsResult,
    responses=error_responses(400, 404),
)
async def delete_objects(
    organization: OrgName,
    repository: RepoName,
    session_id: SessionId,
    body: DeleteObjectsRequest,
    services: ServicesDep,
    caller: Caller,
) -> JSONResponse:
    _required(session_id, "session_id")
    if not 1 <= len(body.paths) <= MAX_DELETE_PATHS:
        raise bad_request(f"paths must list 1 to {MAX_DELETE_PATHS} paths, got {len(body.paths)}")
    paths = [validate_path(path, f"paths[{index}]") for index, path in enumerate(body.paths)]
    repo = await resolve_repository(services, caller, organization, repository)
    deleted = await services.versions.stage_delete_many(repo.id, session_id, paths)
    return JSONResponse({"deleted": deleted})
